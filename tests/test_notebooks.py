"Lessons demonstrate what they define (issue 12): each exported public name is used in one of the two code cells after it."
import ast
import json
import re
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(NBS.glob("*.ipynb"))

def _code_cells(path: Path) -> list:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]

def _public_names(source: str) -> list:
    "Top-level functions, classes and constants an export cell defines, without the private ones."
    tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_")]

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_export_is_demonstrated_at_once(path):
    cells = _code_cells(path)
    missing = []
    for i, source in enumerate(cells):
        if not source.startswith("#| export"):
            continue
        following = "\n".join(c for c in cells[i + 1:i + 3] if not c.startswith("#| export"))
        later_exports = "\n".join(cells[i + 1:i + 3])
        for name in _public_names(source):
            used = re.search(rf"\b{re.escape(name)}\b", following)
            if not used:
                missing.append(name)
    assert not missing, f"{path.name}: not used in the two code cells after their definition: {missing}"

@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2].isdigit()], ids=lambda p: p.name)
def test_parameters_cell_is_papermill_readable(path):
    "papermill skips parameter lines whose comment contains '='; every line must be `name = literal  # comment`."
    cells = json.loads(path.read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: expected one parameters cell"
    for line in "".join(params[0]["source"]).splitlines():
        code, _, comment = line.partition("#")
        assert "=" not in comment, f"{path.name}: '=' in the comment of {line!r}"
        ast.literal_eval(code.split("=", 1)[1].strip())

ARC = ["What you will learn", "Why", "The idea", "Reading the results", "Try this", "Questions", "Going further"]

def _markdown(path: Path) -> list:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]

def _items_under(markdown: list, heading: str) -> int:
    "Bullet or numbered items between `heading` and the next heading."
    text = "\n".join(markdown)
    match = re.search(rf"^#+ +{heading}[^\n]*\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    return len(re.findall(r"^\s*(?:[-*]|\d+\.)\s", match.group(1), re.M)) if match else 0

@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2].isdigit()], ids=lambda p: p.name)
def test_lesson_is_a_chapter(path):
    "Issue 13: the arc's headings, at least 3 things to try, 6 questions, and 1,800 words of prose."
    markdown = _markdown(path)
    headings = [l.lstrip("#").strip() for m in markdown for l in m.splitlines() if l.startswith("#")]
    missing = [h for h in ARC if not any(x.startswith(h) for x in headings)]
    assert not missing, f"{path.name}: missing headings {missing}"
    assert _items_under(markdown, "Try this") >= 3, f"{path.name}: fewer than 3 items under Try this"
    assert _items_under(markdown, "Questions") >= 6, f"{path.name}: fewer than 6 questions"
    words = sum(len(m.split()) for m in markdown)
    assert words >= 1800, f"{path.name}: {words} words of prose"

@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2].isdigit()], ids=lambda p: p.name)
def test_hidden_cells_only_read(path):
    "A collapsed cell (JupyterLab's source_hidden, `#| echo: false` in the docs) only renders a reading: no public def."
    for c in json.loads(path.read_text())["cells"]:
        if c["cell_type"] != "code" or not c.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
            continue
        source = "".join(c["source"])
        assert source.startswith("#| echo: false"), f"{path.name} {c['id']}: collapsed but shown in the docs"
        tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        defines = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name[0] != "_"]
        assert not defines and "#| export" not in source, f"{path.name} {c['id']}: a collapsed cell defines {defines}"

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cell_ids_are_unique(path):
    "nbformat renames a repeated id at every run (a warning on the console) and links to the cell break."
    ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]
    assert len(ids) == len(set(ids)), f"{path.name}: repeated cell ids {sorted({i for i in ids if ids.count(i) > 1})}"
