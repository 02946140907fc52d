"""Frozen head against fine-tuning on photos held in memory, with lesson 03's own functions.

    python benchmarks/finetune_pays.py --data ../shared/data/imagewoof2-160 --size 64 --per-class 1000 \
        --val-per-class 60 --epochs 3

Lesson 03 measures when fine-tuning pays on the profile's subsets; this script measures one point of
that curve at whatever size you give it (all training photos by default), for several recipes at once,
so a recipe can be checked before it goes into a profile. Every run starts from the same frozen start
(a linear head fitted on the frozen features, from ImageNet's rows for these breeds), sees a random
mirror and translation of every photo each epoch, and is scored on the same validation photos.
Figures, not tests: nothing is asserted. Prints one line per run and writes benchmarks/finetune_pays.json."""
import argparse, copy, json, math, time
from pathlib import Path
import torch
from dogclf.core import atomic_write, environment
from dogclf.data import data_config, load_split
from types import SimpleNamespace
from dogclf.core import PROFILES
from dogclf.finetune import (FinetuneConfig, LowResolution, batch_for, finetune, fit_head, memory_source,
                             photo_tensors, valid_probs)
from dogclf.models import FrozenConfig, create_backbone, imagenet_indices, imagenet_rows
from dogclf.noise import two_se as two_standard_errors
from dogclf.train import accuracy, set_seed

RECIPES = [  # (name, strategy, peak rate, discriminative ratio or None, keep BatchNorm statistics, optimizer)
    ("freeze", "freeze", 1e-3, None, True, "sgd"),
    ("full, one rate, SGD", "full", 1e-3, None, True, "sgd"),
    ("full, ratio 10, AdamW", "full", 3e-4, 10, True, "adamw"),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a folder of photos in a layout lesson 00 reads")
    p.add_argument("--arch", default="tf_efficientnet_lite0")
    p.add_argument("--size", type=int, default=64, help="side of the photos in pixels")
    p.add_argument("--per-class", type=int, default=1000,
                   help="training photos per breed (above a breed's count: all)")
    p.add_argument("--val-per-class", type=int, default=60)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shift", type=int, default=0, help="first shrink every photo to this many px (0: none)")
    args = p.parse_args()
    split = load_split(Path(args.data), train_per_class=args.per_class, val_per_class=args.val_per_class)
    shift = LowResolution(args.shift) if args.shift else None
    cfg = data_config(args.arch, args.size)
    train, valid = photo_tensors(split.train, args.size, shift), photo_tensors(split.valid, args.size, shift)
    start = create_backbone(args.arch)
    rows = imagenet_rows(start.get_classifier(), imagenet_indices(split.classes))
    start.reset_classifier(len(split.classes))
    set_seed(42)
    start = fit_head(start, train, valid, data_cfg=cfg, epochs=25, lr=0.01, seed=42, init=rows)
    settings = SimpleNamespace(**PROFILES["cpu"])   # the frozen start's head settings, recorded in the config
    n_val, out = len(split.valid), []
    print(f"{args.arch} at {args.size} px, {len(split.train)} training and {n_val} validation photos, "
          f"{args.epochs} epochs, shift {args.shift or 'none'}")
    for name, strategy, lr, ratio, keep_bn, optimizer in RECIPES:
        model = copy.deepcopy(start)
        batch = batch_for(len(split.train))
        source = memory_source(model, train, valid, data_cfg=cfg, batch_size=batch)
        t0 = time.time()
        config = FinetuneConfig(frozen=FrozenConfig.from_settings(settings, arch=args.arch, img_size=args.size),
                                strategy=strategy, lr=lr, lr_ratio=ratio, epochs=args.epochs, groups=3,
                                bn="frozen" if keep_bn else "train", optimizer=optimizer, label_smoothing=0.0,
                                batch_size=batch, accum_steps=1, amp=False, seed=42)
        history, _ = finetune(source, config)
        acc = accuracy(*valid_probs(source))
        two_se = two_standard_errors(acc, n_val)
        out.append(dict(run=name, val_acc=acc, two_se=two_se, per_epoch=[r["val_acc"] for r in history],
                        wall_s=time.time() - t0))
        print(f"  {name}: {acc:.1%} (±{two_se:.1%}), per epoch {[round(r['val_acc'], 3) for r in history]}, "
              f"{time.time() - t0:.0f} s")
    report = dict(args=vars(args), n_train=len(split.train), n_val=n_val, runs=out, environment=environment())
    atomic_write(Path(__file__).with_name("finetune_pays.json"), json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
