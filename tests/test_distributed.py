"""Issue 30: lesson 03's recipe beyond one process, with gloo and 2 processes on the smoke photos.

(a) after a few steps the weights equal one process's at the same global batch (frozen BatchNorm, gradient
accumulation on), and a checkpoint written on 2 processes resumes on 1 to the same weights; (b) the gathered
validation metrics equal one process's on exactly the same photos; (c) only rank 0 writes files; (d) a rank
killed mid-run fails the job with a clear message, and the same command resumes. Plus: `dogclf train
finetune` on 1 and on 2 processes records world_size 1 and 2 and n_val, the number of validation photos. And
gradient accumulation under DDP: the batches before an optimiser step run under `no_sync`, so the gradients
are all-reduced once a step, and the weights are those of the same global batch without accumulation.

Run as a script under torchrun (`_small_run_main`), this file is also the 2-process side of these tests."""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
WEIGHTS_TOLERANCE = dict(atol=1e-5, rtol=1e-4)   # float32 sums over the batch taken in another order

def _env(**extra) -> dict:
    "The environment of a command: this checkout first on the path, no GPU, quiet progress bars."
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return os.environ | dict(PYTHONPATH=path, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", **extra)

def _printed(r) -> str:
    "What a command printed, without torchrun's thread-count notice."
    noise = ("OMP_NUM_THREADS", "*****")
    return "\n".join(l for l in (r.stdout + r.stderr).splitlines() if not any(n in l for n in noise))

def _said(r) -> str:
    return _printed(r)[-6000:]

# ---------------------------------------------------------------- (a), (b): fit under DDP, on a small CNN

def _small_source(photos: Path, rank: int, world: int, batch: int = 8, n_train: int | None = None):
    "A small CNN with BatchNorm, and a source of real photos at 32 px: `batch` photos a batch in all, shared."
    from torch.utils.data import DataLoader
    from dogclf.data import read_split
    from dogclf.distributed import shard
    from dogclf.finetune import Source, TensorImages, photo_tensors
    from dogclf.train import lenet_data_config
    split = read_split(photos)
    dc = lenet_data_config(32)
    train = TensorImages(*photo_tensors(split.train[:n_train], 32), dc)     # no augmentation: the same inputs
    valid = TensorImages(*photo_tensors(split.valid[:-1], 32), dc)          # an odd number: the sampler pads
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, len(split.classes)))
    with torch.no_grad():   # statistics that are not the identity, kept frozen
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    source = Source(model, model, DataLoader(train, batch // world, drop_last=True), DataLoader(valid, 4), (), None)
    return shard(source, rank=rank, world=world, seed=0)

def _small_fit(source, epochs: int, checkpoint=None) -> list:
    "Train the small CNN: SGD with momentum, 2 batches accumulated per step, BatchNorm frozen."
    from dogclf.distributed import gathered_evaluate, wrap
    from dogclf.train import fit
    net = wrap(source.model, device=torch.device("cpu"))
    opt = torch.optim.SGD(source.model.parameters(), lr=0.05, momentum=0.9)
    return fit(net, source.train_dl, source.val_dl, epochs=epochs, opt=opt, device="cpu", amp=False,
               accum_steps=2, freeze_bn=True, checkpoint=checkpoint, evaluate_fn=gathered_evaluate, log=False)

def _small_run_main(photos: Path, out: Path):
    "Under torchrun: 1 epoch with a checkpoint, a copy of it, then a resume to 2 epochs; rank 0 saves what it saw."
    from dogclf.distributed import barrier, gathered_probs, is_main, rank_and_world, setup, teardown
    from dogclf.train import predict_probs
    setup("gloo")
    rank, world = rank_and_world()
    source = _small_source(photos, rank, world)
    _small_fit(source, 1, out / "small.pt")
    barrier()
    if is_main():
        shutil.copy(out / "small.pt", out / "after_epoch_1.pt")
    history = _small_fit(source, 2, out / "small.pt")   # resumes on every process from rank 0's file
    probs, targets = gathered_probs(source.model, source.val_dl)
    mine = dict(weights=source.model.state_dict(), history=history, epoch=source.train_dl.sampler.epoch,
                probs=probs, targets=targets)
    if is_main():   # the one process's view of the same photos: every one of them, no sampler
        from torch.utils.data import DataLoader
        mine["alone"] = predict_probs(source.model, DataLoader(source.val_dl.dataset, 4))
    torch.save(mine, out / f"rank{rank}.pt")   # a test's own record, one file per rank
    _accum_run(photos, out, rank, world)
    barrier()
    teardown()

def _accum_fit(source, accum_steps: int) -> tuple:
    "One epoch of the small CNN in DDP, `accum_steps` batches a step: (its weights, the all-reduces DDP made)."
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from dogclf.distributed import gathered_evaluate, wrap
    from dogclf.train import fit
    net, reduced = wrap(source.model, device=torch.device("cpu")), []
    def counted(state, bucket):   # DDP's own all-reduce of a bucket of gradients, counted
        reduced.append(1)
        return allreduce_hook(None, bucket)
    net.register_comm_hook(None, counted)
    opt = torch.optim.SGD(source.model.parameters(), lr=0.05, momentum=0.9)
    fit(net, source.train_dl, source.val_dl, epochs=1, opt=opt, device="cpu", amp=False, accum_steps=accum_steps,
        freeze_bn=True, evaluate_fn=gathered_evaluate, log=False)
    return source.model.state_dict(), len(reduced)

def _accum_run(photos: Path, out: Path, rank: int, world: int):
    "Under torchrun: 16 photos, 2 steps of 8: batches of 4 a process, then of 2 with accum_steps=2."
    mine = {}
    for batch, accum_steps in ((8, 1), (4, 2)):   # photos a batch over all processes, batches a step
        source = _small_source(photos, rank, world, batch=batch, n_train=16)
        weights, reduced = _accum_fit(source, accum_steps)
        mine[accum_steps] = dict(weights=weights, reduced=reduced, batches=len(source.train_dl))
    torch.save(mine, out / f"accum_rank{rank}.pt")

@pytest.fixture(scope="module")
def photos(tmp_path_factory, woof) -> Path:
    "3 training and 2 validation photos per breed (30 and 20), copied from the real ImageWoof photos."
    dest = tmp_path_factory.mktemp("photos")
    for breed in sorted(p for p in (woof / "train").iterdir() if p.is_dir()):
        for split, n in (("train", 3), ("val", 2)):
            (dest / split / breed.name).mkdir(parents=True)
            for photo in sorted((woof / split / breed.name).iterdir())[:n]:
                shutil.copy2(photo, dest / split / breed.name / photo.name)
    return dest

@pytest.fixture(scope="module")
def small(photos, tmp_path_factory) -> dict:
    "The small CNN trained by 2 processes (torchrun), and by 1, and resumed on 1 from the 2 processes' epoch 1."
    out = tmp_path_factory.mktemp("small")
    r = subprocess.run([*TORCHRUN, __file__, str(photos), str(out)], capture_output=True, text=True,
                       timeout=300, env=_env())
    assert r.returncode == 0, _said(r)
    one = _small_source(photos, 0, 1)
    history = _small_fit(one, 2)
    resumed = _small_source(photos, 0, 1)
    _small_fit(resumed, 2, out / "after_epoch_1.pt")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return dict(ranks=ranks, one=one.model.state_dict(), one_history=history, resumed=resumed.model.state_dict(),
                start=_small_source(photos, 0, 1).model.state_dict(), n_val=len(one.val_dl.dataset), out=out)

def _close(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), **WEIGHTS_TOLERANCE) for k in a)

def test_two_processes_take_the_same_steps_as_one_at_the_same_global_batch(small):
    "(a) 2 processes × 4 photos, 2 batches accumulated per step: the weights of 1 process × 8 photos, within 1e-5."
    two = small["ranks"][0]
    assert not _close(small["start"], small["one"]), "training did not move the weights: nothing was compared"
    assert _close(two["weights"], small["one"]), "2 processes ended with other weights than 1 at the same batch"
    assert _close(small["ranks"][1]["weights"], two["weights"]), "the two processes' copies drifted apart"
    assert two["epoch"] == 2, "fit did not tell the DistributedSampler each epoch (set_epoch)"
    for k in ("running_mean", "running_var"):   # frozen BatchNorm: its statistics did not move
        assert torch.equal(two["weights"][f"1.{k}"], small["start"][f"1.{k}"])

def test_a_two_process_checkpoint_resumes_on_one_process(small):
    "Rank 0's checkpoint after epoch 1 of 2 processes, resumed on 1 process: the weights of 1 process throughout."
    assert _close(small["resumed"], small["one"])

def test_gathered_validation_counts_every_photo_once(small):
    "(b) Gathered over 2 processes (one photo padded in), the metrics are one process's on the same photos."
    from dogclf.train import scores
    two = small["ranks"][0]
    alone_probs, alone_targets = two["alone"]
    assert len(two["targets"]) == small["n_val"] == 19
    assert torch.equal(two["targets"], alone_targets)   # the same photos, in the same order
    assert torch.allclose(two["probs"], alone_probs, atol=1e-6)
    assert two["history"][-1]["n_val"] == 19
    gathered, alone = scores(two["probs"], two["targets"]), scores(alone_probs, alone_targets)
    assert gathered["val_acc"] == alone["val_acc"] and abs(gathered["val_loss"] - alone["val_loss"]) < 1e-6
    assert abs(two["history"][-1]["val_loss"] - small["one_history"][-1]["val_loss"]) < 1e-4

# ---------------------------------------------------------------- gradient accumulation under DDP: no_sync

@pytest.fixture(scope="module")
def accum(small, photos) -> dict:
    "What the 2 processes of `small` recorded of _accum_run, and 1 process's 2 steps of 8 photos, unaccumulated."
    from dogclf.train import fit
    one = _small_source(photos, 0, 1, batch=8, n_train=16)
    opt = torch.optim.SGD(one.model.parameters(), lr=0.05, momentum=0.9)
    fit(one.model, one.train_dl, one.val_dl, epochs=1, opt=opt, device="cpu", amp=False, freeze_bn=True, log=False)
    ranks = [torch.load(small["out"] / f"accum_rank{r}.pt", weights_only=False) for r in range(2)]
    return dict(ranks=ranks, one=one.model.state_dict(), start=small["start"])

def test_accumulation_under_ddp_all_reduces_once_a_step(accum):
    "2 processes × 2 batches of 2 a step, no_sync on the first: one all-reduce a step; the weights of 8 a batch."
    plain, accumulated = accum["ranks"][0][1], accum["ranks"][0][2]
    assert (plain["batches"], accumulated["batches"]) == (2, 4), "2 steps of 8 photos: 2 batches a process, or 4"
    assert plain["reduced"] == 2, "the small CNN's gradients fit in one bucket: one all-reduce a step"
    assert accumulated["reduced"] == 2, "the batch before each step all-reduced its gradients: no_sync is not used"
    assert not _close(plain["weights"], accum["start"]), "training did not move the weights"
    assert _close(accumulated["weights"], plain["weights"]), "accumulation changed the weights of the same steps"
    assert _close(accumulated["weights"], accum["one"]), "2 processes differ from 1 process at the same global batch"
    assert _close(accum["ranks"][1][2]["weights"], accumulated["weights"]), "the two processes' copies drifted apart"

# ---------------------------------------------------------------- the command, on 1 and 2 processes

AUDITED = '''"`python -m dogclf ARGS`, listing every file this process writes under $AUDIT_ROOT in $AUDIT_LOG.<rank>."
import os, runpy, signal, sys
ROOT, LOG = os.environ["AUDIT_ROOT"], f"{os.environ['AUDIT_LOG']}.{os.environ.get('RANK', '0')}"
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
EVENTS = ("open", "os.rename", "os.remove", "os.rmdir", "os.truncate", "os.link", "os.symlink", "shutil.copyfile")
busy = []

def audit(event, args):
    if busy or event not in EVENTS:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITING)
    else:
        path, writes = args[1] if event in ("os.rename", "shutil.copyfile") else args[0], True
    if writes and isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(ROOT):
        busy.append(1)
        with open(LOG, "a") as f:
            f.write(f"{event} {os.fsdecode(path)}\\n")
        busy.pop()

sys.addaudithook(audit)
if "KILL_RANK" in os.environ and os.environ["KILL_RANK"] == os.environ.get("RANK"):   # dies at step KILL_AT_STEP
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    steps = []
    def die(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == int(os.environ["KILL_AT_STEP"]):
            os.kill(os.getpid(), signal.SIGKILL)
    register_optimizer_step_pre_hook(die)
sys.argv = ["dogclf", *sys.argv[1:]]
runpy.run_module("dogclf", run_name="__main__", alter_sys=True)
'''

def _train(photos: Path, out: Path, *args, processes: int = 1, audit: Path | None = None, **env):
    "`dogclf train finetune --profile smoke` on 1 process, or under torchrun on 2, through the audit wrapper."
    wrapper = out.parent / "audited.py"
    wrapper.write_text(AUDITED)
    launch = [*TORCHRUN, str(wrapper)] if processes == 2 else [sys.executable, str(wrapper)]
    audit_env = dict(AUDIT_ROOT=str(out), AUDIT_LOG=str(audit or out.parent / "audit"))
    command = [*launch, "train", "finetune", "--profile", "smoke", "--data", str(photos), "--out", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=_env(**audit_env, **env))

def _finetune(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["stages"]["finetune"]

@pytest.fixture(scope="module")
def commands(photos, tmp_path_factory) -> dict:
    "The command on 1 process, then under torchrun on 2, each into a fresh run folder."
    runs = {}
    for n in (1, 2):
        base = tmp_path_factory.mktemp(f"processes{n}")
        r = _train(photos, base / "out", processes=n)
        runs[n] = dict(result=r, out=base / "out", audit=base)
    return runs

def test_train_finetune_on_one_and_two_processes(commands, photos):
    "Done means: both exit 0 and record world_size 1 and 2, n_val the validation photos, accuracies within noise."
    from dogclf.noise import two_se
    n_val = sum(1 for p in (photos / "val").rglob("*") if p.is_file())
    stages = {}
    for n, run in commands.items():
        assert run["result"].returncode == 0, _said(run["result"])
        stages[n] = _finetune(run["out"])
        assert (stages[n]["world_size"], stages[n]["n_val"]) == (n, n_val)
        assert f"on {n_val} report photos, trained on {n} process(es)" in run["result"].stdout
    assert stages[1]["key"] == stages[2]["key"], "the same recipe must have the same key on any number of processes"
    assert stages[2]["batch_per_process"] * 2 == stages[1]["batch_size"] == stages[2]["batch_size"]
    assert stages[2]["history"][-1]["n_val"] == n_val   # each epoch's evaluation gathered over both processes
    gap, noise = abs(stages[1]["val_acc"] - stages[2]["val_acc"]), two_se(stages[1]["val_acc"], n_val)
    assert gap <= noise, f"1 process {stages[1]['val_acc']:.1%}, 2 processes {stages[2]['val_acc']:.1%}"

def test_only_rank_0_writes(commands):
    "(c) Caches, checkpoints, logs and results.json: every file under the run folder is rank 0's."
    base, out = commands[2]["audit"], commands[2]["out"]
    assert commands[2]["result"].returncode == 0, _said(commands[2]["result"])
    written = (base / "audit.0").read_text().splitlines()
    for made in ("results.json", "finetune-", "features_valid", "frozen_head-"):   # the audit sees rank 0's files
        assert any(made in line for line in written), f"rank 0 wrote no {made}: {written}"
    assert not (base / "audit.1").exists(), f"rank 1 wrote: {(base / 'audit.1').read_text()[:2000]}"
    assert (out / "results.json").exists()

def test_a_killed_rank_fails_the_job_and_the_same_command_resumes(commands, photos, tmp_path):
    "(d) Rank 1 killed (SIGKILL) at its 3rd step of 4: a clear failure; the same command resumes and finishes."
    out = tmp_path / "out"
    shutil.copytree(commands[2]["out"], out, ignore=shutil.ignore_patterns("finetune*", "results.json*"))
    args = ("-p", "ft_epochs", "4")   # one step an epoch: killed in epoch 3, after 2 checkpoints
    r = _train(photos, out, *args, processes=2, KILL_RANK="1", KILL_AT_STEP="3")
    said = _printed(r)
    assert r.returncode != 0, said
    assert "Rerun the same command to resume from the last checkpoint" in said, said
    assert "SIGKILL" in said and "rank      : 1" in said, said   # torchrun names the rank that failed first
    assert not (out / "results.json").exists()
    r = _train(photos, out, *args, processes=2)
    assert r.returncode == 0, _said(r)
    assert "resumed from" in r.stderr and "after epoch 2" in r.stderr, _said(r)   # rank 0 saved epoch 2 first
    stage = _finetune(out)
    assert (stage["world_size"], [h["epoch"] for h in stage["history"]]) == (2, [1, 2, 3, 4])

if __name__ == "__main__":
    _small_run_main(Path(sys.argv[1]), Path(sys.argv[2]))
