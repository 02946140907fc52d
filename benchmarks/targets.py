"""How far the cpu profile's backbones can go towards its targets: measurements on a finished cpu run.

    dogclf run --profile cpu --data ../shared/data/imagewoof2-160      # first: the run whose caches this reads
    python benchmarks/targets.py --data ../shared/data/imagewoof2-160 --readme

Reads runs/cpu/ (cached trunk activations, the trained heads, results.json, ensemble_predictions.pt)
and measures, on the full val split and on its ILSVRC2012_val_* photos:
  1. the frozen stage with one and with two cached views per training photo (the second view is one
     more trunk pass over the training photos, ~9 min for Lite2 on 2 cores, cached afterwards);
  2. the fine-tuned tail trained on those two views at a higher rate than the LR finder's pick, with
     the profile's label smoothing and without it;
  3. the ceiling of averaging: every subset of the six models the run made (three frozen heads, three
     fine-tuned members with flip TTA), its best subset chosen on val itself (so optimistic), and the
     share of photos that at least one of the six gets right.
Prints a table and the JSON, writes benchmarks/targets.json, and with --readme rebuilds README's
targets section. Figures, not tests: nothing is asserted."""
import argparse, copy, itertools, json, time
from dataclasses import replace
from pathlib import Path
import torch
from dogclf.core import atomic_write, configure, environment, project_root
from dogclf.data import load_split, unseen_by_imagenet
from dogclf.finetune import FinetuneConfig, finetune_run, finetune_source, finetuned_model, valid_probs
from dogclf.models import FrozenConfig, frozen_stage, head_probs
from dogclf.run import update_readme
from dogclf.train import scores

def stage_of(cfg, split, arch: str, views: int):
    "The run's frozen stage of `arch` with `views` cached views: lesson 02's recipe, from the run's caches."
    return frozen_stage(FrozenConfig.from_settings(cfg, arch=arch, views=views), split, cfg.out)

def with_tta(source, unseen) -> dict:
    "Scores of the source's network on val, plus its val accuracy averaged with the mirrored photos."
    p, y = valid_probs(source)
    mirrored, _ = valid_probs(source, mirrored=True)
    return dict(scores(p, y, unseen), val_acc_tta=scores((p + mirrored) / 2, y, unseen)["val_acc"])

def source_of(cfg, split, stage, model):
    return finetune_source(model, stage, split, folder=cfg.out, batch_size=cfg.batch_size, workers=cfg.workers, seed=cfg.seed)

def frozen_and_finetuned(cfg, split, unseen, views: int, lr: float, epochs: int, smoothings: list) -> dict:
    "Frozen Lite head on `views` cached views, then its tail fine-tuned on them (partial, discriminative) with each label smoothing."
    stage = stage_of(cfg, split, cfg.arch, views)
    res = dict(frozen=dict(with_tta(source_of(cfg, split, stage, stage.model), unseen), views=views), finetuned=[])
    for ls in smoothings:   # lesson 03's recipe on `views` views, at this rate and smoothing (each keyed by its config)
        config = FinetuneConfig.from_settings(cfg, lr=lr, epochs=epochs, label_smoothing=ls)
        run = finetune_run(replace(config, frozen=stage.config), split, cfg.out, stage=stage)
        hist = run.history
        res["finetuned"].append(dict(with_tta(run.source, unseen), views=views, lr=lr, epochs=epochs, label_smoothing=ls,
                                     train_s=run.seconds, train_acc=[h["train_acc"] for h in hist],
                                     epoch_val_acc=[h["val_acc"] for h in hist]))
    return res

def the_run(cfg, split, unseen) -> dict:
    "The run's own frozen head and fine-tuned model (one view, the finder's rate), with flip TTA."
    ft = json.loads((Path(cfg.out) / "results.json").read_text())["stages"]["finetune"]
    stage = stage_of(cfg, split, cfg.arch, 1)
    frozen = dict(with_tta(source_of(cfg, split, stage, stage.model), unseen), views=1)
    model = copy.deepcopy(stage.model)
    model.load_state_dict(finetuned_model(cfg.out)[0].state_dict())
    tuned = dict(with_tta(source_of(cfg, split, stage, model), unseen), views=1, lr=ft["lr"], epochs=ft["epochs"],
                 label_smoothing=cfg.label_smoothing)
    return dict(frozen=frozen, finetuned=[tuned])

def ensemble_ceiling(cfg, split, unseen) -> dict:
    "Every subset of the run's frozen heads and fine-tuned members, averaged; the best on val, and the any-member-right share."
    ens = torch.load(Path(cfg.out) / "ensemble_predictions.pt", weights_only=True)
    y = ens["targets"]
    probs = {f"fine-tuned {a} (flip TTA)": p for a, p in ens["members"].items()}
    for a in cfg.archs:
        stage = stage_of(cfg, split, a, 1)
        probs[f"frozen {a}"] = head_probs(stage.model, stage.features.valid.X)
    subsets = [c for r in range(1, len(probs) + 1) for c in itertools.combinations(probs, r)]
    acc = {c: scores(sum(probs[n] for n in c) / len(c), y, unseen) for c in subsets}
    best = max(subsets, key=lambda c: acc[c]["val_acc"])
    right = torch.stack([p.argmax(1) == y for p in probs.values()])
    return dict(members={n: scores(p, y, unseen) for n, p in probs.items()}, subsets=len(subsets), best_subset=list(best),
                best=acc[best], any_member_right=right.any(0).float().mean().item(),
                all_members_wrong=int((~right.any(0)).sum()))

def readme_section(res: dict) -> str:
    "Markdown table of the measurements for README."
    pct = lambda x: f"{100 * x:.1f} %"
    ft = lambda f, run="": (f"fine-tuned tail, {f['views']} view{'s' * (f['views'] > 1)}, lr {f['lr']:.2g}, {f['epochs']} epochs, "
                            f"label smoothing {f['label_smoothing']}{run}", f)
    r1, r2, c = res["views"]["1"], res["views"]["2"], res["ceiling"]
    rows = [("frozen Lite2 + linear head, 1 view per photo (the run)", r1["frozen"]), ("frozen Lite2 + linear head, 2 views per photo", r2["frozen"]),
            *(ft(f, " (the run)") for f in r1["finetuned"]), *(ft(f) for f in r2["finetuned"]),
            (f"best of the {c['subsets']} averages of the run's 6 models, chosen on val", c["best"])]
    cell = lambda s, k: pct(s[k]) if k in s else ""
    table = "\n".join(f"| {n} | {pct(s['val_acc'])} | {cell(s, 'val_acc_tta')} | {pct(s['val_acc_unseen'])} |" for n, s in rows)
    return (f"Measured by `python benchmarks/targets.py --data <imagewoof2-160> --readme` on the cpu run's caches, {res['device']}, {res['date']}.\n\n"
            f"| model | val top-1 ({res['n_val']:,}) | with flip TTA | the {res['n_unseen']} never-in-ImageNet photos |\n| --- | --- | --- | --- |\n{table}\n\n"
            f"At least one of the six models is right on {pct(c['any_member_right'])} of val; all six are wrong on "
            f"{c['all_members_wrong']} photos. The best average ({', '.join(c['best_subset'])}) was picked on val itself, "
            f"so its figure is optimistic.\n")

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True); ap.add_argument("--out", default=None, help="the cpu run's folder (default runs/cpu)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak rate of the 2-view fine-tune"); ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--smoothing", type=float, nargs="+", default=[0.1, 0.0], help="label smoothings of the 2-view fine-tunes")
    ap.add_argument("--readme", action="store_true", help="also rebuild README's targets section")
    a = ap.parse_args(); root = project_root()
    cfg = configure(dict(profile="cpu", data=str(Path(a.data).resolve()), out=a.out or str(root / "runs" / "cpu")), show=False)
    cfg.out = Path(cfg.out)
    split = load_split(cfg.data, cfg.valid_pct, cfg.seed, cfg.train_per_class, cfg.val_per_class, cfg.out / ".cache",
                       skipped_to=cfg.out / "skipped.json")
    unseen = torch.tensor(unseen_by_imagenet(split.valid))
    res = dict(environment(), date=time.strftime("%Y-%m-%d"), arch=cfg.arch, n_val=len(split.valid), n_unseen=int(unseen.sum()),
               views={"1": the_run(cfg, split, unseen), "2": frozen_and_finetuned(cfg, split, unseen, 2, a.lr, a.epochs, a.smoothing)}, ceiling=ensemble_ceiling(cfg, split, unseen))
    print(readme_section(res)); print(json.dumps(res, indent=1))
    atomic_write(root / "benchmarks" / "targets.json", json.dumps(res, indent=1))
    if a.readme: update_readme(root / "README.md", readme_section(res), name="targets")

if __name__ == "__main__": main()
