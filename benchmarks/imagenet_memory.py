"""How much of what the frozen backbone knows about these photos is memory of ImageNet's training photos?

    python benchmarks/imagenet_memory.py --data ../shared/data/imagewoof2-160 --sizes 160 224

ImageWoof and Stanford Dogs are ImageNet subsets: almost every photo in them, training and report split alike,
was one of ImageNet's training photos, labelled with its breed, when the backbone was pretrained. Only
ImageWoof's ILSVRC2012_val_* photos (162 of val/) never were. Fine-tuning (lesson 03) can only add what the
frozen features lack, and on photos the backbone has memorised they may lack little. This script measures that
memory without training anything: ImageNet's own classifier, restricted to the dataset's breeds (as lesson
02's side experiment does), on three groups of photos: the training photos, the report photos ImageNet trained
on, and the report photos it never trained on. Then lesson 02's frozen head (fitted on the training photos, so
only its report-split groups are read) on the last two. Each group gets its accuracy and log loss; the unseen
photos are compared breed for breed with each seen group (the seen group's per-breed accuracy, weighted by the
unseen photos' breed counts), with two standard errors of that difference. A gap beyond the noise is memory
(or a harder kind of photo among those ImageNet kept for validation: this check cannot tell them apart).

It reads val/ to report, never to choose. The frozen stage of each size is lesson 02's recipe with
`--arch` at that size, cached under --out (at 160 px it is the cache `finetune_moves.py` makes). Adds its
report to benchmarks/imagenet_memory.json (one per set of arguments). Figures, not tests.
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch
from dogclf.core import atomic_write, configure, environment
from dogclf.data import load_split, unseen_by_imagenet
from dogclf.models import FrozenConfig, create_backbone, frozen_stage, head_probs, imagenet_indices


def group_scores(probs: torch.Tensor, targets: torch.Tensor, mask: np.ndarray, n_classes: int) -> dict:
    "Accuracy, log loss and per-breed accuracy and counts of the photos in `mask`."
    m = torch.as_tensor(mask)
    p, y = probs[m], targets[m]
    right = (p.argmax(1) == y).double()
    counts = torch.bincount(y, minlength=n_classes).double()
    per_breed = torch.bincount(y, weights=right, minlength=n_classes) / counts.clamp(min=1)
    log_loss = -p[torch.arange(len(y)), y].clamp(min=1e-12).log().mean()
    return dict(n=int(m.sum()), acc=float(right.mean()), log_loss=float(log_loss),
                per_breed=per_breed.tolist(), counts=counts.tolist())


def breed_matched(seen: dict, unseen: dict) -> dict:
    "The unseen photos' accuracy minus the seen group's, weighted breed for breed, with two standard errors."
    w = np.array(unseen["counts"]) / unseen["n"]   # the unseen photos' breed mix
    acc, n = np.array(seen["per_breed"]), np.maximum(np.array(seen["counts"]), 1)
    matched = float((w * acc).sum())
    var_seen = float((w ** 2 * acc * (1 - acc) / n).sum())
    var_unseen = unseen["acc"] * (1 - unseen["acc"]) / unseen["n"]
    return dict(seen_matched=matched, gap=unseen["acc"] - matched, two_se=2 * (var_seen + var_unseen) ** 0.5)


def memory_at(cfg, split, arch: str, size: int, out: Path) -> dict:
    "ImageNet's classifier and lesson 02's frozen head, per group of photos, at `size` px."
    idx = imagenet_indices(split.classes)
    if idx is None:
        raise SystemExit(f"{split.classes[:3]}...: these classes are not ImageNet synsets, so there is no "
                         "ImageNet classifier row for them; run this on ImageWoof or Stanford Dogs.")
    t0 = time.time()
    config = FrozenConfig.from_settings(cfg, arch=arch, img_size=size, views=1, cached_tail=False,
                                        batch_size=64)   # finetune_moves.py's frozen stage
    stage = frozen_stage(config, split, out)
    imagenet = create_backbone(arch).get_classifier().eval()
    with torch.no_grad():
        train_probs = imagenet(stage.features.train.X)[:, idx].softmax(1)
    valid_probs, head = stage.imagenet_logits.softmax(1), head_probs(stage.model, stage.features.valid.X)
    y_train, y_valid, k = stage.features.train.y, stage.features.valid.y, len(split.classes)
    unseen = unseen_by_imagenet(split.valid)
    groups = {"ImageNet's classifier": dict(
                  train=group_scores(train_probs, y_train, ~unseen_by_imagenet(split.train), k),
                  val_seen=group_scores(valid_probs, y_valid, ~unseen, k),
                  val_unseen=group_scores(valid_probs, y_valid, unseen, k) if unseen.any() else None),
              "frozen head (lesson 02's recipe)": dict(
                  val_seen=group_scores(head, y_valid, ~unseen, k),
                  val_unseen=group_scores(head, y_valid, unseen, k) if unseen.any() else None)}
    for g in groups.values():
        if g["val_unseen"]:
            g["gaps"] = {name: breed_matched(g[name], g["val_unseen"])
                         for name in ("train", "val_seen") if name in g}
    return dict(size=size, seconds=time.time() - t0, groups=groups)


def show(report: dict):
    "One line per model and group of photos, then the breed-matched gaps."
    for name, g in report["groups"].items():
        cells = [f"{part} {s['acc']:.1%} (log loss {s['log_loss']:.3f}, {s['n']})"
                 for part, s in g.items() if part != "gaps" and s]
        print(f"  {name}: " + "; ".join(cells))
        for part, gap in g.get("gaps", {}).items():
            print(f"    never-trained-on minus {part}, breed for breed: {gap['gap']:+.1%} "
                  f"± {gap['two_se']:.1%} "
                  f"({part} reweighted to their breed mix: {gap['seen_matched']:.1%})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/finetune-moves", help="run folder for the cached passes")
    p.add_argument("--arch", default="tf_efficientnet_lite0")
    p.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    a = p.parse_args()
    out = Path(a.out).resolve()
    cfg = configure(dict(profile="cpu", data=str(Path(a.data).resolve()), out=str(out)), show=False)
    split = load_split(Path(a.data), valid_pct=cfg.valid_pct, seed=cfg.seed, cache_dir=out / ".cache",
                       skipped_to=out / "skipped.json")   # every photo, as finetune_moves.py loads them
    never = lambda items: int(unseen_by_imagenet(items).sum())
    print(f"{a.arch}: {len(split.train)} training photos ({never(split.train)} never in ImageNet's training "
          f"set), {len(split.valid)} report photos ({never(split.valid)})")
    reports = []
    for size in a.sizes:
        reports.append(memory_at(cfg, split, arch=a.arch, size=size, out=out))
        print(f"{size} px ({reports[-1]['seconds']:.0f} s):")
        show(reports[-1])
    report = dict(args=vars(a), n_train=len(split.train), n_val=len(split.valid), sizes=reports,
                  environment=environment())
    path = Path(__file__).with_name("imagenet_memory.json")   # one report per set of arguments, the latest
    kept = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["args"] != report["args"]]
    atomic_write(path, json.dumps(kept + [report], indent=1))


if __name__ == "__main__":
    main()
