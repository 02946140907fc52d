"""Benchmark the frozen stage: backbone forward images/s (eager vs channels_last, under inference_mode),
and the time of 25 head epochs the naive way (backbone every epoch) against cached features.

    python benchmarks/frozen_stage.py --data ../shared/data/imagewoof2-160 --arch tf_efficientnet_lite0 --per-class 10

Prints a table and a JSON line; asserts nothing (figures, not tests)."""
import argparse, json, time
import torch
from dogclf.data import data_config, eval_transform, load_rgb, make_loader, read_split, take_per_class
from dogclf.models import create_backbone, extract_features, freeze_backbone, train_linear_head
from dogclf.train import fit, cosine_warmup, set_seed

def images_per_s(model, x, channels_last: bool, repeats: int = 3) -> float:
    "Forward throughput of `model` on batch `x` under inference_mode (best of `repeats`)."
    m = model.to(memory_format=torch.channels_last) if channels_last else model.to(memory_format=torch.contiguous_format)
    xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
    best = float("inf")
    with torch.inference_mode():
        m(xx[:2])  # warm-up
        for _ in range(repeats): t0 = time.perf_counter(); m(xx); best = min(best, time.perf_counter() - t0)
    return len(x) / best

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True); ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--per-class", type=int, default=10); ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=32); ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(); set_seed(0)
    split = read_split(a.data); train = take_per_class(split.train, a.per_class); valid = take_per_class(split.valid, a.per_class)
    model = create_backbone(a.arch, num_classes=len(split.classes)).eval(); freeze_backbone(model)
    dc = data_config(model); tfm = eval_transform(dc)
    x = torch.stack([tfm(load_rgb(p)) for p, _ in train[:a.batch_size]])
    eager, cl = images_per_s(model, x, False), images_per_s(model, x, True)
    model.to(memory_format=torch.contiguous_format)
    # cached: one pass of the backbone, then the head on features
    t0 = time.perf_counter()
    Xtr, ytr = extract_features(model, make_loader(train, tfm, a.batch_size, workers=a.workers))
    Xva, yva = extract_features(model, make_loader(valid, tfm, a.batch_size, workers=a.workers))
    extract_s = time.perf_counter() - t0
    t0 = time.perf_counter(); _, hist = train_linear_head((Xtr, ytr), (Xva, yva), epochs=a.epochs, lr=0.1, batch_size=a.batch_size); head_s = time.perf_counter() - t0
    # naive: the backbone runs in every epoch; one epoch measured, scaled to `epochs`
    tdl = make_loader(train, tfm, a.batch_size, shuffle=True, workers=a.workers); vdl = make_loader(valid, tfm, a.batch_size, workers=a.workers)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    t0 = time.perf_counter(); fit(model, tdl, vdl, epochs=1, opt=opt, sched=cosine_warmup(opt, 1, len(tdl), 0.5)); naive_epoch_s = time.perf_counter() - t0
    res = dict(arch=a.arch, images=len(train) + len(valid), forward_images_per_s_eager=eager, forward_images_per_s_channels_last=cl,
               cached_s=extract_s + head_s, cached_extract_s=extract_s, cached_head_s=head_s, naive_s=naive_epoch_s * a.epochs,
               epochs=a.epochs, cached_over_naive_speedup=naive_epoch_s * a.epochs / (extract_s + head_s), cached_val_acc=hist[-1]["val_acc"],
               device=str(torch.device("cuda" if torch.cuda.is_available() else "cpu")), threads=torch.get_num_threads())
    print(f"{'measure':<40}{'value':>14}")
    for k, v in res.items(): print(f"{k:<40}{v:>14.4g}" if isinstance(v, float) else f"{k:<40}{v!s:>14}")
    print(json.dumps(res))

if __name__ == "__main__": main()
