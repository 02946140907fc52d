"Loading real-world image files: odd modes, corrupt files, empty folders."
import json, os, shutil
from pathlib import Path
import numpy as np
import torch
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
    out = capsys.readouterr().err
    assert "Skipping 2 unreadable" in out and "truncated.JPEG" in out
    assert D.check_images(items, cache_dir=tmp_path / "cache") == kept   # second time from the cache

def test_empty_class_folder_is_a_clear_error(tmp_path):
    (tmp_path / "pug").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "pug" / "a.jpg")
    (tmp_path / "akita").mkdir()
    (tmp_path / "akita" / "notes.txt").write_text("no photos")
    with pytest.raises(ValueError, match="akita"): D.read_split(tmp_path)

def test_no_class_folders_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="one folder of photos per breed"): D.read_split(tmp_path)

def test_imagewoof_layout_read_in_full(woof):
    s = D.read_split(woof)
    assert (s.layout, len(s.classes)) == ("imagewoof", 10)
    assert len(s.valid) == 3929 and len(s.train) >= 8000
    assert D.unseen_by_imagenet(s.valid).sum() == 162
    assert s.breeds[s.classes.index("n02088364")] == "beagle"

def test_image_check_cache_sees_a_replaced_file(tmp_path, woof):
    "15.2b: a file overwritten with the same size is checked again, not trusted from the cache."
    photo = tmp_path / "a.JPEG"
    photo.write_bytes(sorted((woof / "train" / "n02088364").iterdir())[0].read_bytes())
    items = [(photo, 0)]
    assert D.check_images(items, cache_dir=tmp_path / "cache") == items
    photo.write_bytes(b"\0" * photo.stat().st_size)   # same path, same size, no longer a photo
    later = photo.stat().st_mtime_ns + 10**9            # a second later, even on a coarse clock
    os.utime(photo, ns=(later, later))
    assert D.check_images(items, cache_dir=tmp_path / "cache") == []

@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16B", ".tif"), ("I", ".tif")])
def test_16_bit_grey_keeps_its_brightness(tmp_path, mode, suffix):
    "15.4: a mid-grey image with 16 bits per pixel loads as mid-grey, not white."
    path = tmp_path / f"grey{suffix}"
    Image.new(mode, (8, 6), 32768).save(path)
    assert Image.open(path).mode == mode
    assert D.load_rgb(path).getpixel((0, 0)) == (128, 128, 128)

def test_16_bit_photo_loads_like_its_8_bit_original(tmp_path, woof):
    "15.4: a real photo stored with 16 bits per pixel loads with the same 8-bit values."
    grey = Image.open(next((woof / "train" / "n02088364").iterdir())).convert("L")
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    loaded = np.asarray(D.load_rgb(tmp_path / "grey16.png"))
    assert (loaded[..., 0] == np.asarray(grey)).all() and (loaded[..., 1] == loaded[..., 2]).all()

def _photos(folder, names, n=2):
    "Write `n` tiny JPEGs into folder/NAME/ for each name."
    for name in names:
        (folder / name).mkdir(parents=True)
        for k in range(n):
            Image.new("RGB", (4, 4)).save(folder / name / f"{k}.jpg")

def test_val_class_missing_from_train_is_named(tmp_path):
    "15.11: a val/ class folder absent from train/ is an error that names it, not silently dropped."
    _photos(tmp_path / "train", ["pug", "akita"])
    _photos(tmp_path / "val", ["pug", "akita", "husky"])
    with pytest.raises(ValueError, match=r"\['husky'\].*train/<class>/"):
        D.read_split(tmp_path)

def test_val_without_train_is_a_clear_error(tmp_path):
    "15.11: val/ without train/ is not a dataset with a class called 'val'."
    _photos(tmp_path / "val", ["pug", "akita"])
    _photos(tmp_path, ["beagle"])
    with pytest.raises(ValueError, match="has val/ but no train/"):
        D.read_split(tmp_path)

def test_stanford_images_without_lists_get_a_stratified_split(tmp_path, capsys):
    "Issue 16: Images/ without train_list.mat and test_list.mat: a stratified split and a one-line notice."
    _photos(tmp_path / "Images", ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"], n=5)
    s = D.read_split(tmp_path, 0.2)
    assert (s.layout, len(s.train), len(s.valid)) == ("stanford", 8, 2)
    assert s.breeds == ["Chihuahua", "Japanese spaniel"]
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "stratified" in notice[0]

def test_photo_listing_changes_with_the_photos(tmp_path, woof):
    "15.2a, 26: the listing hash changes when a photo is removed or its bytes change, not with its date or a hidden file."
    for p in sorted((woof / "train" / "n02088364").iterdir())[:3]:
        (tmp_path / "beagle").mkdir(exist_ok=True)
        shutil.copy2(p, tmp_path / "beagle" / p.name)
    first = D.photo_listing(tmp_path)
    (tmp_path / ".complete").touch()
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.json").write_text("{}")
    assert D.photo_listing(tmp_path) == first
    photos = sorted((tmp_path / "beagle").iterdir())
    os.utime(photos[0], ns=(1, 1))
    assert D.photo_listing(tmp_path) == first   # a new date, the same bytes: the same photos
    photos[0].write_bytes(photos[2].read_bytes())
    changed = D.photo_listing(tmp_path)
    photos[1].unlink()
    assert len({first, changed, D.photo_listing(tmp_path)}) == 3

def test_load_split_takes_explicit_arguments(woof, tmp_path):
    "Issue 12: load_split(root, valid_pct, seed, train_per_class, val_per_class, cache_dir), no cfg."
    s = D.load_split(woof, 0.2, 42, 3, 2, tmp_path / "cache")
    assert (len(s.train), len(s.valid)) == (30, 20)
    assert list((tmp_path / "cache").glob("checked-*.json"))

def test_a_photo_is_in_one_split_by_content(woof, tmp_path, capsys):
    "Issue 27: a copy of a validation photo under another name leaves training; ImageWoof's own split has two."
    full = D.read_split(woof)
    kept = D.without_copies(full.train, full.valid, tmp_path / "cache", skipped_to=tmp_path / "skipped.json")
    dropped = json.loads((tmp_path / "skipped.json").read_text())
    assert len(full.train) - len(kept) == len(dropped) == 2, dropped
    assert "n02087394_12539.JPEG" in " ".join(dropped) and "n02089973_2860.JPEG" in " ".join(dropped.values())
    assert "Skipping 2 training photo(s) that are copies of validation photos" in capsys.readouterr().err
    mine = tmp_path / "mine"   # the same photo twice in a folder layout: whichever split each copy lands in
    for name, wnid in [("beagle", "n02088364"), ("collie", "n02105641")]:
        shutil.copytree(woof / "train" / wnid, mine / name, ignore=lambda d, names: sorted(names)[10:])
    for photo in sorted((mine / "beagle").iterdir()):
        shutil.copy2(photo, mine / "beagle" / f"copy_{photo.name}")
    s = D.load_split(mine, 0.2, 42, cache_dir=tmp_path / "cache2", skipped_to=tmp_path / "skipped2.json")
    digests = lambda items: set(D.file_digests([p for p, _ in items]))
    assert not digests(s.train) & digests(s.valid)
    assert json.loads((tmp_path / "skipped2.json").read_text()), "some copies landed in both splits and were dropped"

def test_cached_pass_engines_agree(tmp_path, woof):
    "cached_pass with engine onnx (ONNX Runtime) gives the torch engine's features and cut activations."
    from dogclf.data import data_config, eval_transform, read_split, take_per_class
    from dogclf.models import cached_pass, create_backbone, freeze_backbone, tail_start
    items = take_per_class(read_split(woof).valid, 1)
    model = freeze_backbone(create_backbone("tf_efficientnet_lite0"))
    tfm = eval_transform(data_config(model, 128))
    for start in (None, tail_start(model, 3)):
        ref = cached_pass(model, items, tfm, folder=tmp_path / "torch", name="valid", start=start, batch_size=4, workers=0)
        fast = cached_pass(model, items, tfm, folder=tmp_path / "onnx", name="valid", start=start, batch_size=4,
                           workers=0, engine="onnx")
        scale = ref.X.float().abs().max()
        assert (fast.X.float() - ref.X.float()).abs().max() < 1e-2 * scale and torch.equal(fast.y, ref.y)
        assert fast.X.dtype == ref.X.dtype
