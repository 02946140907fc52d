"""The frozen-feature pass, candidate by candidate, on the same photos in one run.

    python benchmarks/frozen_pass.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite2 --readme

Lesson 02's pass decodes photos, resizes them and runs the frozen backbone. This script times each
part alone and each way of running the backbone on the same batch of photos: eager PyTorch under
`no_grad` and under `inference_mode`, channels_last, `torch.compile`, ONNX Runtime, one thread vs all,
and the batch size; then the whole pass as lesson 02 runs it. Every candidate's features are checked
against the eager ones (largest absolute difference). Figures, not tests: nothing is asserted.
Writes benchmarks/frozen_pass.json; with --readme rebuilds README's frozen-pass table."""
import argparse, json, tempfile, time
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from dogclf.core import atomic_write, environment, project_root
from dogclf.data import ImageDataset, data_config, eval_transform, make_loader, read_split, take_per_class
from dogclf.models import create_backbone, extract_features, onnx_pass
from dogclf.analysis import update_readme


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
        flops = not name.startswith("decode")   # decoding runs no backbone: no share of the GFLOP/s limit
        share = f"{r['images_per_s'] * res['gflop_per_image'] / limit:.0%}" if flops else ""
        diff = "" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}"
        lines.append(f"| {name} | {r['images_per_s']:.1f} | {r['images_per_s'] / eager:.2f} | {share} | {diff} |")
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
