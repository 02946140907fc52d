"download and get_dataset against a real HTTP server on 127.0.0.1."
import dataclasses, hashlib, http.server, io, tarfile, threading
import pytest
from dogclf import data as D

def _tarball(path, members, mode="w:gz"):
    "Write a .tgz (or, with mode 'w', a plain .tar) with {name: bytes} members."
    with tarfile.open(path, mode) as t:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            t.addfile(info, io.BytesIO(content))
    return path

def test_download_verifies_and_is_idempotent(http_dir, tmp_path, capsys):
    folder, url, requests = http_dir
    blob = _tarball(folder / "woof.tgz", {"woof/train/a/1.txt": b"x" * 5000}).read_bytes()
    md5 = hashlib.md5(blob).hexdigest()
    dest = D.download(f"{url}/woof.tgz", tmp_path / "woof.tgz", size=len(blob), md5=md5)
    assert dest.read_bytes() == blob and not (tmp_path / "woof.tgz.part").exists()
    assert "woof" in capsys.readouterr().err          # the progress bar was drawn
    D.download(f"{url}/woof.tgz", dest, size=len(blob))  # second call: no request at all
    assert len(requests) == 1

def test_checksum_mismatch_is_an_error_and_leaves_nothing(http_dir, tmp_path):
    folder, url, _ = http_dir
    (folder / "f.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="checksum mismatch"):
        D.download(f"{url}/f.bin", tmp_path / "f.bin", md5="0" * 32)
    assert not (tmp_path / "f.bin").exists()
    assert not (tmp_path / "f.bin.part").exists()

def test_truncated_transfer_resumes_with_range(http_dir, tmp_path):
    folder, url, requests = http_dir
    blob = bytes(range(256)) * 400
    (folder / "big.bin").write_bytes(blob)
    dest = tmp_path / "big.bin"
    with pytest.raises(D.DownloadError, match="big.bin") as e:   # the server closes half-way, every time
        D.download(f"{url}/cut/big.bin", dest, size=len(blob), retries=1)
    assert "big.bin.part is resumed next time" in str(e.value)
    part = tmp_path / "big.bin.part"
    assert 0 < part.stat().st_size < len(blob)             # the partial file is kept
    D.download(f"{url}/big.bin", dest, size=len(blob), md5=hashlib.md5(blob).hexdigest())
    assert dest.read_bytes() == blob
    assert requests[-1] == ("/big.bin", len(blob) // 2)    # the second request asked only for the rest

def test_no_network_error_says_what_to_do(tmp_path):
    with pytest.raises(D.DownloadError) as e:
        D.download("http://127.0.0.1:9/imagewoof2-160.tgz", tmp_path / "x.tgz", retries=1, timeout=2)
    assert "127.0.0.1:9" in str(e.value) and str(tmp_path) in str(e.value) and "DOGCLF_DATA" in str(e.value)

def test_traversal_in_archive_is_rejected(tmp_path):
    bad = _tarball(tmp_path / "bad.tgz", {"ok.txt": b"1", "../escaped.txt": b"2"})
    with pytest.raises(ValueError, match="Unsafe path"):
        D.safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()

def test_get_dataset_downloads_extracts_once(http_dir, tmp_path, monkeypatch):
    folder, url, requests = http_dir
    members = {"imagewoof2-160/train/n02088364/a.JPEG": b"j", "imagewoof2-160/val/n02088364/b.JPEG": b"k"}
    blob = _tarball(folder / "imagewoof2-160.tgz", members).read_bytes()
    archive = D.Archive(f"{url}/imagewoof2-160.tgz", len(blob), hashlib.md5(blob).hexdigest())
    info = D.DatasetInfo("imagewoof-160", "imagewoof2-160", "imagewoof", (archive,))
    monkeypatch.setitem(D.DATASETS, "imagewoof-160", info)
    path = D.get_dataset("imagewoof-160", tmp_path / "data")
    assert (path / "train" / "n02088364" / "a.JPEG").read_bytes() == b"j"
    assert D.get_dataset("imagewoof-160", tmp_path / "data") == path and len(requests) == 1

class _StrictHandler(http.server.BaseHTTPRequestHandler):
    "Answers as real servers do: 404 for a missing file, 206 with Content-Range, 416 past the end."
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.server.folder / self.path.lstrip("/")
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.server.requests.append((self.path, start))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

@pytest.fixture()
def strict_http(tmp_path):
    "A folder served on 127.0.0.1 by _StrictHandler; yields (folder, base_url, requests)."
    folder = tmp_path / "strict"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StrictHandler)
    server.folder, server.requests = folder, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", server.requests
    server.shutdown()

def test_whole_part_left_by_a_stopped_run_is_used(strict_http, tmp_path):
    "15.10a: a whole .part (the run stopped while checking it) gets HTTP 416: it is kept and verified."
    folder, url, requests = strict_http
    blob = bytes(range(256)) * 40
    (folder / "f.bin").write_bytes(blob)
    (tmp_path / "f.bin.part").write_bytes(blob)
    dest = D.download(f"{url}/f.bin", tmp_path / "f.bin", size=len(blob), md5=hashlib.md5(blob).hexdigest())
    assert dest.read_bytes() == blob and not (tmp_path / "f.bin.part").exists()
    assert requests == [("/f.bin", len(blob))]

def test_part_longer_than_the_file_is_discarded(strict_http, tmp_path):
    "15.10a: a .part that does not fit the server's file (416, another total) is discarded, then refetched."
    folder, url, requests = strict_http
    blob = b"new version" * 100
    (folder / "f.bin").write_bytes(blob)
    (tmp_path / "f.bin.part").write_bytes(b"old version, longer" * 100)
    assert D.download(f"{url}/f.bin", tmp_path / "f.bin").read_bytes() == blob
    assert requests == [("/f.bin", 1900), ("/f.bin", 0)]

def test_missing_file_message_promises_no_resume(strict_http, tmp_path):
    "15.10b: after a 404 nothing was kept, so the message must not say a partial file is resumed."
    _, url, _ = strict_http
    with pytest.raises(D.DownloadError) as e:
        D.download(f"{url}/gone.tar", tmp_path / "gone.tar", retries=1)
    assert "404" in str(e.value) and "resumed" not in str(e.value)
    assert not (tmp_path / "gone.tar.part").exists()

def _stanford(monkeypatch, url, photos=None):
    "Point the catalogue's stanford-dogs entry at the local server (optionally with another photo count)."
    info = D.DATASETS["stanford-dogs"]
    archives = tuple(D.Archive(f"{url}/{name}") for name in ["images.tar", "lists.tar"])
    changes = dict(archives=archives) | (dict(photos=photos) if photos else {})
    monkeypatch.setitem(D.DATASETS, "stanford-dogs", dataclasses.replace(info, **changes))

def _stanford_tars(folder, n_photos):
    "images.tar with n_photos photos of one breed, and a lists.tar; returns the images.tar bytes."
    _tarball(folder / "lists.tar", {"train_list.mat": b"m", "test_list.mat": b"m"}, "w")
    photos = {f"Images/n02085620-Chihuahua/{k}.jpg": b"j" * 700 for k in range(n_photos)}
    return _tarball(folder / "images.tar", photos, "w").read_bytes()

def test_stanford_error_page_is_never_trusted(strict_http, tmp_path, monkeypatch):
    "15.10c: an HTML page saved as images.tar is an error naming the file to delete, on every run."
    folder, url, _ = strict_http
    _stanford_tars(folder, 3)
    (folder / "images.tar").write_text("<html><body>Service unavailable</body></html>")
    _stanford(monkeypatch, url)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"images\.tar is not a tar archive.*delete it"):
            D.get_dataset("stanford-dogs", tmp_path / "data")
    assert not (tmp_path / "data" / "stanford-dogs" / ".complete").exists()

def test_stanford_archive_cut_in_a_photo_is_an_error(strict_http, tmp_path, monkeypatch):
    "15.10c: an archive that ends inside a photo is an error naming the file to delete."
    folder, url, _ = strict_http
    blob = _stanford_tars(folder, 3)
    (folder / "images.tar").write_bytes(blob[:512 * 4])   # headers and data of photo 1, photo 2 cut short
    _stanford(monkeypatch, url)
    with pytest.raises(ValueError, match=r"images\.tar is damaged or cut short.*delete it"):
        D.get_dataset("stanford-dogs", tmp_path / "data")
    assert not (tmp_path / "data" / "stanford-dogs" / ".complete").exists()

def test_stanford_archive_cut_between_photos_is_counted(strict_http, tmp_path, monkeypatch):
    "15.10c: a tar cut at a member boundary reads as a valid tar; the photo count catches it."
    folder, url, _ = strict_http
    blob = _stanford_tars(folder, 3)
    with tarfile.open(folder / "images.tar") as tar:
        second = tar.getmembers()[1]
    (folder / "images.tar").write_bytes(blob[:second.offset_data + 1024])   # photos 1 and 2, no end marker
    _stanford(monkeypatch, url)          # the real catalogue entry expects 20,580 photos in 120 folders
    with pytest.raises(ValueError, match=r"2 photos in 1 folders, expected 20,580 in 120.*images\.tar"):
        D.get_dataset("stanford-dogs", tmp_path / "data")
    assert not (tmp_path / "data" / "stanford-dogs" / ".complete").exists()

def test_stanford_whole_archives_are_unpacked(strict_http, tmp_path, monkeypatch):
    "The same checks pass whole archives with the expected number of photos."
    folder, url, _ = strict_http
    _stanford_tars(folder, 3)
    _stanford(monkeypatch, url, photos=(1, 3))
    path = D.get_dataset("stanford-dogs", tmp_path / "data")
    assert (path / ".complete").exists() and len(list((path / "Images").rglob("*.jpg"))) == 3
    assert (path / "train_list.mat").exists()

def _mat_list(names):
    "A train_list.mat / test_list.mat as Stanford Dogs ships it: a file_list cell array of relative paths."
    import numpy as np
    from scipy.io import savemat
    cells = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cells[i, 0] = np.array([name])
    buf = io.BytesIO()
    savemat(buf, {"file_list": cells})
    return buf.getvalue()

def test_stanford_official_lists_decide_the_split(strict_http, tmp_path, monkeypatch):
    "Issue 16: the official layout, served on 127.0.0.1: train_list.mat and test_list.mat decide the split."
    folder, url, _ = strict_http
    chihuahua = [f"n02085620-Chihuahua/{k}.jpg" for k in range(3)]
    spaniel = [f"n02085782-Japanese_spaniel/{k}.jpg" for k in range(3)]
    lists = {"train_list.mat": _mat_list(chihuahua[:2] + spaniel[1:]),
             "test_list.mat": _mat_list([chihuahua[2], spaniel[0]])}
    _tarball(folder / "lists.tar", lists, "w")
    _tarball(folder / "images.tar", {f"Images/{n}": b"j" * 700 for n in chihuahua + spaniel}, "w")
    _stanford(monkeypatch, url, photos=(2, 6))
    s = D.read_split(D.get_dataset("stanford-dogs", tmp_path / "data"))
    assert s.layout == "stanford" and s.breeds == ["Chihuahua", "Japanese spaniel"]
    valid = sorted(f"{p.parent.name}/{p.name}" for p, _ in s.valid)
    assert valid == [chihuahua[2], spaniel[0]] and [label for _, label in sorted(s.valid)] == [0, 1]
    assert len(s.train) == 4
