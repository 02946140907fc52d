"""Images/s of a DistributedDataParallel training step on 1 and 2 processes here, and the gradient all-reduce's cost.

    python benchmarks/ddp.py --data ../shared/data/imagewoof2-160

The cpu profile's main run is the workload: the whole of tf_efficientnet_lite0 fine-tuned on photos at 160 px with a
global batch of 32 (ft_batch_size). For N = 1 and 2 the script starts N processes with torchrun (gloo on the CPU); each
trains on its 32 / N photos of every step (forward, backward with DDP's gradient all-reduce, SGD step), timed after a
warm-up step: images/s = 32 × steps / seconds. On 2 processes it also times the all-reduce alone, of as many float32
values as the model has trainable parameters, which is what DDP sends at every step.

No real speed-up is expected on a 2-core machine: one process can keep both cores busy (torch's intra-op threads),
while torchrun gives each of 2 processes one thread, so they do the same arithmetic on the same cores and add the
all-reduce. DDP pays when each process has a device (a GPU, a machine) of its own. A single process is measured
with 2 threads and with 1: when other work shares the machine, a 2-thread process waits at every parallel region
for a thread that is not running, and can be several times slower than one thread. Figures, not tests."""
import argparse, json, os, statistics, subprocess, sys, time
from pathlib import Path
import torch, torch.nn as nn

def _photos(data: str, n: int, size: int) -> tuple:
    "The first `n` training photos of `data` through the evaluation transform at `size` px, and their labels."
    from dogclf.data import data_config, eval_transform, read_split
    split = read_split(Path(data))
    tfm = eval_transform(data_config("tf_efficientnet_lite0", size))
    items = split.train[:: max(1, len(split.train) // n)][:n]
    from dogclf.data import load_rgb
    return torch.stack([tfm(load_rgb(p)) for p, _ in items]), torch.tensor([y for _, y in items]), len(split.classes)

def _allreduce_ms(n_values: int, repeats: int = 5) -> float:
    "Median milliseconds of one all-reduce of `n_values` float32 numbers over the process group."
    import torch.distributed as dist
    flat = torch.zeros(n_values)
    times = []
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)

def worker(data: str, batch: int, steps: int, size: int):
    "One process of the measurement, under torchrun: its share of every batch, timed; rank 0 prints a JSON line."
    import timm
    import torch.distributed as dist
    from dogclf.distributed import setup, teardown, wrap
    from dogclf.train import train_mode
    rank, world, device = setup("gloo")
    x, y, n_classes = _photos(data, batch, size)
    x, y = x[rank::world].contiguous(memory_format=torch.channels_last), y[rank::world]   # this process's share
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", num_classes=n_classes)   # the weights do not change the time
    net = wrap(model, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    def step():
        train_mode(net)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()   # warm-up
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    allreduce = _allreduce_ms(params) if world > 1 else None
    if rank == 0:
        print("RESULT " + json.dumps(dict(processes=world, threads=torch.get_num_threads(), images_per_s=batch * steps / seconds,
                                          step_s=seconds / steps, params=params, allreduce_ms=allreduce)), flush=True)
    teardown()

def measure(n: int, a, threads: int | None = None) -> dict:
    "Run the measurement on `n` processes with torchrun (`threads` each; None: torch's choice); rank 0's result."
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), __file__, "--worker",
           "--data", a.data, "--batch", str(a.batch), "--steps", str(a.steps), "--size", str(a.size)]
    root = str(Path(__file__).resolve().parents[1])
    env = os.environ | dict(PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]), CUDA_VISIBLE_DEVICES="")
    env = env | (dict(OMP_NUM_THREADS=str(threads)) if threads else {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{n} process(es) failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a folder of photos (train/ and val/, or one folder per class)")
    ap.add_argument("--batch", type=int, default=32, help="the global batch (the cpu profile's ft_batch_size)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--size", type=int, default=160, help="photo side in pixels (the cpu profile's ft_img_size)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.data, a.batch, a.steps, a.size)
    runs = [measure(1, a), measure(1, a, threads=1), measure(2, a)]   # torchrun gives 2 processes 1 thread each
    two = runs[-1]
    print(f"tf_efficientnet_lite0, whole network, {a.size} px, global batch {a.batch}, {os.cpu_count()} CPU cores, gloo; "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows a process with 2 threads most)")
    for r in runs:
        print(f"{r['processes']} process(es), {r['threads']} thread(s) each: {r['images_per_s']:6.1f} images/s "
              f"({r['step_s']:.2f} s a step)")
    mb = two["params"] * 4 / 1e6
    best = max(runs[:2], key=lambda r: r["images_per_s"])
    print(f"speed-up of 2 processes over the faster single process ({best['threads']} thread(s)): "
          f"{two['images_per_s'] / best['images_per_s']:.2f}×")
    print(f"all-reduce of {two['params']:,} float32 gradients ({mb:.1f} MB) over 2 processes: {two['allreduce_ms']:.0f} ms, "
          f"{two['allreduce_ms'] / 1000 / two['step_s']:.0%} of a 2-process step")
    print(json.dumps(dict(runs=runs, batch=a.batch, size=a.size, cores=os.cpu_count(), load=os.getloadavg()[0])))

if __name__ == "__main__":
    main()
