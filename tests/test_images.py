"Loading real-world image files: odd modes, corrupt files, empty folders."
from pathlib import Path
import pytest
from PIL import Image
from dogclf import data as D

def test_modes_become_rgb(tmp_path, woof):
    real = next((woof / "train" / "n02088364").iterdir())
    Image.open(real).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.open(real).convert("L").save(tmp_path / "grey.jpg")
    Image.open(real).convert("P").save(tmp_path / "palette.png")
    Image.open(real).convert("RGBA").save(tmp_path / "rgba.png")
    for f in tmp_path.iterdir():
        im = D.load_rgb(f)
        assert im.mode == "RGB" and im.size == Image.open(real).size, f

def test_corrupt_files_reported_and_skipped(tmp_path, woof, capsys):
    good = sorted((woof / "train" / "n02088364").iterdir())[:3]
    (tmp_path / "truncated.JPEG").write_bytes(good[0].read_bytes()[:2000])
    (tmp_path / "empty.JPEG").write_bytes(b"")
    items = [(p, 0) for p in good] + [(tmp_path / "truncated.JPEG", 0), (tmp_path / "empty.JPEG", 0)]
    kept = D.check_images(items, cache_dir=tmp_path / "cache")
    assert kept == [(p, 0) for p in good]
    out = capsys.readouterr().out
    assert "Skipping 2 unreadable" in out and "truncated.JPEG" in out
    assert D.check_images(items, cache_dir=tmp_path / "cache") == kept   # second time from the cache

def test_empty_class_folder_is_a_clear_error(tmp_path):
    (tmp_path / "pug").mkdir(); Image.new("RGB", (4, 4)).save(tmp_path / "pug" / "a.jpg")
    (tmp_path / "akita").mkdir(); (tmp_path / "akita" / "notes.txt").write_text("no photos")
    with pytest.raises(ValueError, match="akita"): D.read_split(tmp_path)

def test_no_class_folders_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="one folder of photos per breed"): D.read_split(tmp_path)

def test_imagewoof_layout_read_in_full(woof):
    s = D.read_split(woof)
    assert (s.layout, len(s.classes)) == ("imagewoof", 10)
    assert len(s.valid) == 3929 and len(s.train) >= 8000
    assert D.unseen_by_imagenet(s.valid).sum() == 162
    assert s.breeds[s.classes.index("n02088364")] == "beagle"
