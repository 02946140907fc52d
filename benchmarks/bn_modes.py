"""Why does BatchNorm following the batches cost lesson 03's comparison so much: the head, or the features?

    python benchmarks/bn_modes.py --data ../shared/data/imagewoof2-160 --sizes 160 64 224
    python benchmarks/bn_modes.py --data ../shared/data/imagewoof2-160 --sizes 160 --per-group --no-train

Lesson 03 ("Why following the batches can collapse") scores the comparison's frozen start, without any
training, with three kinds of BatchNorm statistics: ImageNet's (the ones its head was fitted on), each
batch's, and statistics re-estimated once on the training photos (`recalibrate_bn`). All three keep the head
fitted on ImageNet-normalised features, and the lesson reads the loss as the head's: "any statistics other
than the ones the head was fitted with cost it". This script tests that reading. For each size it also refits
the head on the features the re-estimated statistics give: if the refitted head wins the points back, the cost
was the head's; if it does not, the features themselves lost what told the breeds apart. Beside each it prints
the share of activations that the backbone's BatchNorm+ReLU6 layers clip at 6 (EfficientNet-Lite's
activation), over all such layers and at the last one. With --per-group it re-estimates one layer group's
statistics at a time, the others kept, and says how far they moved: where in the network the cost arises.

Then, at the first size, the comparison's BatchNorm row is run again three ways, per seed: statistics kept
(`bn="frozen"`), following the batches from the usual start (the lesson's row), and following the batches from
the re-estimated statistics with the refitted head. Every run has the comparison's recipe: the cpu profile's
`cmp_arch`, `cmp_steps` optimiser steps of full fine-tuning at `cmp_lr`, ratio `ft_lr_ratio`, SGD, a random
mirror and shift. Each is paired against the first, photo by photo over the seeds (`paired_seeds`).

Everything is scored on the choice split carved from the training photos (`stratified_split`, as lesson 04
does), `cmp_val_per_class` photos per breed; `val/` is not read. Adds its report to benchmarks/bn_modes.json
(one per set of arguments). Figures, not tests.
"""
import argparse, copy, json, tempfile, time
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import DataLoader
from dogclf.core import atomic_write, configure, environment
from dogclf.data import data_config, load_split, stratified_split, take_per_class
from dogclf.finetune import (FinetuneConfig, TensorImages, batch_for, finetune, fit_head, memory_source,
                             photo_tensors, recalibrate_bn, valid_probs)
from dogclf.models import create_backbone
from dogclf.noise import correct, paired_seeds, two_se


def batchnorms(model: nn.Module) -> list:
    "Every BatchNorm layer of `model`, in order."
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def score(model: nn.Module, photos: tuple, data_cfg: dict, batch: int, seed: int,
          batch_stats: bool = False) -> tuple:
    "Which photos `model` gets right, and the share of ReLU6 outputs at 6 (all such layers, the last one)."
    net = copy.deepcopy(model).eval()
    if batch_stats:   # each batch normalised by its own statistics, as in training mode
        for bn in batchnorms(net):
            bn.train()
    relu6 = [bn for bn in batchnorms(net) if isinstance(getattr(bn, "act", None), nn.ReLU6)]
    clipped = [[0, 0] for _ in relu6]
    def counter(i):
        def hook(module, inputs, out):
            clipped[i][0] += int((out >= 6).sum())
            clipped[i][1] += out.numel()
        return hook
    handles = [bn.register_forward_hook(counter(i)) for i, bn in enumerate(relu6)]
    dl = DataLoader(TensorImages(*photos, data_cfg), batch, shuffle=True,
                    generator=torch.Generator().manual_seed(seed))   # batches of mixed breeds
    rights, targets = [], []
    with torch.no_grad():
        for x, y in dl:
            rights.append(net(x).argmax(1) == y)
            targets.append(y)
    for h in handles:
        h.remove()
    shares = [c / max(n, 1) for c, n in clipped]
    mean_share = sum(shares) / len(shares) if shares else None
    return torch.cat(rights), (mean_share, shares[-1] if shares else None)


def reestimate_only(model: nn.Module, names: set, loader) -> nn.Module:
    "A copy of `model` whose BatchNorm layers in `names` have their statistics re-estimated on `loader`."
    net = copy.deepcopy(model).eval()
    chosen = [m for n, m in net.named_modules() if n in names]
    for bn in chosen:
        bn.reset_running_stats()
        bn.momentum = None   # a plain average over the batches, as update_bn does
        bn.train()           # the others keep ImageNet's statistics and normalise by them
    with torch.no_grad():
        for x, _ in loader:
            net(x)
    for bn in chosen:
        bn.momentum = 0.1
    return net.eval()


def bn_groups(model: nn.Module) -> dict:
    "The names of the BatchNorm layers of each layer group: the stem, each block stage, the last convolution."
    groups = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            key = ".".join(name.split(".")[:2]) if name.startswith("blocks.") else name
            groups.setdefault(key, set()).add(name)
    return groups


def statistics_moved(before: nn.Module, after: nn.Module, names: set) -> dict:
    "How far the re-estimated statistics of the layers in `names` are from ImageNet's, over their channels."
    old, new = dict(before.named_modules()), dict(after.named_modules())
    scale = torch.cat([(new[n].running_var + new[n].eps) / (old[n].running_var + old[n].eps) for n in names])
    shift = torch.cat([(new[n].running_mean - old[n].running_mean).abs()    # in ImageNet's deviations
                       / (old[n].running_var + old[n].eps).sqrt() for n in names])
    return dict(var_ratio_p05=float(scale.quantile(0.05)), var_ratio_p95=float(scale.quantile(0.95)),
                mean_shift_p95=float(shift.quantile(0.95)))


def one_group_at_a_time(cfg, s: dict, train: tuple, choose: tuple, batch: int, head_lr: float) -> dict:
    "Accuracy with a refitted head when one layer group's statistics are re-estimated, the others kept."
    loader = DataLoader(TensorImages(*train, s["data_cfg"]), 64)
    out = {}
    for group, names in bn_groups(s["fitted"]).items():
        m = reestimate_only(s["fitted"], names, loader)
        moved = statistics_moved(s["fitted"], m, names)
        same_head = float(score(m, choose, s["data_cfg"], batch, cfg.seed)[0].float().mean())
        m = fit_head(m, train, choose, data_cfg=s["data_cfg"], epochs=cfg.head_epochs, lr=head_lr,
                     seed=cfg.seed)
        refitted = float(score(m, choose, s["data_cfg"], batch, cfg.seed)[0].float().mean())
        out[group] = dict(**moved, same_head=same_head, refitted=refitted)
        print(f"  only {group} re-estimated ({len(names)} layers): {same_head:.1%} with the same head, "
              f"{refitted:.1%} refitted; variance over ImageNet's {moved['var_ratio_p05']:.2f} to "
              f"{moved['var_ratio_p95']:.2f} in 90% of the channels, means moved by up to "
              f"{moved['mean_shift_p95']:.2f} of ImageNet's standard deviation in 95%",
              flush=True)
    return out


def starts(cfg, arch: str, train: tuple, choose: tuple, size: int, head_lr: float, n_classes: int) -> dict:
    "The frozen start (ImageNet's statistics, its head fitted on them), re-estimated, and with a new head."
    data_cfg = data_config(arch, size)
    m = create_backbone(arch, pretrained=True)
    m.reset_classifier(n_classes)
    fitted = fit_head(m, train, choose, data_cfg=data_cfg, epochs=cfg.head_epochs, lr=head_lr, seed=cfg.seed)
    re_estimated = recalibrate_bn(copy.deepcopy(fitted), DataLoader(TensorImages(*train, data_cfg), 64))
    refit = fit_head(copy.deepcopy(re_estimated), train, choose, data_cfg=data_cfg, epochs=cfg.head_epochs,
                     lr=head_lr, seed=cfg.seed)
    return dict(fitted=fitted, re_estimated=re_estimated, refit=refit, data_cfg=data_cfg)


def no_training(cfg, s: dict, choose: tuple, batch: int) -> dict:
    "The four scores of one size, each with its clipped shares."
    rows = {"ImageNet's statistics, head fitted on them": (s["fitted"], False),
            f"each batch's statistics ({batch} photos), same head": (s["fitted"], True),
            "re-estimated on the training photos, same head": (s["re_estimated"], False),
            "re-estimated on the training photos, head refitted on them": (s["refit"], False)}
    out = {}
    for label, (model, per_batch) in rows.items():
        right, (mean_clip, last_clip) = score(model, choose, s["data_cfg"], batch, cfg.seed,
                                              batch_stats=per_batch)
        out[label] = dict(acc=float(right.float().mean()), relu6_at_6=mean_clip, relu6_at_6_last=last_clip)
    return out


def trained(cfg, arch: str, s: dict, train: tuple, choose: tuple, batch: int, folder: Path) -> dict:
    "The comparison's BatchNorm row three ways, once per seed; which photos each run gets right."
    plan = {"statistics kept (bn=frozen)": (s["fitted"], "frozen"),
            "following the batches, usual start": (s["fitted"], "train"),
            "following the batches, re-estimated start, head refitted": (s["refit"], "train")}
    rights = {label: [] for label in plan}
    for seed in cfg.ft_seeds:
        for k, (label, (start, bn)) in enumerate(plan.items()):
            config = FinetuneConfig.from_settings(cfg, arch=arch, strategy="full", lr=cfg.cmp_lr,
                                                  lr_ratio=cfg.ft_lr_ratio, epochs=1, bn=bn, optimizer="sgd",
                                                  label_smoothing=0.0, batch_size=batch, accum_steps=1,
                                                  mixup=0.0, seed=seed)
            src = memory_source(copy.deepcopy(start), train, choose, data_cfg=s["data_cfg"], batch_size=batch,
                                seed=seed, samples=cfg.cmp_steps * batch)
            finetune(src, config, folder / f"run{k}_{seed}.pt", log=False)
            probs, y = valid_probs(src)
            rights[label].append(correct(probs, y))
            print(f"  seed {seed}, {label}: {rights[label][-1].float().mean():.1%}", flush=True)
    return rights


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/bn-modes", help="run folder for the photo list's cache")
    p.add_argument("--sizes", type=int, nargs="+", default=[160, 64], help="the first one also trains")
    p.add_argument("--head-lr", type=float, default=0.01,
                   help="the head's rate (lesson 02's sweep chose 0.01 for Lite0 at 160 px on the cpu run)")
    p.add_argument("--no-train", action="store_true", help="only the scores without training")
    p.add_argument("--per-group", action="store_true",
                   help="at the first size, also re-estimate one layer group's statistics at a time")
    a = p.parse_args()
    out = Path(a.out).resolve()
    cfg = configure(dict(profile="cpu", data=str(Path(a.data).resolve()), out=str(out)), show=False)
    split = load_split(Path(a.data), cfg.valid_pct, cfg.seed, None, None, out / ".cache",
                       skipped_to=out / "skipped.json")
    fit_items, choose_items = stratified_split(split.train, cfg.valid_pct, cfg.seed)
    train_items = take_per_class(fit_items, cfg.cmp_per_class, cfg.seed)
    choose_items = take_per_class(choose_items, cfg.cmp_val_per_class, cfg.seed)
    arch, n_classes = cfg.cmp_arch, len(split.classes)
    batch = batch_for(len(train_items), cfg.batch_size // 2) // 2 * 2   # lesson 03's cmp_batch
    print(f"{arch}: {len(train_items)} training and {len(choose_items)} choice photos, {n_classes} breeds")
    report = dict(args=vars(a), arch=arch, n_train=len(train_items), n_choose=len(choose_items), sizes={})
    for size in a.sizes:
        t0 = time.time()
        train, choose = photo_tensors(train_items, size), photo_tensors(choose_items, size)
        s = starts(cfg, arch, train, choose, size, a.head_lr, n_classes)
        rows = no_training(cfg, s, choose, batch)
        report["sizes"][size] = rows
        noise = two_se(next(iter(rows.values()))["acc"], len(choose_items))
        print(f"{size} px, no training (two standard errors about {noise:.1%}; {time.time() - t0:.0f} s):")
        for label, r in rows.items():
            print(f"  {label}: {r['acc']:.1%}; ReLU6 outputs at 6: {r['relu6_at_6']:.2%} over all layers, "
                  f"{r['relu6_at_6_last']:.2%} at the last")
        if size == a.sizes[0] and a.per_group:
            print(f"{size} px, one layer group's statistics re-estimated at a time:")
            report["per_group"] = one_group_at_a_time(cfg, s, train, choose, batch, a.head_lr)
        if size == a.sizes[0] and not a.no_train:
            with tempfile.TemporaryDirectory(dir=out) as folder:
                rights = trained(cfg, arch, s, train, choose, batch, Path(folder))
            base = next(iter(rights))
            report["trained"] = {label: dict(acc=float(torch.stack(r).float().mean()),
                                             vs_kept=None if label == base else paired_seeds(r, rights[base]))
                                 for label, r in rights.items()}
            print(f"{size} px, {cfg.cmp_steps} steps of full fine-tuning, mean of {len(cfg.ft_seeds)} seeds:")
            for label, r in report["trained"].items():
                vs = r["vs_kept"]
                against = "" if vs is None else (f", {vs['gain']:+.1%} ± {vs['two_se']:.1%} against "
                                                 f"statistics kept (p {vs['p_value']:.3g})")
                print(f"  {label}: {r['acc']:.1%}{against}")
    report["environment"] = environment()
    path = Path(__file__).with_name("bn_modes.json")   # one report per set of arguments, the latest kept
    earlier = json.loads(path.read_text()) if path.exists() else []
    reports = [r for r in earlier if r["args"] != report["args"]]
    atomic_write(path, json.dumps(reports + [report], indent=1, default=str))


if __name__ == "__main__":
    main()
