"Loader workers never clean up (stop) a loader their parent made: no 'can only test a child process' traceback."
import subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

# A loader the parent dropped, still holding live workers, and left in a reference cycle: only the cycle
# collector frees it. A worker forked for the next loader inherits a copy; if that worker's collector runs
# (the transform calls gc.collect(), as allocation-heavy work does sooner or later), the copy's clean-up tries
# to stop workers that are not the worker's children, and Python prints the AssertionError traceback that
# lesson 00's first cell once showed.
SCRIPT = textwrap.dedent("""
    import gc, sys
    from pathlib import Path
    from PIL import Image
    from dogclf.data import make_loader
    folder = Path(sys.argv[1])
    items = []
    for i in range(8):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(folder / f"{i}.png")
        items.append((folder / f"{i}.png", i % 2))
    def collecting(image):   # a transform whose garbage collection runs in the worker
        gc.collect()
        return [0.0]
    def dropped_in_a_cycle(loader, finish: bool):
        batches = iter(loader)
        if finish:
            list(batches)   # a whole pass: its workers stop at the end of it
        else:
            next(batches)   # a pass left unfinished: its workers are alive
        loader.batches, batches.loader = batches, loader
    for finish in (False, True):
        dropped_in_a_cycle(make_loader(items, collecting, batch_size=2, workers=2), finish)
        for _ in make_loader(items, collecting, batch_size=2, workers=2):
            pass
    print("passes done")
""")

def test_no_worker_cleans_up_its_parents_loader(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0 and "passes done" in r.stdout, r.stderr[-2000:]
    assert "can only test a child process" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
