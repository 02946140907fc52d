"The smoke pipeline end to end with papermill on the real photos, as a user runs it."
import json, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _run(woof, out, *args, profile="smoke"):
    return subprocess.run([sys.executable, "-m", "dogclf", "run", "--profile", profile, "--data", str(woof), "--out", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)

def test_smoke_pipeline_end_to_end_and_resume(woof, tmp_path):
    out = tmp_path / "run"
    r = _run(woof, out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    lessons = sorted(p.stem for p in (ROOT / "nbs").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.stem for p in out.glob("[0-9][0-9]_*.ipynb")) == lessons   # every executed lesson kept
    assert res["profile"] == "smoke" and res["data"] == str(woof.resolve())
    assert {"random_guess", "majority"} <= set(res["stages"])
    if "01_lenet" in lessons: assert "lenet" in res["stages"]
    if "02_feature_extractor" in lessons:
        assert res["stages"]["feature_extractor"]["val_acc"] > res["stages"]["lenet"]["val_acc"] + 0.2
    if "05_analysis" in lessons:   # the whole curriculum: every stage, and an export that matches PyTorch
        from dogclf.analysis import STAGES
        assert set(STAGES) <= set(res["stages"])
        assert res["stages"]["export"]["top1_agreement"] == 1.0 and res["stages"]["export"]["max_abs_logit_diff"] < 1e-3
        assert (out / "model.onnx").stat().st_size > 3.5 * res["stages"]["export"]["params"]
        assert {"id", "breed"} == set(json.loads((out / "labels.json").read_text())[0])
    # a rerun with nothing changed skips every lesson
    r2 = _run(woof, out)
    assert r2.returncode == 0 and r2.stdout.count("skipped") == len(lessons), r2.stdout

def test_failure_names_notebook_and_cell_and_keeps_partial(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "dogclf", "run", "--profile", "smoke", "--data", str(tmp_path / "missing"),
                        "--out", str(out), "--only", "00"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "00_data.ipynb failed in cell" in r.stderr and "does not exist" in r.stderr
    assert (out / "00_data.ipynb").exists()

def test_gpu_profile_code_path_on_cpu(woof, tmp_path):
    "The gpu profile's own code path (photos through the whole network, full fine-tuning, augmented views, no cached trunk), tiny."
    from dogclf.run import PROFILES
    assert PROFILES["gpu"]["ft_cached"] is False and "full" in PROFILES["gpu"]["ft_strategies"]
    lite = ["tf_efficientnet_lite0", "tf_efficientnet_lite1"]   # hub weights (resnet50 ...) cannot be downloaded here
    tiny = dict(arch=lite[0], archs=lite[:1], ensemble_archs=lite, train_per_class=6, val_per_class=4, img_size=128, batch_size=6, accum_steps=2,
                workers=0, lenet_epochs=1, head_epochs=5, naive_epochs=1, feature_views=2, ft_epochs=1, finder_steps=6)
    out = tmp_path / "gpu"
    r = _run(woof, out, *[a for k, v in tiny.items() for a in ("-p", k, repr(v))], profile="gpu")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["profile"] == "gpu"
    ft = res["stages"]["finetune"]
    assert ft["accum_steps"] == 2 and ft["batch_size"] == 6   # gradient accumulation: two batches of 6 per optimiser step
    assert {row["run"] for row in ft["comparison"]} >= {"full, discriminative", "freeze, discriminative", "partial, one rate"}
    assert not list((out / "checkpoints").glob("ft_*_cached-*")), "the gpu profile must fine-tune on photos, not cached activations"
    assert res["stages"]["ensemble"]["members"] == lite and res["stages"]["export"]["top1_agreement"] == 1.0
