"Shared fixtures: the real ImageWoof photos beside the checkout, and a local HTTP server."
import functools, http.server, os, shutil, threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "imagewoof2-160"

@pytest.fixture(scope="session")
def woof() -> Path:
    "The real ImageWoof-160 photos (../shared/data/imagewoof2-160, or $DOGCLF_DATA)."
    path = Path(os.environ.get("DOGCLF_DATA") or SHARED)
    if not (path / "train").is_dir(): pytest.fail(f"real photos not found at {path}: set DOGCLF_DATA")
    return path

@pytest.fixture()
def few_photos(woof, tmp_path) -> Path:
    "A copy of 3 training and 2 validation photos per breed (one of them never in ImageNet training), in tmp_path."
    dest = tmp_path / "photos"
    for breed in sorted(p for p in (woof / "train").iterdir() if p.is_dir()):
        val = sorted((woof / "val" / breed.name).iterdir())
        unseen = [p for p in val if p.name.startswith("ILSVRC2012_val_")][:1]
        chosen = sorted(breed.iterdir())[:3] + unseen + [p for p in val if p not in unseen][:2 - len(unseen)]
        for photo in chosen:
            target = dest / photo.relative_to(woof)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(photo, target)
    return dest

class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    "Serves files with HTTP Range support; '/cut/NAME' sends only the first half of NAME and closes."
    def log_message(self, *a): pass
    def do_GET(self):
        cut = self.path.startswith("/cut/")
        data = (Path(self.directory) / self.path.removeprefix("/cut/").lstrip("/")).read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.server.requests.append((self.path, start))   # before answering: the client may finish first
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start)); self.end_headers()
        self.wfile.write(data[start:len(data) // 2] if cut else data[start:])

@pytest.fixture()
def http_dir(tmp_path):
    "A folder served over HTTP on 127.0.0.1; yields (folder, base_url, list of (path, range start) requests)."
    folder = tmp_path / "served"; folder.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(folder)))
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}", srv.requests
    srv.shutdown()
