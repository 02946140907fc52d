"""Issue 29: a frozen head trained on a folder of your own photos (one sub-folder per class) names their class.

The folder is made here from real ImageWoof photos under names that are not ImageNet ids, as a user's would be."""
import shutil
import pytest

def _my_folder(woof, dest, per_class):
    "Three classes of `per_class` real photos each, in class sub-folders named like a user's."
    breeds = sorted(p for p in (woof / "train").iterdir() if p.is_dir())[:3]
    for name, breed in zip(["rex", "bella", "max"], breeds):
        (dest / name).mkdir(parents=True)
        for photo in sorted(breed.iterdir())[:per_class]:
            shutil.copy2(photo, dest / name / photo.name)
    return dest, breeds

def _settings(mine, out):
    from dogclf.core import configure
    return configure(dict(profile="smoke", data=str(mine), out=str(out)), show=False)

def test_a_head_on_your_own_photos_names_their_class(woof, tmp_path):
    from dogclf.models import folder_stage, predict_photos
    mine, breeds = _my_folder(woof, tmp_path / "mine", 8)
    out = tmp_path / "run"
    stage, split = folder_stage(mine, _settings(mine, out), out)
    assert split.classes == ["bella", "max", "rex"]
    assert stage.head_start == "random"                      # no ImageNet rows for a user's classes
    assert stage.choice["n_choose"] > 0 and stage.head_lr in stage.config.head_lrs   # chosen on the choice split
    named = predict_photos(stage, [p for p, _ in split.train], split.classes)
    assert {name for _, name, _ in named} <= set(split.classes)
    right = sum(name == split.classes[y] for (_, name, _), (_, y) in zip(named, split.train))
    assert right / len(named) > 1 / 3 + 0.25, named         # well above chance (1 in 3) on its training photos
    new_photo = sorted((woof / "val" / breeds[0].name).iterdir())[0]   # a photo it never saw
    [(_, name, prob)] = predict_photos(stage, [new_photo], split.classes)
    assert name in split.classes and 0 < prob <= 1

def test_the_smallest_folder_the_loaders_accept_still_chooses(woof, tmp_path):
    "Three photos per class (the loaders' minimum): 2 train and 1 reports; of the 2, one fits and one chooses."
    from dogclf.models import folder_stage
    mine, _ = _my_folder(woof, tmp_path / "mine", 3)
    out = tmp_path / "run"
    stage, split = folder_stage(mine, _settings(mine, out), out)
    assert (len(split.train), len(split.valid)) == (6, 3)
    assert (stage.choice["n_fit"], stage.choice["n_choose"]) == (3, 3)
    again, _ = folder_stage(mine, _settings(mine, out), out, head_lrs=())   # no choice: trains at head_lr
    assert again.choice is None and again.head_lr == again.config.head_lr
