"The pipeline as a user runs it: small stand-in lessons for its logic, then the smoke profile end to end on real photos."
import ast, json, os, re, shutil, signal, subprocess, sys, time
from configparser import ConfigParser
from pathlib import Path
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.stem for p in (ROOT / "nbs").glob("[0-9][0-9]_*.ipynb") if "." not in p.stem)

def _dogclf(*args, cwd=ROOT, timeout=1800, env=None):
    "Run the `dogclf` command line in a subprocess, with `env` added to the environment."
    return subprocess.run([sys.executable, "-m", "dogclf", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {}))

def _run(data, out, *args, profile="smoke", cwd=ROOT, env=None):
    return _dogclf("run", "--profile", profile, "--data", data, "--out", out, *args, cwd=cwd, env=env)

def _huge_png(path, side=20000):
    "A PNG whose header says side x side pixels (a decompression bomb to Pillow), 70 bytes on disk."
    import zlib
    from PIL import Image
    Image.new("L", (8, 8)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = side.to_bytes(4, "big") * 2
    b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(b))

def _said(r): return r.stdout[-4000:] + r.stderr[-4000:]

def _stages(out): return json.loads((Path(out) / "results.json").read_text())["stages"]

def _repo_state():
    "What a run must not change in the repository: git's view of it, the user's runs/, README, static/ and results/."
    git = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True).stdout
    runs = sorted((str(p), p.stat().st_mtime_ns) for p in (ROOT / "runs").rglob("*")) if (ROOT / "runs").exists() else []
    published = [ROOT / "README.md", *sorted((ROOT / "static").rglob("*")), *sorted((ROOT / "results").rglob("*"))]
    return git, runs, [(str(p), p.stat().st_mtime_ns) for p in published if p.is_file()]

# ---------------------------------------------------------------- the library, without running lessons

def test_atomic_write_keeps_usual_permissions(tmp_path):
    from dogclf.core import atomic_write
    atomic_write(tmp_path / "a.json", "{}")
    with open(tmp_path / "b.json", "w") as f: f.write("{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777

def test_dogclf_profile_picks_the_profile(monkeypatch, tmp_path):
    "A student in JupyterLab picks a profile with $DOGCLF_PROFILE instead of editing cells."
    from dogclf.core import configure, pick_profile
    monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOGCLF_PROFILE", "smoke")
    assert pick_profile() == "smoke" and pick_profile("auto") == "smoke"
    assert configure(dict(profile="auto"), show=False).profile == "smoke"
    assert configure(dict(profile="auto"), show=False).out == tmp_path / "runs" / "smoke-notebook"   # not dogclf run's
    assert pick_profile("cpu") == "cpu"   # an explicit profile wins
    monkeypatch.setenv("DOGCLF_PROFILE", "tpu")
    with pytest.raises(ValueError, match="tpu"): pick_profile()

def test_auto_is_laptop_without_cuda_and_gpu_with_it(monkeypatch):
    "Outside the tests, a lesson opened by hand (or `dogclf run` without --profile) gets laptop on a CPU."
    import torch
    from dogclf.core import pick_profile
    monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.delenv("DOGCLF_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_profile() == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_profile() == "gpu"

def test_tests_never_write_into_runs(monkeypatch, tmp_path):
    "Under nbdev_test (IN_TEST) a lesson without `out` gets a temporary run folder, not runs/<profile>."
    from dogclf.core import configure
    (tmp_path / "settings.ini").write_text("[DEFAULT]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IN_TEST", "1")
    cfg = configure(dict(profile="smoke", out=""), show=False)
    assert cfg.out.parent.name == "dogclf-test-runs" and cfg.out.is_dir()
    assert not (tmp_path / "runs").exists()

LAYERS = ["core", "noise", "data", "train", "models", "finetune", "ensemble", "analysis", "distributed", "run",
          "__main__"]

def _dogclf_imports(path):
    "The dogclf modules that the module at `path` imports, anywhere in it."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "dogclf"):
            parts = (node.module or "").split(".")[0 if node.level else 1:]
            found |= {parts[0]} if parts and parts[0] else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("dogclf.")}
    return found

def test_library_layering():
    "core <- noise <- data <- train <- models <- finetune <- ensemble <- analysis <- distributed <- run: nothing imports upward, nothing imports run."
    for path in sorted((ROOT / "dogclf").glob("*.py")):
        name, imported = path.stem, _dogclf_imports(path)
        if name in ("__init__", "_modidx"):
            assert not imported, f"{path.name} imports {imported}"
            continue
        assert name in LAYERS, f"dogclf/{path.name} has no place in the layering {LAYERS}"
        upward = {m for m in imported if m not in LAYERS or LAYERS.index(m) >= LAYERS.index(name)}
        assert not upward, f"dogclf/{path.name} imports {sorted(upward)}, which are not below it in {LAYERS}"
        if name != "__main__": assert "run" not in imported, f"dogclf/{path.name} imports dogclf.run"

def test_imports_without_fcntl():
    "Windows has no fcntl: the package and every module must import without it."
    modules = ["dogclf"] + [f"dogclf.{p.stem}" for p in sorted((ROOT / "dogclf").glob("*.py"))
                            if p.stem not in ("__init__", "__main__", "_modidx")]
    code = ("import importlib, sys\nsys.modules['fcntl'] = None\nbad = []\n"
            f"for m in {modules!r}:\n    try: importlib.import_module(m)\n"
            "    except ImportError as e: bad.append(f'{m}: {e}')\nprint(bad)\nsys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, _said(r)

_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^\s\"'()\\]+")
_INSTALL = re.compile(r"git\+https?://[^\s\"'()\\]+")

@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_links_come_from_settings(lesson):
    "Each lesson's Colab badge and install URL are settings.ini's (rewrite them with dogclf.run.sync_repo_url())."
    ini = ConfigParser(); ini.read(ROOT / "settings.ini")
    url, branch = ini["DEFAULT"]["git_url"], ini["DEFAULT"]["branch"]
    slug = url.split("github.com/", 1)[1]
    text = (ROOT / "nbs" / f"{lesson}.ipynb").read_text()
    assert set(_BADGE.findall(text)) == {f"https://colab.research.google.com/github/{slug}/blob/{branch}/nbs/{lesson}.ipynb"}
    assert set(_INSTALL.findall(text)) == {f"git+{url}"}

def test_runtime_requirements_leave_out_the_notebook_tools():
    "A Colab runtime installs what the lessons import; papermill and JupyterLab come with the `run` extra (and `dev`)."
    ini = ConfigParser(delimiters=["="]); ini.read(ROOT / "settings.ini")
    names = lambda key: {re.split(r"[<>=!\[ ]", r)[0].lower() for r in ini["DEFAULT"].get(key, "").split()}
    tools = {"papermill", "ipykernel", "jupyterlab"}
    assert not tools & names("requirements") and tools <= names("run_requirements")
    assert {"torch", "timm", "filelock", "fastcore", "onnxruntime"} <= names("requirements")
    setup = (ROOT / "setup.py").read_text()
    assert "'run': run_requirements" in setup and "dev_requirements = run_requirements +" in setup

def test_run_without_papermill_says_how_to_install(tmp_path):
    code = "import sys; sys.modules['papermill'] = None\nfrom dogclf.run import main\nmain(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, "run", "--profile", "smoke", "--out", tmp_path / "run"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and 'pip install "dogclf[run]"' in r.stderr and "Traceback" not in r.stderr, _said(r)

# ---------------------------------------------------------------- the pipeline, on small stand-in lessons

def _lesson(path, params, code):
    "Write a notebook with a `parameters` cell and one code cell."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = dict(name="python3", language="python", display_name="Python 3")
    nbformat.write(nb, path)

LESSON_A = """\
import sys, time
from tqdm import tqdm
from dogclf.core import configure, progress, record_stage
cfg = configure(globals())
for _ in tqdm(range(50), mininterval=0):          # a bar redrawn 50 times
    time.sleep(0.002)
for _ in progress(range(50), "a long pass", delay=0, mininterval=0):   # as a pass of over 30 s draws it
    time.sleep(0.002)
for _ in progress(range(50), "a short pass"):      # under 30 s: no bar
    time.sleep(0.002)
record_stage(cfg, "a", seed=cfg.seed, epochs=cfg.head_epochs, val_acc=0.25)
print("a table a demonstration prints", flush=True)
print("lesson a says hello", file=sys.stderr, flush=True)
if cfg.seed == 7:
    time.sleep(120)
"""

LESSON_B = """\
from dogclf.core import configure, record_stage
cfg = configure(globals())
record_stage(cfg, "b", epochs=cfg.head_epochs)
assert cfg.head_epochs < 100, "too many epochs"
"""

@pytest.fixture()
def project(tmp_path):
    "A project folder with two stand-in lessons (00_a records a stage; 01_b records one, then fails for head_epochs >= 100) and photos."
    root = tmp_path / "project"
    (root / "nbs").mkdir(parents=True)
    (root / "settings.ini").write_text("[DEFAULT]\n")
    common = 'profile = "auto"\ndata = ""\nout = ""'
    _lesson(root / "nbs" / "00_a.ipynb", common, LESSON_A)
    _lesson(root / "nbs" / "01_b.ipynb", common + "\nhead_epochs = None", LESSON_B)
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ["a/1.jpg", "a/2.jpg", "a/3.jpg", "b/1.jpg", "b/2.jpg", "b/3.jpg", "b/4.jpg"]:
        (photos / name).parent.mkdir(exist_ok=True)
        (photos / name).write_bytes(b"photo")
    return root, photos, tmp_path / "run"

def _completed(nb):
    "True when `nb` is an executed notebook whose run finished without an exception."
    meta = json.loads(Path(nb).read_text())["metadata"]["papermill"]
    return meta.get("exception") in (None, False) and meta.get("end_time") is not None

def test_failed_lesson_leaves_nothing_behind(project):
    root, photos, out = project
    good = _run(photos, out, cwd=root)
    assert good.returncode == 0, _said(good)
    first = _stages(out)
    assert first["a"]["epochs"] == first["b"]["epochs"] == 25
    assert not any(json.loads(p.read_text())["again"] for p in (out / ".done").glob("*.json"))   # from empty
    # a run that fails after 01_b recorded its stage: the stage, the marker and the executed lesson are not kept
    r = _run(photos, out, "-p", "head_epochs", "500", cwd=root)
    assert r.returncode == 1, _said(r)
    assert "01_b.ipynb failed in cell" in r.stderr and "too many epochs" in r.stderr and "Traceback" not in r.stderr
    assert str(out.resolve() / "01_b.failed.ipynb") in r.stderr and "taken back: b" in r.stderr
    assert _stages(out)["a"]["epochs"] == 500   # a -p value reaches a lesson whose parameters cell does not list it
    assert _stages(out)["b"] == first["b"] and not (out / ".done" / "01_b.json").exists()
    assert _completed(out / "01_b.ipynb") and not _completed(out / "01_b.failed.ipynb")
    # the original command runs the failed lesson again, and the run ends as the first one did
    r = _run(photos, out, cwd=root)
    assert r.returncode == 0 and "> 01_b.ipynb" in r.stdout and "skipped" not in r.stdout, _said(r)
    assert {k: v["epochs"] for k, v in _stages(out).items()} == {"a": 25, "b": 25}
    assert not list(out.glob("*.failed.ipynb")) and all(_completed(out / f"{s}.ipynb") for s in ["00_a", "01_b"])
    assert json.loads((out / ".done" / "01_b.json").read_text())["again"]   # its earlier tries' caches were there
    assert _run(photos, out, cwd=root).stdout.count("skipped") == 2
    # other photos: the lessons run again
    (photos / "b" / "4.jpg").unlink()
    r = _run(photos, out, "--only", "00", cwd=root)
    assert r.returncode == 0 and "> 00_a.ipynb" in r.stdout and "skipped" not in r.stdout, _said(r)
    assert first["b"]["lesson"] == "01_b"   # each stage names the lesson that recorded it
    # the console: progress and problems, no noise; what cells print stays in the notebook
    assert "> 00_a.ipynb" in good.stdout and "< 01_b.ipynb" in good.stdout and "lesson a says hello" in good.stderr
    assert "report-split accuracy: a 25.0%" in good.stdout and "a demonstration prints" not in good.stdout + good.stderr, _said(good)
    executed = (out / "00_a.ipynb").read_text()
    assert "a demonstration prints" in executed and "lesson a says hello" in executed
    assert "%|" not in executed, "the executed lesson keeps no progress bar: they were the console's"
    bars = [line for line in good.stderr.splitlines() if "%|" in line]   # one line per bar, its last state
    assert len(bars) == 2 and bars[0].startswith("  100%|") and bars[1].startswith("  a long pass: 100%"), _said(good)
    assert "a short pass" not in good.stderr and "\r" not in good.stderr, _said(good)
    for noise in ["Passed unknown parameter", "Traceback", "WARNING |"]:
        assert noise not in good.stderr, good.stderr

def test_ctrl_c_stops_with_one_line(project):
    root, photos, out = project
    cmd = [sys.executable, "-m", "dogclf", "run", "--profile", "smoke", "--data", photos, "--out", out, "-p", "seed", "7"]
    p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=os.environ | {"PYTHONUNBUFFERED": "1"})
    for line in p.stderr:   # lesson a has recorded its stage and sleeps
        if "lesson a says hello" in line: break
    time.sleep(1)
    os.killpg(p.pid, signal.SIGINT)   # what Ctrl-C in a terminal does: the whole process group
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "dogclf: interrupted; rerun the same command to resume"
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert "a" not in json.loads((out / "results.json").read_text())["stages"]   # the interrupted lesson's stage is taken back
    assert not (out / ".done" / "00_a.json").exists() and not (out / "00_a.ipynb").exists()

def test_a_killed_lesson_counts_as_run_again(project):
    "A lesson killed hard (SIGKILL, the end of a sitting) cleans nothing up: its rerun may reuse that try's caches."
    root, photos, out = project
    cmd = [sys.executable, "-m", "dogclf", "run", "--profile", "smoke", "--data", photos, "--out", out]
    p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=os.environ | {"PYTHONUNBUFFERED": "1"})
    for line in p.stderr:   # lesson a has recorded its stage and sleeps
        if "lesson a says hello" in line: break
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=120)
    time.sleep(3)   # the kernel, in a session of its own, sees its parent gone and exits
    assert (out / ".00_a.running.ipynb").exists() and not (out / "00_a.failed.ipynb").exists()
    r = _run(photos, out, cwd=root)
    assert r.returncode == 0 and "> 00_a.ipynb" in r.stdout, _said(r)
    assert json.loads((out / ".done" / "00_a.json").read_text())["again"]   # not a time from an empty folder
    assert "00_a" not in json.loads((out / ".from_empty.json").read_text())
    assert not (out / ".00_a.running.ipynb").exists()

def test_command_line_errors_are_one_line(project, tmp_path):
    root, photos, out = project
    r = _dogclf(cwd=root)
    assert r.returncode == 2 and "run" in r.stderr and "publish" in r.stderr and "Traceback" not in r.stderr
    cases = [(["--only", "99"], "--only 99 matches no lesson; the lessons are 00_a, 01_b"),
             (["-p", "head_epochs", "-3"], "-p head_epochs -3: head_epochs must be a positive whole number"),
             (["-p", "head_epochs", "abc"], "-p head_epochs 'abc': head_epochs must be a positive whole number"),
             (["-p", "train_per_class", "eight"], "train_per_class must be None or a positive whole number"),
             (["-p", "ft_strategy", "most"], "ft_strategy must be one of freeze, partial, full")]
    for args, message in cases:
        r = _run(photos, out, *args, cwd=root)
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, _said(r))
    assert not out.exists(), "nothing runs when the command is wrong"
    (tmp_path / "a_file").write_text("")
    r = _run(photos, tmp_path / "a_file", cwd=root)
    assert r.returncode == 1 and "is a file, not a folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1, _said(r)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    r = _run(photos, out, cwd=empty)
    assert r.returncode == 1 and "No lesson notebooks" in r.stderr and "results:" not in r.stdout, _said(r)

def test_publish_copies_only_when_asked(project, tmp_path):
    "Running writes only into --out; `dogclf publish` copies results, lessons and figures to --dest."
    root, photos, out = project
    assert _run(photos, out, cwd=root).returncode == 0
    (out / "figures").mkdir()
    (out / "figures" / "stages.png").write_bytes(b"png")
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["00_a.ipynb", "01_b.ipynb", "settings.ini"]
    r = _dogclf("publish", "--out", out, "--dest", tmp_path / "published", cwd=root)
    assert r.returncode == 0, _said(r)
    published = tmp_path / "published"
    assert sorted(str(p.relative_to(published)) for p in published.rglob("*") if p.is_file()) == \
        ["00_a.ipynb", "01_b.ipynb", "figures/stages.png", "results.json"]
    assert set(json.loads((published / "results.json").read_text())["lesson_wall_s"]) == {"00_a", "01_b"}

# ---------------------------------------------------------------- the real lessons, smoke profile

def test_smoke_pipeline_is_trustworthy(few_photos, tmp_path):
    "A good run, a failed run in the same folder, the good command again: the first run's results, from finished lessons only."
    before = _repo_state()
    out = tmp_path / "run"
    r = _run(few_photos, out)
    assert r.returncode == 0, _said(r)
    assert sorted(p.stem for p in out.glob("[0-9][0-9]_*.ipynb")) == LESSONS   # every executed lesson kept
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "smoke" and res["data"] == str(few_photos.resolve())
    assert {"random_guess", "majority", "lenet"} <= set(res["stages"])
    import nbformat
    from dogclf.run import output_noise
    for lesson in LESSONS:   # a reader meets no traceback, warning or epoch log
        assert output_noise(nbformat.read(out / f"{lesson}.ipynb", as_version=4)) == [], lesson
    if "05_analysis" in LESSONS:   # the whole curriculum: every stage, and an export that matches PyTorch
        from dogclf.analysis import STAGES
        assert set(STAGES) <= set(res["stages"])
        assert res["stages"]["export"]["top1_agreement"] == 1.0 and res["stages"]["export"]["max_abs_logit_diff"] < 1e-3
        assert {"id", "breed"} == set(json.loads((out / "labels.json").read_text())[0])
    scores = {k: v.get("val_acc") for k, v in res["stages"].items()}
    r = _run(few_photos, out)
    assert r.returncode == 0 and r.stdout.count("skipped") == len(LESSONS), _said(r)
    # the same photos written again (new modification times, same bytes): nothing runs again
    for photo in sorted(few_photos.rglob("*.JPEG")):
        data = photo.read_bytes()
        photo.unlink()
        photo.write_bytes(data)
    r = _run(few_photos, out)
    assert r.returncode == 0 and r.stdout.count("skipped") == len(LESSONS), _said(r)
    # one photo's bytes changed, its size and dates restored (`touch -r`): every lesson runs again
    from test_stale import _rewrite_same_size
    _rewrite_same_size(sorted(few_photos.rglob("*.JPEG"))[0])
    r = _run(few_photos, out)
    assert r.returncode == 0 and "skipped" not in r.stdout, _said(r)
    assert all(f"> {lesson}.ipynb" in r.stdout for lesson in LESSONS), _said(r)
    scores = {k: v.get("val_acc") for k, v in _stages(out).items()}
    # LeNet diverges at this rate: lesson 01 fails, and what it wrote does not count
    r = _run(few_photos, out, "-p", "lenet_lr", "1e9")
    assert r.returncode == 1 and "01_lenet.ipynb failed" in r.stderr and "Traceback" not in r.stderr, _said(r)
    assert (out / "01_lenet.failed.ipynb").exists() and not (out / ".done" / "01_lenet.json").exists()
    r = _run(few_photos, out)
    assert r.returncode == 0 and "> 01_lenet.ipynb" in r.stdout, _said(r)
    assert {k: v.get("val_acc") for k, v in _stages(out).items()} == scores
    assert not list(out.glob("*.failed.ipynb")) and all(_completed(out / f"{s}.ipynb") for s in LESSONS)
    # fewer photos: lesson 00 runs again
    for photo in list((few_photos / "train").iterdir())[0].iterdir():
        photo.unlink()
        break
    r = _run(few_photos, out, "--only", "00")
    assert r.returncode == 0 and "> 00_data.ipynb" in r.stdout, _said(r)
    assert _repo_state() == before, "a run writes nothing outside --out"

def test_a_folder_of_your_own_photos_runs_every_lesson(woof, tmp_path):
    "Issue 27: three classes named by breed (not ImageNet ids), 8 photos each named IMG_*, and 4 files that are no photos, through all six lessons, with loader workers."
    mine = tmp_path / "mydogs"
    for name, wnid in [("beagle", "n02088364"), ("collie", "n02105641"), ("samoyed", "n02111889")]:
        (mine / name).mkdir(parents=True)
        photos = [p for p in sorted((woof / "train" / wnid).iterdir()) if not p.name.startswith("ILSVRC2012_val_")]
        for i, photo in enumerate(photos[:8]):   # named as a phone names them: no photo is known to be unseen
            shutil.copy2(photo, mine / name / f"IMG_{i:04d}{photo.suffix}")
    (mine / "beagle" / "notes.jpg").write_text("not a photo")
    (mine / "beagle" / "page.jpg").write_text("<!DOCTYPE html><html><body>Not found</body></html>")
    (mine / "collie" / "empty.jpg").write_bytes(b"")
    _huge_png(mine / "samoyed" / "huge.png")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    r = _run(mine, tmp_path / "run", "-p", "workers", "2", env=dict(TMPDIR=str(scratch)))
    assert r.returncode == 0, _said(r)
    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert sorted(Path(p).name for p in skipped) == ["empty.jpg", "huge.png", "notes.jpg", "page.jpg"], skipped
    assert "Skipping" in r.stderr and "Traceback" not in r.stderr and "can only test a child process" not in r.stderr
    for demo in ["Training diverged", "H100", "epoch=1"]:   # demonstrations and epoch logs stay in the notebooks
        assert demo not in r.stdout + r.stderr, _said(r)
    imports = tmp_path / "imports"   # what importing the libraries alone leaves (torchinductor_<user>, .ses)
    imports.mkdir()
    subprocess.run([sys.executable, "-c", "import torch, timm, onnxruntime"], env=os.environ | dict(TMPDIR=str(imports)), check=True)
    left = sorted(p.name for p in scratch.iterdir())
    assert left == sorted(p.name for p in imports.iterdir()), f"scratch files left behind: {left}"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["overrides"] == {"workers": 2}
    stages = _stages(tmp_path / "run")
    assert "imagenet_head" not in stages, "no ImageNet head for classes ImageNet does not have"
    assert {"lenet", "feature_extractor", "finetune", "ensemble", "export"} <= set(stages)
    assert stages["finetune"]["n_unseen"] == 0 and stages["finetune"]["val_acc_unseen"] is None
    for name in ["collie", "samoyed"]:
        (mine / name).rename(tmp_path / name)   # one class left: refused before any lesson starts
    r = _run(mine, tmp_path / "run")
    assert r.returncode == 1 and "needs at least 2" in r.stderr and "Traceback" not in r.stderr, _said(r)
    assert len(r.stderr.strip().splitlines()) == 1 and "> 00_data.ipynb" not in r.stdout, _said(r)

def test_analysis_alone_in_a_fresh_folder(few_photos, tmp_path):
    r = _run(few_photos, tmp_path / "fresh", "--only", "05")
    assert r.returncode == 0, _said(r)

def test_bad_data_is_refused_before_anything_runs(few_photos, tmp_path):
    "Issue 27: a mistyped --data, or a file, is one line before lesson 00 starts, and a finished lesson stays finished."
    out = tmp_path / "run"
    r = _run(few_photos, out, "--only", "00")
    assert r.returncode == 0, _said(r)
    a_photo = next((few_photos / "train").rglob("*.JPEG"))
    for bad, message in [(tmp_path / "missing", "does not exist"), (a_photo, "is a file")]:
        r = _run(bad, out, "--only", "00")
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, _said(r)
        assert "> 00_data.ipynb" not in r.stdout, _said(r)
    assert (out / ".done" / "00_data.json").exists(), "the failed command un-finished lesson 00"
    r = _run(few_photos, out, "--only")
    assert r.returncode == 1 and "--only needs at least one lesson" in r.stderr, _said(r)
    linked = tmp_path / "linked"
    shutil.copytree(few_photos, linked, symlinks=True)
    beagles = next((linked / "train").iterdir())
    for target, why in [(tmp_path / "moved.jpg", "leads nowhere"), (beagles / "loop.jpg", "leads in a circle")]:
        (beagles / "loop.jpg").symlink_to(target)
        r = _run(linked, out, "--only", "00")
        assert r.returncode == 1 and f"loop.jpg is a symbolic link that {why}" in r.stderr, _said(r)
        assert len(r.stderr.strip().splitlines()) == 1 and "> 00_data.ipynb" not in r.stdout, _said(r)
        (beagles / "loop.jpg").unlink()

def test_gpu_profile_code_path_on_cpu(woof, tmp_path):
    "The gpu profile's own code path (photos through the whole network, full fine-tuning, augmented views, no cached trunk), tiny."
    from dogclf.core import PROFILES
    assert PROFILES["gpu"]["ft_cached"] is False and "full" in PROFILES["gpu"]["ft_strategies"]
    lite = ["tf_efficientnet_lite0", "tf_efficientnet_lite1"]   # hub weights (resnet50 ...) cannot be downloaded here
    tiny = dict(arch=lite[0], archs=lite[:1], ensemble_archs=lite, train_per_class=6, val_per_class=4, img_size=128, batch_size=6,
                accum_steps=2, workers=0, lenet_epochs=1, head_epochs=5, naive_epochs=1, feature_views=2, ft_epochs=1, finder_steps=6,
                cmp_arch=lite[0], cmp_size=64, cmp_per_class=2, cmp_val_per_class=2, cmp_steps=4, pays_per_class=[1, 2],
                ft_seeds=[42], ft_arch=lite[1], ft_img_size=96)   # lesson 03's own backbone and size
    out = tmp_path / "gpu"
    r = _run(woof, out, *[a for k, v in tiny.items() for a in ("-p", k, repr(v))], profile="gpu")
    assert r.returncode == 0, _said(r)
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "gpu"
    ft = res["stages"]["finetune"]
    assert ft["accum_steps"] == 2 and ft["batch_size"] == 6   # gradient accumulation: two batches of 6 per optimiser step
    assert ft["arch"] == lite[1] and ft["config"]["frozen"]["img_size"] == 96   # ft_arch and ft_img_size
    assert {row["run"] for row in ft["comparison"]} >= {
        f"frozen stage ({lite[1]} at 96 px)", "freeze, the main run's budget", "partial, discriminative", "freeze", "partial, one rate", "full, discriminative",
        "full, one rate", "gradual unfreezing, discriminative", "full, discriminative, BatchNorm follows the batches",
        "full, one rate, random initialisation", "full, discriminative, BatchNorm re-estimated after",
        "full, discriminative, MixUp"}   # every strategy of issues 14 and 28, on the same photos
    assert all("control_val_acc" in s for s in ft["seeds"]) and ft["paired_control"]["two_se"] >= 0   # the control
    main_rows = [row for row in ft["comparison"] if row["run"].endswith(", all photos") or row["run"] == "freeze, the main run's budget"]
    assert [(row["steps"], row["seeds"]) for row in main_rows] == [(main_rows[0]["steps"], len(ft["seeds"]))] * 2
    assert all(row["paired_two_se"] is not None for row in main_rows)   # each against the frozen stage, paired
    compared = [row for row in ft["comparison"] if row["seeds"] and row not in main_rows]   # the strategy comparison
    assert {row["steps"] for row in compared} == {4}
    assert all((row["paired_two_se"] is None) == (row["run"] == "freeze") for row in compared)   # freeze: its own bar
    assert [r["photos_per_class"] for r in ft["when_it_pays"]] == [1, 2, 2]   # the small-data curve, then the shift
    assert not list((out / "checkpoints").glob("ft_*_cached-*")), "the gpu profile must fine-tune on photos, not cached activations"
    assert res["stages"]["ensemble"]["members"] == lite and res["stages"]["export"]["top1_agreement"] == 1.0
