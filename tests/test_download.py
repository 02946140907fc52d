"download and get_dataset against a real HTTP server on 127.0.0.1."
import hashlib, io, tarfile
import pytest
from dogclf import data as D

def _tarball(path, members):
    "Write a .tgz with {name: bytes} members."
    with tarfile.open(path, "w:gz") as t:
        for name, content in members.items():
            info = tarfile.TarInfo(name); info.size = len(content); t.addfile(info, io.BytesIO(content))
    return path

def test_download_verifies_and_is_idempotent(http_dir, tmp_path, capsys):
    folder, url, requests = http_dir
    blob = _tarball(folder / "woof.tgz", {"woof/train/a/1.txt": b"x" * 5000}).read_bytes()
    dest = D.download(f"{url}/woof.tgz", tmp_path / "woof.tgz", size=len(blob), md5=hashlib.md5(blob).hexdigest())
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
    blob = bytes(range(256)) * 400; (folder / "big.bin").write_bytes(blob)
    dest = tmp_path / "big.bin"
    with pytest.raises(D.DownloadError, match="big.bin"):   # the server closes half-way, every time
        D.download(f"{url}/cut/big.bin", dest, size=len(blob), retries=1)
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
    blob = _tarball(folder / "imagewoof2-160.tgz", {"imagewoof2-160/train/n02088364/a.JPEG": b"j", "imagewoof2-160/val/n02088364/b.JPEG": b"k"}).read_bytes()
    info = D.DatasetInfo("imagewoof-160", "imagewoof2-160", "imagewoof", (D.Archive(f"{url}/imagewoof2-160.tgz", len(blob), hashlib.md5(blob).hexdigest()),))
    monkeypatch.setitem(D.DATASETS, "imagewoof-160", info)
    path = D.get_dataset("imagewoof-160", tmp_path / "data")
    assert (path / "train" / "n02088364" / "a.JPEG").read_bytes() == b"j"
    assert D.get_dataset("imagewoof-160", tmp_path / "data") == path and len(requests) == 1
