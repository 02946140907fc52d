"""The frozen-feature pass, candidate by candidate, on the same photos in one run.

    python benchmarks/frozen_pass.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite2 --readme

Lesson 02's pass decodes photos, resizes them and runs the frozen backbone. This script times each
part alone and each way of running the backbone on the same batch of photos: eager PyTorch under
`no_grad` and under `inference_mode`, channels_last, `torch.compile`, ONNX Runtime, one thread vs all,
and the batch size; then the whole pass as lesson 02 runs it. Every candidate's features are checked
against the eager ones (largest absolute difference). Lessons 02-04 also run the backbone's last layer
groups (the tail) over cached trunk activations, in eager PyTorch, to pool features, to score and to
fine-tune: the tail is timed too, in the memory layout and batch size it ran in before and in the ones
the library uses now. Figures, not tests: nothing is asserted.
Writes benchmarks/frozen_pass.json; with --readme rebuilds README's frozen-pass table."""
import argparse, json, tempfile, time
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from dogclf.core import atomic_write, environment, project_root
from dogclf.data import ImageDataset, data_config, eval_transform, make_loader, read_split, take_per_class
from dogclf.models import (Tail, create_backbone, extract_features, forward_trunk, onnx_pass, run_tail,
                           tail_start)
from dogclf.finetune import apply_strategy
from dogclf.train import train_mode
from dogclf.run import update_readme


def seconds(fn, repeats: int = 3) -> float:
    "The fastest of `repeats` timed calls of fn, after one warm-up call."
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(n: int = 2048) -> float:
    "float32 matrix-multiply GFLOP/s with torch's threads: the practical ceiling of this machine."
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / seconds(lambda: a @ b, 5) / 1e9


def pooled(model, x):
    "The pooled pre-classifier features, as extract_features computes them."
    return model.forward_head(model.forward_features(x), pre_logits=True)


class Pooled(torch.nn.Module):
    "The pooled-feature function as a module, for export."
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return pooled(self.model, x)


def onnx_session(model, x, folder: Path):
    "An ONNX Runtime session of the pooled-feature function (exported with torch.onnx)."
    import onnxruntime as ort
    path = folder / "pooled.onnx"
    torch.onnx.export(Pooled(model).eval(), (x,), str(path), input_names=["x"], output_names=["f"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def candidates(model, x: torch.Tensor, folder: Path) -> dict:
    "name -> a function computing the pooled features of batch x."
    xcl = x.contiguous(memory_format=torch.channels_last)
    cl = create_backbone(ARGS.arch, num_classes=0).eval().to(memory_format=torch.channels_last)
    compiled = torch.compile(create_backbone(ARGS.arch, num_classes=0).eval())
    sess = onnx_session(model, x, folder)
    def under(ctx, fn):
        def run():
            with ctx():
                return fn()
        return run
    return {
        "eager, no_grad": under(torch.no_grad, lambda: pooled(model, x)),
        "eager, inference_mode": under(torch.inference_mode, lambda: pooled(model, x)),
        "channels_last, inference_mode": under(torch.inference_mode, lambda: pooled(cl, xcl)),
        "torch.compile, inference_mode": under(torch.inference_mode, lambda: pooled(compiled, x)),
        "ONNX Runtime": lambda: torch.from_numpy(sess.run(["f"], {"x": x.numpy()})[0]),
    }


def backbone_rates(model, x: torch.Tensor) -> tuple:
    "(rows, reference): images/s and the largest difference from eager features, per candidate."
    rows = {}
    with torch.no_grad():
        reference = pooled(model, x)
    with tempfile.TemporaryDirectory() as d:
        for name, fn in candidates(model, x, Path(d)).items():
            t0 = time.perf_counter()
            out = fn()
            first = time.perf_counter() - t0
            rows[name] = dict(images_per_s=len(x) / seconds(fn), max_abs_diff=float((out - reference).abs().max()),
                              first_call_s=first)
    return rows


def thread_and_batch_rates(model, x: torch.Tensor) -> dict:
    "Eager inference_mode images/s with one thread, and with half and twice the batch."
    rows = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.inference_mode():
        rows["eager, 1 thread"] = len(x) / seconds(lambda: pooled(model, x))
    torch.set_num_threads(threads)
    with torch.inference_mode():
        for b in (len(x) // 4, len(x) // 2):
            rows[f"eager, batch {b}"] = b / seconds(lambda: pooled(model, x[:b]))
    return rows


def loader_rates(items: list, tfm, batch: int) -> dict:
    "Images/s of decoding and resizing alone: in the main process, and through the loader's workers."
    ds = ImageDataset(items, tfm)
    rows = {"decode + resize, main process": len(ds) / seconds(lambda: [ds[i] for i in range(len(ds))], 1)}
    for w in (1, 2):
        dl = make_loader(items, tfm, batch, workers=w)
        rows[f"decode + resize, loader {w} worker(s)"] = len(ds) / seconds(lambda: [None for _ in dl], 1)
    return rows


def whole_pass(model, items: list, tfm, batch: int) -> dict:
    "Images/s of lesson 02's pass end to end (loader with 2 workers), with each engine of cached_pass."
    dl = make_loader(items, tfm, batch, workers=2)
    return {"whole pass, engine torch (extract_features, 2 workers)":
                len(items) / seconds(lambda: extract_features(model, dl), 1),
            "whole pass, engine onnx (onnx_pass, 2 workers; the cpu and laptop profiles)":
                len(items) / seconds(lambda: onnx_pass(model, None, dl), 1)}


def tail_rates(x: torch.Tensor, groups: int = 3) -> dict:
    "Images/s of the tail (the last `groups` layer groups) on cached activations: scoring and training steps."
    model = create_backbone(ARGS.arch, num_classes=10).eval()
    start = tail_start(model, groups)
    with torch.inference_mode():
        acts = forward_trunk(model, x, start).half()   # what lesson 02 caches
    acts = acts.repeat(4, 1, 1, 1)                     # 4 batches
    tail = Tail(model, start).eval()
    def contiguous_pass(batch):                        # the layout the tail used to run in
        with torch.inference_mode():
            return torch.cat([tail.model.forward_head(_seq(tail, acts[i:i + batch].float()))
                              for i in range(0, len(acts), batch)])
    reference = contiguous_pass(64)
    rows = {}
    scorers = {"tail scoring, contiguous, batch 256 (before)": lambda: contiguous_pass(256),
               "tail scoring, contiguous, batch 64": lambda: contiguous_pass(64),
               "tail scoring, channels_last, batch 64 (run_tail now)": lambda: run_tail(model, start, acts)}
    for name, fn in scorers.items():
        diff = float((fn() - reference).abs().max())
        rows[name] = dict(images_per_s=len(acts) / seconds(fn, 1), max_abs_diff=diff)
    apply_strategy(model, "partial", groups)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    y = torch.randint(0, 10, (len(acts),))
    def train_steps(channels_last: bool):
        train_mode(model, freeze_bn=True)
        for i in range(0, len(acts), 64):
            h = acts[i:i + 64].float()
            logits = tail(h) if channels_last else tail.model.forward_head(_seq(tail, h))
            loss = torch.nn.functional.cross_entropy(logits, y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    rows["tail training step, contiguous, batch 64 (before)"] = dict(
        images_per_s=len(acts) / seconds(lambda: train_steps(False), 1))
    rows["tail training step, channels_last, batch 64 (fit now)"] = dict(
        images_per_s=len(acts) / seconds(lambda: train_steps(True), 1))
    return rows


def _seq(tail, h):
    "The tail's layers on h in the layout h comes in (Tail.forward makes it channels_last)."
    for m in tail.layers:
        h = m(h)
    return h


def readme_section(res: dict) -> str:
    "Markdown table of the run for README."
    limit = res["matmul_gflops"]
    lines = [f"Measured by `python benchmarks/frozen_pass.py --data <imagewoof2-160> --arch {res['arch']} --readme` "
             f"on {res['device']}, {res['date']}: {res['photos']} photos, batch {res['batch']} at {res['size']} px, "
             f"torch {res['versions']['torch']}, {res['threads']} threads. The machine's float32 matrix multiply "
             f"runs at {limit:.0f} GFLOP/s; the backbone needs {res['gflop_per_image']:.2f} GFLOP per photo.", "",
             "| candidate | images/s | × eager | share of the machine's limit | largest difference from eager |",
             "| --- | --- | --- | --- | --- |"]
    eager = res["rows"]["eager, no_grad"]["images_per_s"]
    for name, r in res["rows"].items():
        if name.startswith("tail"):
            continue   # their own table below
        flops = not name.startswith("decode")   # decoding runs no backbone: no share of the GFLOP/s limit
        share = f"{r['images_per_s'] * res['gflop_per_image'] / limit:.0%}" if flops else ""
        diff = "" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}"
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['images_per_s'] / eager:.2f} | {share} | {diff} |")
    tails = [n for n in res["rows"] if n.startswith("tail")]
    if tails:
        lines += ["", f"The tail: the last 3 layer groups of {res['arch']} on cached activations of {res['batch']} "
                      "photos repeated 4 times (× compares with the first row of this table).", "",
                  "| tail candidate | images/s | × contiguous, batch 256 | largest difference |",
                  "| --- | --- | --- | --- |"]
        base = res["rows"][tails[0]]["images_per_s"]
        for name in tails:
            r = res["rows"][name]
            diff = "" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}"
            lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['images_per_s'] / base:.2f} | {diff} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="tf_efficientnet_lite2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--photos", type=int, default=320, help="photos for the loader and whole-pass figures")
    ap.add_argument("--readme", action="store_true", help="also rebuild README's frozen-pass section")
    global ARGS
    ARGS = ap.parse_args()
    torch.manual_seed(0)
    split = read_split(ARGS.data)
    items = take_per_class(split.train, max(1, ARGS.photos // len(split.classes)))
    model = create_backbone(ARGS.arch, num_classes=0).eval()
    dc = data_config(model)
    tfm = eval_transform(dc)
    ds = ImageDataset(items, tfm)
    x = torch.stack([ds[i][0] for i in range(ARGS.batch)])
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        pooled(model, x[:2])
    rows = {k: dict(images_per_s=v) for k, v in loader_rates(items, tfm, ARGS.batch).items()}
    rows |= backbone_rates(model, x)
    model.eval()
    rows |= {k: dict(images_per_s=v) for k, v in thread_and_batch_rates(model, x).items()}
    rows |= {k: dict(images_per_s=v) for k, v in whole_pass(model, items, tfm, ARGS.batch).items()}
    rows |= tail_rates(x)
    env = environment()
    res = dict(arch=ARGS.arch, batch=ARGS.batch, photos=len(items), size=dc["input_size"][-1],
               threads=torch.get_num_threads(), date=time.strftime("%Y-%m-%d"), device=env["device"],
               versions=env["versions"], matmul_gflops=matmul_gflops(), gflop_per_image=fc.get_total_flops() / 2e9,
               rows=rows)
    print(readme_section(res))
    root = project_root()
    atomic_write(root / "benchmarks" / "frozen_pass.json", json.dumps(res, indent=1))
    if ARGS.readme:
        update_readme(root / "README.md", readme_section(res), "frozen-pass")


if __name__ == "__main__":
    main()
