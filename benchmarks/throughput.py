"""Throughput of every part of the pipeline on this machine, against its own matrix-multiply limit.

    python benchmarks/throughput.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite2 --readme

Measures, in one process: images/s of data loading (decode + transform, in the main process and
through the DataLoader's workers); of backbone inference (eager, channels_last, ONNX Runtime); of
training steps (the whole network on photos, and the tail alone on cached activations, as the cpu
profile fine-tunes); and the backbone's achieved GFLOP/s as a fraction of a float32 matrix multiply's.
Each lesson's wall time is in README's table of published runs (`dogclf publish` records it), not here:
a run folder's own times depend on what its caches already held.
Prints a table and the JSON, writes benchmarks/results.json, and with --readme rebuilds README's
benchmark section. Figures, not tests: nothing is asserted."""
import argparse, json, tempfile, time
from pathlib import Path
import torch, torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode
from dogclf.data import ImageDataset, data_config, eval_transform, make_loader, read_split, take_per_class
from dogclf.models import Tail, create_backbone, forward_trunk, tail_start
from dogclf.finetune import apply_strategy
from dogclf.run import update_readme
from dogclf.core import atomic_write, environment, project_root
from dogclf.train import set_seed, train_mode

def best_rate(fn, n: int, repeats: int = 3) -> float:
    "n / the fastest of `repeats` timed calls of fn (after one warm-up call)."
    fn(); best = float("inf")
    for _ in range(repeats): t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    return n / best

def matmul_gflops(n: int = 2048) -> float:
    "float32 matrix-multiply GFLOP/s of this machine with torch's threads (the practical ceiling)."
    a, b = torch.randn(n, n), torch.randn(n, n)
    return best_rate(lambda: a @ b, 2 * n ** 3, repeats=5) / 1e9

def flops_per_image(model: nn.Module, x: torch.Tensor) -> float:
    "Forward FLOPs per image (multiply and add counted separately), by torch's FlopCounterMode."
    with FlopCounterMode(display=False) as fc, torch.inference_mode(): model(x)
    return fc.get_total_flops() / len(x)

def loading_rates(items: list, tfm, workers: int) -> dict:
    "Images/s of decode + transform in the main process, and through a DataLoader with `workers`."
    ds = ImageDataset(items, tfm)
    t0 = time.perf_counter(); [ds[i] for i in range(len(ds))]; main = len(ds) / (time.perf_counter() - t0)
    dl = make_loader(items, tfm, 32, workers=workers)
    t0 = time.perf_counter(); [None for _ in dl]; loader = len(ds) / (time.perf_counter() - t0)
    return {"data loading, main process": main, f"data loading, DataLoader {workers} workers": loader}

def inference_rates(model: nn.Module, x: torch.Tensor, dc: dict) -> dict:
    "Forward images/s: eager, channels_last (both under inference_mode) and ONNX Runtime on the exported model."
    import onnxruntime as ort
    from dogclf.analysis import export_onnx
    res = {}
    with torch.no_grad():   # not inference_mode: converting the weights to channels_last there would make them inference tensors
        res["inference, eager"] = best_rate(lambda: model(x), len(x))
        cl, xcl = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        res["inference, channels_last"] = best_rate(lambda: cl(xcl), len(x))
        model.to(memory_format=torch.contiguous_format)
    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(model, dc, ["c"] * model.num_classes, ["c"] * model.num_classes, Path(d))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        raw = (x * torch.tensor(dc["std"])[:, None, None] + torch.tensor(dc["mean"])[:, None, None]).numpy()  # the graph normalises
        res["inference, ONNX Runtime"] = best_rate(lambda: sess.run(["logits"], {"image": raw}), len(x))
    return res

def training_rates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, groups: int) -> dict:
    "Training-step images/s (forward, backward, SGD step): the whole network, and the tail on cached activations."
    res = {}
    for label, strategy in [("training step, whole network (full)", "full"), (f"training step, tail only ({groups} groups, cached)", "partial")]:
        apply_strategy(model, strategy, groups); start = tail_start(model, groups) if strategy == "partial" else 0
        with torch.no_grad(): h = forward_trunk(model, x, start)
        net = Tail(model, start); opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        def step():
            train_mode(net); loss = nn.functional.cross_entropy(net(h), y); opt.zero_grad(); loss.backward(); opt.step()
        res[label] = best_rate(step, len(x), repeats=2)
    model.eval(); return res

def readme_section(res: dict) -> str:
    "Markdown table of the benchmark for README."
    unit = lambda k: ("×" if "speed-up" in k else "GFLOP" if "per image" in k else
                      "" if "GFLOP/s" in k or "fraction" in k else "images/s")
    rows = "\n".join(f"| {k} | {v:,.3g} {unit(k)} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in res["figures"].items())
    return (f"Measured by `python benchmarks/throughput.py --data <imagewoof2-160> --arch {res['arch']} --readme` on {res['device']}, "
            f"{res['date']}, batch {res['batch']} at {res['size']} px, torch {res['versions']['torch']} with {res['threads']} threads.\n\n"
            f"| measure | value |\n| --- | --- |\n{rows}\n")

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True); ap.add_argument("--arch", default="tf_efficientnet_lite2")
    ap.add_argument("--batch", type=int, default=32); ap.add_argument("--photos", type=int, default=256, help="photos for the loading test")
    ap.add_argument("--workers", type=int, default=2); ap.add_argument("--groups", type=int, default=3, help="groups the cached tail trains")
    ap.add_argument("--readme", action="store_true", help="also rebuild README's benchmark section")
    a = ap.parse_args(); set_seed(0); root = project_root()
    split = read_split(a.data); items = take_per_class(split.train, max(1, a.photos // len(split.classes)))
    model = create_backbone(a.arch, num_classes=len(split.classes)).eval(); dc = data_config(model); tfm = eval_transform(dc)
    ds = ImageDataset(items, tfm); x = torch.stack([ds[i][0] for i in range(a.batch)]); y = torch.tensor([items[i][1] for i in range(a.batch)])
    figures = {"matrix multiply float32 (2048²), GFLOP/s": matmul_gflops()}
    figures |= loading_rates(items, tfm, a.workers)
    inf = inference_rates(model, x, dc); figures |= inf
    gflop = flops_per_image(model, x[:4]) / 1e9; best = max(inf["inference, eager"], inf["inference, channels_last"])
    figures[f"{a.arch} forward GFLOP per image"] = gflop
    figures["achieved inference GFLOP/s (best PyTorch)"] = gflop * best
    figures["fraction of the matrix-multiply GFLOP/s"] = gflop * best / figures["matrix multiply float32 (2048²), GFLOP/s"]
    figures |= training_rates(model, x, y, a.groups)
    env = environment()
    res = dict(arch=a.arch, batch=a.batch, size=dc["input_size"][-1], threads=torch.get_num_threads(), date=time.strftime("%Y-%m-%d"),
               device=env["device"], versions=env["versions"], figures=figures)
    w = max(map(len, figures)) + 2
    print(f"{'measure':<{w}}{'value':>12}")
    for k, v in figures.items(): print(f"{k:<{w}}{v:>12.4g}")
    print(json.dumps(res))
    atomic_write(root / "benchmarks" / "results.json", json.dumps(res, indent=1))
    if a.readme: update_readme(root / "README.md", readme_section(res), name="bench")

if __name__ == "__main__": main()
