"""The gpu profile's time per epoch on a T4 and an A100, on paper: no GPU is lent here.

    python benchmarks/gpu_estimate.py --data ../shared/data/imagewoof2-160 --readme

What it combines (figures, not tests):
- the backbone's forward FLOPs per photo at the profile's input size, counted here with
  torch.utils.flop_counter (a training step costs about three forward passes: forward, and a backward
  pass of about twice the forward);
- published throughput of ResNet-50 on those cards: NVIDIA's DeepLearningExamples, ResNet50 v1.5 for
  PyTorch (README, pytorch-21.03 NGC container, mixed precision, one GPU): A100 80GB trains 2,470 img/s;
  T4 has an inference table only (1,198 img/s at batch 256), so its training rate is that divided by the
  inference-to-training ratio the same README gives for a V100 16GB (3,382 / 1,200);
- the photos: one epoch trains on every training photo and scores every validation photo (`fit`);
- the loading of the photos (decode, random resized crop, flip), measured on this machine's cores: a
  GPU that is faster than its loader waits for it, as on Colab's two virtual CPUs.
Prints a table and, with --readme, rewrites README's gpu-estimate section."""
import argparse, time
from pathlib import Path
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode
from dogclf.run import update_readme
from dogclf.core import PROFILES
from dogclf.data import data_config, make_loader, train_transform

PUBLISHED = dict(a100_train=2470, t4_infer=1198, v100_infer=3382, v100_train=1200)   # img/s, ResNet-50 at 224 px


def forward_flops(arch: str, size: int) -> float:
    "Forward FLOPs of one photo through `arch` at `size` pixels (no weights needed)."
    model = timm.create_model(arch, pretrained=False).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    return counter.get_total_flops()


def loader_rate(data: Path, arch: str, size: int, workers: int, photos: int = 512) -> float:
    "Training photos per second that `workers` loader processes decode and augment here."
    items = [(f, 0) for f in sorted((data / "train").rglob("*.JPEG"))[:photos]]
    dl = make_loader(items, train_transform(data_config(arch, size), trivial_augment=False), 64, shuffle=True,
                     workers=workers, seed=0)
    start = time.time()
    for _ in dl:
        pass
    return len(items) / (time.time() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--readme", action="store_true")
    a = p.parse_args()
    gpu = PROFILES["gpu"]
    arch = gpu["arch"]
    size = gpu["img_size"] or data_config(arch)["input_size"][-1]
    ratio = forward_flops(arch, size) / forward_flops("resnet50", 224)   # the published figures are at 224 px
    data = Path(a.data)
    n_train = sum(1 for f in (data / "train").rglob("*") if f.is_file())
    n_val = sum(1 for f in (data / "val").rglob("*") if f.is_file())
    loading = loader_rate(data, arch, size, workers=2)
    infer_per_train = PUBLISHED["v100_infer"] / PUBLISHED["v100_train"]   # scoring is this much faster than training
    cards = {"A100 80GB": (PUBLISHED["a100_train"], PUBLISHED["a100_train"] * infer_per_train),
             "T4": (PUBLISHED["t4_infer"] / infer_per_train, PUBLISHED["t4_infer"])}
    rows = []
    for card, (train, infer) in cards.items():
        train, infer = train / ratio, infer / ratio
        compute = n_train / train + n_val / infer
        rows.append((card, train, compute, n_train / min(train, loading) + n_val / min(infer, loading)))
    flops = forward_flops(arch, size)
    lines = [f"`{arch}` at {size} px: {flops / 1e9:.1f} GFLOPs per photo forward ({ratio:.2f} × ResNet-50 at 224 px); "
             f"one fine-tuning epoch trains on {n_train:,} photos and scores {n_val:,}. Loading (decode, random resized "
             f"crop, flip) with 2 workers on this machine: {loading:.0f} photos/s.",
             "", "| card | training photos/s (published, scaled) | seconds per epoch, GPU only | with 2 loader cores |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {c} | {t:,.0f} | {g:.0f} | {l:.0f} |" for c, t, g, l in rows]
    lines += ["", f"Estimated by `python benchmarks/gpu_estimate.py --data <imagewoof2-160> --readme` from NVIDIA's "
              "published ResNet-50 throughput (DeepLearningExamples, mixed precision; the T4's training rate derived "
              "from its inference rate) and FLOPs counted here; not measured on a GPU. The gpu profile's 20 "
              f"fine-tuning epochs are about {20 * rows[1][3] / 60:.0f} minutes on a T4 with two loader cores and "
              f"{20 * rows[0][2] / 60:.1f} minutes of A100 compute; its 25 head epochs run on cached features in seconds."]
    text = "\n".join(lines)
    print(text)
    if a.readme:
        update_readme(Path(__file__).resolve().parents[1] / "README.md", text, name="gpu-estimate")


if __name__ == "__main__":
    main()
