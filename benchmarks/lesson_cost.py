"""Where lesson 03's time goes, from an empty run folder, and what each way of cutting it would save.

    python benchmarks/lesson_cost.py                 # reads results/*/results.json, measures training speed
    python benchmarks/lesson_cost.py --no-measure    # the published runs' own figures only

Republishing the three runs (cpu, laptop, stanford-120) re-executes every lesson from an empty run
folder whenever a lesson changes. This reads what each published `results.json` recorded (each
lesson's time from an empty folder, the training seconds of every run of lesson 03, which a
checkpoint keeps) and splits lesson 03's time into its parts:
  - the main run: the first seed's training seconds, times the number of seeds;
  - the control (the head alone, trained like the main run): its first seed's seconds, times the seeds;
  - the strategy comparison: every row's training seconds, summed over its seeds (a row that reuses
    another row's training, BatchNorm re-estimated after, is counted once);
  - the data curve ("When does fine-tuning pay?"): its points train for the comparison's number of steps,
    so each new point costs about the comparison's freeze row plus its row of the curve's strategy
    (estimated from those rows, not recorded: the curve records no seconds);
  - the rest: what no run recorded: scoring the report photos, the frozen stage's and the starts'
    feature passes, the LR finders, the BatchNorm check, the figures.
It then measures, in this process, how a training step of the whole backbone (BatchNorm frozen, as the
main run trains) scales with the photos' side, so that a smaller training side can be projected with a
measured ratio rather than the square of the side. Figures, not tests: nothing is asserted.
Writes benchmarks/lesson_cost.json."""
import argparse, json, time
from pathlib import Path
import torch, torch.nn as nn
from dogclf.core import atomic_write, environment, project_root
from dogclf.models import create_backbone
from dogclf.train import set_seed
from throughput import best_rate   # benchmarks/ is on the path when this script runs

REUSED = "BatchNorm re-estimated after"   # scores the weights of "BatchNorm follows the batches": trains nothing

def _row_seconds(rows: list) -> dict:
    "The comparison's training seconds per row (summed over its seeds); the row that reuses another's counts 0."
    return {r["run"]: 0.0 if REUSED in r["run"] else float(r.get("wall_s") or 0.0) for r in rows}

def lesson_03_parts(res: dict) -> dict:
    "Lesson 03's from-empty seconds split into the main run, the control, the comparison, the data curve, the rest."
    ft = res["stages"]["finetune"]
    seeds = len(ft.get("seeds") or [1])
    rows = ft["comparison"]
    main = [r for r in rows if r["run"].endswith("all photos")]
    control = [r for r in rows if r["run"].startswith("freeze, the main run")]
    compared = [r for r in rows if r.get("steps") is not None   # the comparison's rows, trained on photos in memory
                and r not in main + control]   # (the frozen stage's row trained no steps here)
    per_row = _row_seconds(compared)
    by_strategy = {r["run"]: per_row[r["run"]] for r in compared}
    point = by_strategy.get("freeze", 0.0) + by_strategy.get(f"{ft['strategy']}, one rate", 0.0)
    reused = sum(1 for p in ft.get("when_it_pays", [])   # the point of the comparison's own photos is its rows
                 if p["setting"] == "no shift" and p["photos_per_class"] == compared[0].get("subset_per_class"))
    new_points = len(ft.get("when_it_pays", [])) - reused
    parts = dict(main_run=float(main[0]["wall_s"]) * seeds if main else 0.0,
                 control=float(control[0]["wall_s"]) * seeds if control else 0.0,
                 comparison=sum(per_row.values()), data_curve=point * new_points)
    total = float(res["lesson_from_empty_s"].get("03_finetune") or res["lesson_wall_s"]["03_finetune"])
    if total < sum(parts.values()):   # that from-empty time is older than these runs: at least their sum
        total = None
    return dict(parts, rest=None if total is None else total - sum(parts.values()), total=total,
                trained=sum(parts.values()), seeds=seeds,
                comparison_rows=len(compared), curve_points=new_points,
                rows=[dict(run=k, seconds=v) for k, v in per_row.items()])

def step_rate(arch: str, side: int, batch: int = 32, steps: int = 5) -> float:
    "Photos per second of a training step of the whole backbone at `side` px, BatchNorm frozen (the main run's)."
    set_seed(0)
    model = create_backbone(arch, num_classes=10, pretrained=False)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(batch, 3, side, side), torch.randint(0, 10, (batch,))
    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return best_rate(step, batch, repeats=steps)

def savings(parts: dict, cost: dict) -> dict:
    "Minutes of lesson 03's recorded training each cut would save, by the measured cost of a smaller side."
    small = min(cost, key=lambda side: cost[side])
    trained = parts["main_run"] + parts["control"] + parts["comparison"] + parts["data_curve"]
    return {"no control": parts["control"] / 60,
            "one seed of the main run (and of the control)": (parts["main_run"] + parts["control"])
            * (1 - 1 / parts["seeds"]) / 60,
            "one seed per comparison row and curve point": (parts["comparison"] + parts["data_curve"])
            * (1 - 1 / parts["seeds"]) / 60,
            f"every run trained at {sorted(cost)[1]} px": trained * (1 - cost[sorted(cost)[1]]) / 60,
            f"every run trained at {small} px": trained * (1 - cost[small]) / 60}

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(project_root() / "results"), help="folder of published runs")
    p.add_argument("--arch", default="tf_efficientnet_lite0", help="the main run's backbone")
    p.add_argument("--sides", default="112,128,160", help="training sides to measure, in pixels")
    p.add_argument("--no-measure", action="store_true", help="skip the training-speed measurement")
    a = p.parse_args(argv)
    report = dict(environment=environment(), runs={})
    for f in sorted(Path(a.results).glob("*/results.json")):
        res = json.loads(f.read_text())
        parts = lesson_03_parts(res)
        lessons = res["lesson_from_empty_s"]
        report["runs"][f.parent.name] = dict(lesson_03=parts, lessons_from_empty_s=lessons,
                                             all_lessons_s=sum(lessons.values()))
        known = parts["total"] is not None
        head = (f"lesson 03 {parts['total'] / 60:.0f} min =" if known else "lesson 03: no time from an empty folder "
                f"on record for these runs (at least their {parts['trained'] / 60:.0f} min of training):")
        print(f"{f.parent.name}: all lessons from empty {sum(lessons.values()) / 60:.0f} min"
              f"{'' if known else ', lesson 03 left out'}; {head} main run {parts['main_run'] / 60:.0f} ({parts['seeds']} seeds) "
              f"+ control {parts['control'] / 60:.0f} + comparison {parts['comparison'] / 60:.0f} "
              f"({parts['comparison_rows']} rows) + data curve {parts['data_curve'] / 60:.0f} "
              f"({parts['curve_points']} new points, estimated)"
              + (f" + the rest {parts['rest'] / 60:.0f}" if known else ""))
    out = Path(__file__).with_name("lesson_cost.json")
    earlier = json.loads(out.read_text()).get("training_photos_per_s") if out.exists() else None
    if not a.no_measure:
        sides = [int(s) for s in a.sides.split(",")]
        rates = {s: step_rate(a.arch, s) for s in sides}
        top = max(sides)
        report["training_photos_per_s"] = dict(arch=a.arch, batch=32, rates=rates,
                                               cost_vs_largest={s: rates[top] / r for s, r in rates.items()})
        print(f"{a.arch}, whole-backbone training step (batch 32, BatchNorm frozen), photos/s: "
              + ", ".join(f"{s} px {r:.1f} ({rates[top] / r:.2f}x the time of {top} px)" for s, r in rates.items()))
    elif earlier:   # --no-measure keeps the speeds measured before instead of dropping them
        report["training_photos_per_s"] = earlier
        print(f"training speeds: the earlier measurement in {out.name} (--no-measure)")
    if "training_photos_per_s" in report:
        cost = {int(s): v for s, v in report["training_photos_per_s"]["cost_vs_largest"].items()}
        report["cuts_min"] = {run: savings(r["lesson_03"], cost) for run, r in report["runs"].items()}
        for run, cuts in report["cuts_min"].items():
            print(f"{run}, minutes each cut would save from lesson 03: "
                  + "; ".join(f"{k}: {v:.0f}" for k, v in cuts.items()))
    atomic_write(out, json.dumps(report, indent=1))
    return report

if __name__ == "__main__":
    main()
