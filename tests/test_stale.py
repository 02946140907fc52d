"""Issue 26: no run reuses a result made from other photos, other settings or another recipe, and exits 0.

Each test runs the smoke lessons with `dogclf run`, changes one thing a result depends on, and checks that
the result was made again. They were written against the code before the recipes moved into the library
and each failed there (see the closing note of the change that added them)."""
import importlib.util, json, os, shutil
from pathlib import Path
import pytest
import torch
from test_pipeline import ROOT, _run, _said, _stages

def _executed_text(nb: Path) -> str:
    "Everything an executed notebook printed."
    cells = json.loads(Path(nb).read_text())["cells"]
    outs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in outs)

def _rewrite_same_size(photo: Path):
    "Change one byte of a JPEG's header (the JFIF pixel density), keeping its size and its dates (`touch -r`)."
    st = photo.stat()
    data = bytearray(photo.read_bytes())
    assert data[6:11] == b"JFIF\x00", f"{photo} is not a JFIF file"
    data[15] ^= 1   # the low byte of the horizontal pixel density: the picture itself is unchanged
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert photo.stat().st_size == st.st_size and photo.stat().st_mtime_ns == st.st_mtime_ns

def test_lenet_is_retrained_when_the_photos_change_but_not_their_count(few_photos, tmp_path):
    "Lesson 01's checkpoint key once held the photos' count, not the photos: other photos resumed the old LeNet."
    out = tmp_path / "run"
    r = _run(few_photos, out, "--only", "01")
    assert r.returncode == 0, _said(r)
    first = _stages(out)["lenet"]
    breed = sorted((few_photos / "train").iterdir())[0]
    photos = sorted(breed.iterdir())
    photos[0].write_bytes(photos[1].read_bytes())   # another photo of the same breed: same count, other content
    r = _run(few_photos, out, "--only", "01")
    assert r.returncode == 0 and "> 01_lenet.ipynb" in r.stdout, _said(r)
    assert "resumed from" not in _executed_text(out / "01_lenet.ipynb"), "LeNet resumed weights trained on other photos"
    assert _stages(out)["lenet"]["val_loss"] != first["val_loss"]

@pytest.fixture(scope="module")
def lessons_02_to_04(tmp_path_factory, woof):
    "A smoke run of lessons 02, 03 and 04 on 3 training and 2 validation photos per breed: (photos, run folder)."
    photos = tmp_path_factory.mktemp("photos")
    for breed in sorted(p for p in (woof / "train").iterdir() if p.is_dir()):
        for split, n in (("train", 3), ("val", 2)):
            (photos / split / breed.name).mkdir(parents=True)
            for photo in sorted((woof / split / breed.name).iterdir())[:n]:
                shutil.copy2(photo, photos / split / breed.name / photo.name)
    out = tmp_path_factory.mktemp("base") / "run"
    r = _run(photos, out, "--only", "02", "03", "04")
    assert r.returncode == 0, _said(r)
    return photos, out

def _copy_of(run: Path, tmp_path: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"

def _members(out: Path) -> dict:
    return torch.load(out / "ensemble_predictions.pt", weights_only=True)["members"]

def _lesson_04_again(lessons_02_to_04, tmp_path, *overrides) -> tuple:
    "Lesson 04 run again in a copy of the base run with `-p` overrides: (the base run's members, the new ones, out)."
    photos, base = lessons_02_to_04
    out = _copy_of(base, tmp_path)
    r = _run(photos, out, "--only", "04", *overrides)
    assert r.returncode == 0, _said(r)
    return _members(base), _members(out), out

def test_lesson_04_fine_tunes_again_behind_another_head(lessons_02_to_04, tmp_path):
    "Lesson 04 once resumed fine-tuned weights trained behind the old head after `-p head_lr` (now `head_lrs`)."
    before, after, out = _lesson_04_again(lessons_02_to_04, tmp_path, "-p", "head_lrs", "[0.05]")
    assert "resumed from" not in _executed_text(out / "04_ensemble.ipynb")
    for arch in before:
        assert not torch.equal(before[arch], after[arch]), f"{arch}: lesson 04 reused fine-tuning done behind the old head"

def test_lesson_04_does_not_reuse_predictions_of_other_photos(lessons_02_to_04, tmp_path):
    "Lesson 04 once reused lesson 03's saved predictions after `-p train_per_class`, checking only the validation photos."
    before, fewer, _ = _lesson_04_again(lessons_02_to_04, tmp_path, "-p", "train_per_class", "2")
    for arch in before:
        assert not torch.equal(before[arch], fewer[arch]), f"{arch}: lesson 04 reused predictions of other photos"

def _targets_module():
    spec = importlib.util.spec_from_file_location("targets_benchmark", ROOT / "benchmarks" / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_the_benchmark_trains_the_lessons_frozen_head(lessons_02_to_04, tmp_path):
    "benchmarks/targets.py once trained its 'frozen' head from a random start at ten times the run's rate."
    from dogclf.core import configure
    from dogclf.data import load_split
    from dogclf.models import head_probs
    from dogclf.train import scores
    photos, base = lessons_02_to_04
    out = _copy_of(base, tmp_path)
    cfg = configure(dict(profile="smoke", data=str(photos), out=str(out)), show=False)
    split = load_split(cfg.data, cfg.valid_pct, cfg.seed, cfg.train_per_class, cfg.val_per_class, cfg.out / ".cache")
    stage = _targets_module().stage_of(cfg, split, cfg.arch, 1)
    mine = scores(head_probs(stage.model, stage.features.valid.X), stage.features.valid.y)
    lesson = _stages(out)["feature_extractor"]
    assert abs(mine["val_loss"] - lesson["val_loss"]) < 1e-4, (mine, lesson)

def test_the_command_gives_lesson_03s_numbers(lessons_02_to_04, tmp_path):
    "Issue 30: `dogclf train finetune` in lesson 03's run folder finds its main run under the same key: same numbers."
    from test_pipeline import _dogclf
    photos, base = lessons_02_to_04
    out = _copy_of(base, tmp_path)
    lesson = _stages(out)["finetune"]
    said = lambda: "".join(p.read_text() for p in sorted((out / "checkpoints").glob("finetune-*.log")))
    before = said().count("trained already by the same recipe")
    r = _dogclf("train", "finetune", "--profile", "smoke", "--data", photos, "--out", out)
    assert r.returncode == 0, _said(r)
    # the lesson's checkpoint, not a new run: fit says so in the run's own log (and nothing on stderr)
    assert said().count("trained already by the same recipe") > before, _said(r)
    command = _stages(out)["finetune"]
    assert (command["config"], command["lr"], command["lr_suggested"]) == (lesson["config"], lesson["lr"],
                                                                          lesson["lr_suggested"])
    assert (command["val_acc"], command["val_loss"], command["n_val"]) == (lesson["val_acc"], lesson["val_loss"],
                                                                           lesson["n_val"])
