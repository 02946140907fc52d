"""Does fine-tuning move the backbone, and does it pay? One recipe, several seeds, paired against the frozen head.

    python benchmarks/finetune_moves.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite0 \
        --size 160 --per-class 100 --epochs 3 --seeds 42 43 44 --strategy full --lr 0.01 --ratio 10

Issue 28 asks for a main run of lesson 03 that moves the backbone; this script measures candidates before
one goes into a profile, so it scores them on the choice split (the training photos lesson 04 carves off with
`stratified_split`), never on val/, unless --on val asks for the report split. Lesson 02's frozen stage of the
backbone is made once and its head refitted without the choice photos (`held_out_stage`); then, per seed,
lesson 03's `finetune_run` with the given strategy trains on the remaining photos themselves (random resized
crops and flips, with --aug trivial also TrivialAugment; with --train-size on smaller crops than it is scored
on). With --control the same recipe runs again with strategy "freeze" (the head alone, same photos, steps, rate
and seeds): the main run against it is what moving the backbone adds. Everything is scored on the same photos,
so the comparisons are paired (McNemar, `dogclf.noise.paired`). Per seed it prints the frozen and fine-tuned accuracy, the paired
gain with two paired standard errors, the optimiser steps, the training seconds and how far each layer
group's weights moved (‖ΔW‖/‖W‖). Adds its report to benchmarks/finetune_moves.json (one per recipe; reports
whose args have no "on" were scored on val/, before the choice split was this script's default).
Figures, not tests."""
import argparse, json, time
from dataclasses import replace
from pathlib import Path
import torch
from dogclf.core import atomic_write, configure, environment
from dogclf.data import load_split, stratified_split, unseen_by_imagenet
from dogclf.ensemble import held_out_stage
from dogclf.finetune import FinetuneConfig, finetune_run, weight_change, weights_of
from dogclf.models import FrozenConfig, create_backbone, frozen_stage, head_probs, imagenet_indices
from dogclf.noise import correct, paired, paired_seeds


def imagenet_right(arch: str, classes: list, features: torch.Tensor, targets: torch.Tensor):
    "Per photo, is ImageNet's own classifier of `arch`, restricted to `classes`, right? None if they are not ImageNet's."
    idx = imagenet_indices(classes)
    if not idx:
        return None
    with torch.no_grad():
        return correct(create_backbone(arch).get_classifier()(features)[:, idx], targets)


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
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mixup", type=float, default=0.0)
    p.add_argument("--aug", default="crop-flip", choices=["crop-flip", "trivial"],
                   help="random resized crops and flips, or those and TrivialAugment")
    p.add_argument("--train-size", type=int, default=0,
                   help="train on crops of this side, score at --size (FixRes, Touvron et al. 2019; 0: --size)")
    p.add_argument("--on", default="choice", choices=["choice", "val"],
                   help="score on the choice split carved from the training photos (choose recipes here) or on val/")
    p.add_argument("--head-init", default="random", choices=["random", "imagenet"],
                   help="the frozen head's start: random, or ImageNet's own rows for the breeds (lesson 02)")
    p.add_argument("--control", action="store_true",
                   help="also run the recipe with strategy freeze at the same budget, seed for seed")
    a = p.parse_args()
    out = Path(a.out).resolve()
    cfg = configure(dict(profile="cpu", data=str(Path(a.data).resolve()), out=str(out)), show=False)
    split = load_split(Path(a.data), cfg.valid_pct, cfg.seed, a.per_class or None, a.val_per_class or None,
                       out / ".cache", skipped_to=out / "skipped.json")
    frozen = FrozenConfig.from_settings(cfg, arch=a.arch, img_size=a.size, views=1, cached_tail=False,
                                        batch_size=64, head_init=a.head_init)
    t0 = time.time()
    stage = frozen_stage(frozen, split, out)
    if a.on == "choice":   # the twin: a head that never trained on the choice photos, which it is scored on
        stage, split = held_out_stage(stage, split, stratified_split(split.train, cfg.valid_pct, cfg.seed)[1])
    frozen_probs = head_probs(stage.model, stage.features.valid.X)
    targets = stage.features.valid.y
    right_frozen = correct(frozen_probs, targets)
    unseen = torch.as_tensor(unseen_by_imagenet(split.valid))
    right_imagenet = imagenet_right(a.arch, split.classes, stage.features.valid.X, targets)
    before = weights_of(stage.model)
    print(f"{a.arch} at {a.size} px: {len(split.train)} training, {len(split.valid)} {a.on} photos "
          f"({int(unseen.sum())} never in ImageNet); frozen head ({a.head_init} start) "
          f"{right_frozen.float().mean():.1%}; ImageNet's own classifier, untouched, "
          + (f"{right_imagenet.float().mean():.1%}" if right_imagenet is not None else "none (not ImageNet's classes)")
          + f" ({time.time() - t0:.0f} s)", flush=True)
    runs, rights, control = [], [], []
    for seed in a.seeds:
        config = FinetuneConfig.from_settings(cfg, frozen=frozen, strategy=a.strategy, groups=a.groups, lr=a.lr,
                                              lr_ratio=a.ratio or None, epochs=a.epochs, bn=a.bn,
                                              optimizer=a.optimizer,
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
        if a.control:   # the head alone, trained exactly like this run
            kept = finetune_run(replace(config, strategy="freeze"), split, out, stage=stage)
            control.append(correct(kept.probs, targets))
            run["control_acc"] = float(control[-1].float().mean())
        runs.append(run)
        moved = " ".join(f"{m:.2%}" for m in run["weight_change"])
        print(f"  seed {seed}: fine-tuned {run['val_acc']:.1%}, gain {both['gain']:+.1%} ± {both['two_se']:.1%} "
              f"(p {both['p_value']:.3f}); unseen {seen['gain'] if seen else float('nan'):+.1%}; {steps} steps, "
              f"{result.seconds:.0f} s; ‖ΔW‖/‖W‖ by group: {moved}"
              + (f"; control (freeze, same budget) {run['control_acc']:.1%}" if a.control else ""), flush=True)
    over = paired_seeds(rights, [right_frozen])   # each photo averaged over the seeds, then paired
    over_unseen = paired_seeds([r[unseen] for r in rights], [right_frozen[unseen]]) if unseen.any() else None
    print(f"mean of {len(runs)} seeds against the frozen head, paired: {over['gain']:+.2%} ± {over['two_se']:.2%} "
          f"(sign test p {over['p_value']:.3g}); never in ImageNet: "
          + (f"{over_unseen['gain']:+.2%} ± {over_unseen['two_se']:.2%}" if over_unseen else "none"))
    over_control = paired_seeds(rights, control) if control else None   # seed for seed: what the backbone adds
    if over_control:
        print(f"against its control (freeze at the same budget), paired: {over_control['gain']:+.2%} ± "
              f"{over_control['two_se']:.2%} (sign test p {over_control['p_value']:.3g})")
    over_imagenet = paired_seeds(rights, [right_imagenet]) if right_imagenet is not None else None
    if over_imagenet:
        print(f"against ImageNet's own classifier, untouched ({right_imagenet.float().mean():.1%}), paired: "
              f"{over_imagenet['gain']:+.2%} ± {over_imagenet['two_se']:.2%} (sign test p {over_imagenet['p_value']:.3g})")
    report = dict(args=vars(a), n_train=len(split.train), n_val=len(split.valid), runs=runs, over_seeds=over,
                  over_seeds_unseen=over_unseen, over_control=over_control,
                  imagenet_acc=float(right_imagenet.float().mean()) if right_imagenet is not None else None,
                  over_imagenet=over_imagenet, environment=environment())
    path = Path(__file__).with_name("finetune_moves.json")   # one report per recipe measured, the latest kept
    reports = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["args"] != report["args"]]
    atomic_write(path, json.dumps(reports + [report], indent=1, default=str))


if __name__ == "__main__":
    main()
