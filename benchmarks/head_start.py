"""Which rate suits a linear head started from ImageNet's rows, chosen without the validation photos.

    python benchmarks/head_start.py --out runs/stanford-120 --data ../shared/data/stanford-dogs-120-mini --readme

Loads a run's cached pooled training features (lesson 02, the profile's main backbone), holds out a
quarter of the training photos (stratified), and trains the linear head on the rest from a random start
and from ImageNet's rows for these breeds, at several rates; prints the held-out accuracy of each, and
the untouched ImageNet head's. The validation photos are never read. Figures, not tests."""
import argparse, contextlib, io, json, time
from pathlib import Path
import torch
from sklearn.model_selection import train_test_split
from dogclf.analysis import update_readme
from dogclf.core import PROFILES, environment, load_checkpoint, project_root, read_results
from dogclf.data import load_split
from dogclf.models import create_backbone, imagenet_indices, imagenet_rows, train_linear_head


def training_features(out: Path, arch: str, n_train: int) -> tuple:
    "The pooled features (X, y) of the unaugmented training photos cached in run folder `out`."
    for path in sorted((out / "checkpoints").glob("pooled-*.pt")) + sorted((out / "checkpoints").glob("features_train-*.pt")):
        f = load_checkpoint(path)
        if f["X"].ndim == 2 and len(f["y"]) == n_train and f["X"].shape[1] == create_backbone(arch).num_features:
            return f["X"], f["y"]
    raise FileNotFoundError(f"no cached pooled training features of {arch} in {out}: run lesson 02 first")


def held_out_accuracy(X, y, fit_idx, held_idx, lr: float, rows, epochs: int, seed: int) -> float:
    "Accuracy on the held-out photos of a head trained on the others."
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _, hist = train_linear_head((X[fit_idx], y[fit_idx]), (X[held_idx], y[held_idx]), epochs, lr, 64, 0.2,
                                    seed=seed, n_classes=int(y.max()) + 1, init=rows)
    return hist[-1]["val_acc"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="a run folder where lesson 02 ran")
    ap.add_argument("--data", required=True)
    ap.add_argument("--readme", action="store_true")
    a = ap.parse_args()
    res = read_results(a.out)
    cfg = PROFILES[res["profile"]]
    arch = res["stages"]["feature_extractor"]["arch"]
    split = load_split(Path(a.data), cfg["valid_pct"], cfg["seed"], cfg["train_per_class"], None, None)
    X, y = training_features(Path(a.out), arch, len(split.train))
    fit_idx, held_idx = train_test_split(torch.arange(len(y)), test_size=0.25, stratify=y.numpy(), random_state=0)
    rows = imagenet_rows(create_backbone(arch).get_classifier(), imagenet_indices(split.classes))
    zero_shot = (torch.nn.functional.linear(X[held_idx], *rows).argmax(1) == y[held_idx]).float().mean().item()
    rates = [0.1, 0.03, 0.01, 0.003]
    table = {start: {lr: held_out_accuracy(X, y, fit_idx, held_idx, lr, init, cfg["head_epochs"], cfg["seed"])
                     for lr in rates}
             for start, init in [("random", None), ("ImageNet's rows", rows)]}
    env = environment()
    lines = [f"Measured by `python benchmarks/head_start.py --out <run> --data {Path(a.data).name} --readme` on "
             f"{env['device']}, {time.strftime('%Y-%m-%d')}: {arch}, {len(fit_idx)} training photos to fit, "
             f"{len(held_idx)} held out of the training photos (the validation photos are not used), "
             f"{cfg['head_epochs']} epochs. The untouched ImageNet head gets {zero_shot:.1%} of the held-out photos.", "",
             "| head starts from | " + " | ".join(f"rate {lr:g}" for lr in rates) + " |",
             "| --- " * (len(rates) + 1) + "|"]
    lines += [f"| {start} | " + " | ".join(f"{acc:.1%}" for acc in accs.values()) + " |" for start, accs in table.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(dict(zero_shot=zero_shot, table={k: {str(r): v for r, v in d.items()} for k, d in table.items()})))
    if a.readme:
        update_readme(project_root() / "README.md", text, "head-start")


if __name__ == "__main__":
    main()
