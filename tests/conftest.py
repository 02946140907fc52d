"Shared fixtures: the real ImageWoof photos beside the checkout, and a local HTTP server."
import functools, http.server, os, threading
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

class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    "Serves files with HTTP Range support; '/cut/NAME' sends only the first half of NAME and closes."
    def log_message(self, *a): pass
    def do_GET(self):
        cut = self.path.startswith("/cut/")
        data = (Path(self.directory) / self.path.removeprefix("/cut/").lstrip("/")).read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start)); self.end_headers()
        self.wfile.write(data[start:len(data) // 2] if cut else data[start:])
        self.server.requests.append((self.path, start))

@pytest.fixture()
def http_dir(tmp_path):
    "A folder served over HTTP on 127.0.0.1; yields (folder, base_url, list of (path, range start) requests)."
    folder = tmp_path / "served"; folder.mkdir()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(folder)))
    srv.requests = []
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}", srv.requests
    srv.shutdown()
