"""Does fine-tuning move the backbone, and does it pay? One recipe, several seeds, paired against the frozen head.

    python benchmarks/finetune_moves.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite0 \
        --size 160 --per-class 100 --epochs 3 --seeds 42 43 44 --strategy full --lr 0.01 --ratio 10

Issue 28 asks for a main run of lesson 03 that moves the backbone; this script measures candidates before
one goes into a profile. Lesson 02's frozen stage of the backbone (its linear head on cached features,
chosen on nothing but the training photos) is made once; then, per seed, lesson 03's `finetune_run` with
the given strategy trains on the photos themselves (random resized crops and flips, with --aug trivial also
TrivialAugment; with --train-size on smaller crops than it is scored on). Both are scored on every validation photo, so the comparison is
paired (McNemar, `dogclf.noise.paired`). Per seed it prints the frozen and fine-tuned accuracy, the paired
gain with two paired standard errors, the optimiser steps, the training seconds and how far each layer
group's weights moved (‖ΔW‖/‖W‖). Adds its report to benchmarks/finetune_moves.json (one per recipe).
Figures, not tests."""
import argparse, json, time
from pathlib import Path
import torch
from dogclf.core import atomic_write, configure, environment
from dogclf.data import load_split, unseen_by_imagenet
from dogclf.finetune import FinetuneConfig, finetune_run, weight_change, weights_of
from dogclf.models import FrozenConfig, frozen_stage, head_probs
from dogclf.noise import correct, paired, paired_seeds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/finetune-moves", help="run folder for caches and checkpoints")
    p.add_argument("--arch", default="tf_efficientnet_lite0")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--per-class", type=int, default=100, help="training photos per breed (0: all)")
    p.add_argument("--val-per-class", type=int, default=0, help="validation photos per breed (0: all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--strategy", default="full")
    p.add_argument("--groups", type=int, default=9, help="groups trained by partial, head included")
    p.add_argument("--lr", type=float, default=0.01, help="peak rate of the head's group")
    p.add_argument("--ratio", type=float, default=10, help="first trainable group learns lr / ratio (0: one rate)")
    p.add_argument("--bn", default="train", choices=["train", "frozen"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mixup", type=float, default=0.0)
    p.add_argument("--aug", default="crop-flip", choices=["crop-flip", "trivial"],
                   help="random resized crops and flips, or those and TrivialAugment")
    p.add_argument("--train-size", type=int, default=0,
                   help="train on crops of this side, score at --size (FixRes, Touvron et al. 2019; 0: --size)")
    a = p.parse_args()
    out = Path(a.out).resolve()
    cfg = configure(dict(profile="cpu", data=str(Path(a.data).resolve()), out=str(out)), show=False)
    split = load_split(Path(a.data), cfg.valid_pct, cfg.seed, a.per_class or None, a.val_per_class or None,
                       out / ".cache", skipped_to=out / "skipped.json")
    frozen = FrozenConfig.from_settings(cfg, arch=a.arch, img_size=a.size, views=1, cached_tail=False,
                                        batch_size=64)
    t0 = time.time()
    stage = frozen_stage(frozen, split, out)
    frozen_probs = head_probs(stage.model, stage.features.valid.X)
    targets = stage.features.valid.y
    right_frozen = correct(frozen_probs, targets)
    unseen = torch.as_tensor(unseen_by_imagenet(split.valid))
    before = weights_of(stage.model)
    print(f"{a.arch} at {a.size} px: {len(split.train)} training, {len(split.valid)} validation photos "
          f"({int(unseen.sum())} never in ImageNet); frozen head {right_frozen.float().mean():.1%} "
          f"({time.time() - t0:.0f} s)", flush=True)
    runs, rights = [], []
    for seed in a.seeds:
        config = FinetuneConfig.from_settings(cfg, frozen=frozen, strategy=a.strategy, groups=a.groups, lr=a.lr,
                                              lr_ratio=a.ratio or None, epochs=a.epochs, bn=a.bn,
                                              batch_size=a.batch, seed=seed, mixup=a.mixup,
                                              train_size=a.train_size or None, trivial_augment=a.aug == "trivial")
        t0 = time.time()
        result = finetune_run(config, split, out, stage=stage)
        assert torch.equal(result.targets, targets), "the fine-tuned and frozen predictions are on other photos"
        right = correct(result.probs, targets)
        rights.append(right)
        both = paired(right, right_frozen)
        seen = paired(right[unseen], right_frozen[unseen]) if unseen.any() else None
        steps = a.epochs * (len(split.train) // a.batch)
        run = dict(seed=seed, val_acc=float(right.float().mean()), frozen_val_acc=float(right_frozen.float().mean()),
                   paired=both, unseen=seen, steps=steps, train_s=result.seconds, wall_s=time.time() - t0,
                   weight_change=weight_change(before, result.model),
                   history=[{k: r[k] for k in ("epoch", "train_loss", "val_loss", "val_acc")} for r in result.history])
        runs.append(run)
        moved = " ".join(f"{m:.2%}" for m in run["weight_change"])
        print(f"  seed {seed}: fine-tuned {run['val_acc']:.1%}, gain {both['gain']:+.1%} ± {both['two_se']:.1%} "
              f"(p {both['p_value']:.3f}); unseen {seen['gain'] if seen else float('nan'):+.1%}; {steps} steps, "
              f"{result.seconds:.0f} s; ‖ΔW‖/‖W‖ by group: {moved}", flush=True)
    over = paired_seeds(rights, [right_frozen])   # each photo averaged over the seeds, then paired
    over_unseen = paired_seeds([r[unseen] for r in rights], [right_frozen[unseen]]) if unseen.any() else None
    print(f"mean of {len(runs)} seeds against the frozen head, paired: {over['gain']:+.2%} ± {over['two_se']:.2%} "
          f"(sign test p {over['p_value']:.3g}); never in ImageNet: "
          + (f"{over_unseen['gain']:+.2%} ± {over_unseen['two_se']:.2%}" if over_unseen else "none"))
    report = dict(args=vars(a), n_train=len(split.train), n_val=len(split.valid), runs=runs, over_seeds=over,
                  over_seeds_unseen=over_unseen, environment=environment())
    path = Path(__file__).with_name("finetune_moves.json")   # one report per recipe measured, the latest kept
    reports = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["args"] != report["args"]]
    atomic_write(path, json.dumps(reports + [report], indent=1, default=str))


if __name__ == "__main__":
    main()
