"""Data loaders against the real data: shapes, ranges, class order, cache, and their errors."""
import os
import stat
import time
import traceback
import zipfile

import numpy as np
import pytest
import torch

from course_lib import data, paths
from course_lib.data import FETCH_COMMAND, DataUnavailable, ImageSet, some_classes, with_rotations


def check_images(ds: ImageSet, n: int, classes: int):
    """Shape (n, 1, 28, 28) float32 in [0, 1], labels int64 in 0…classes−1, every class present."""
    assert ds.x.shape == (n, 1, 28, 28)
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert ds.y.shape == (n,) and len(ds) == n
    assert 0 <= ds.x.min() and ds.x.max() <= 1
    assert ds.classes == classes
    assert torch.equal(ds.y.unique(), torch.arange(classes))


def link(src, dst):
    """Symlink ``src`` to ``dst``, creating the parent folders of ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


# ---------------------------------------------------------------------------- Omniglot
@pytest.mark.data
@pytest.mark.parametrize("split, classes", [("background", 964), ("evaluation", 659)])
def test_omniglot_shapes_and_classes(request, split, classes):
    """checks class counts 964 / 659, 20 drawers each, in blocks of 20 in class order."""
    ds = request.getfixturevalue(f"omniglot_{split}")
    check_images(ds, classes * 20, classes)
    assert torch.equal(ds.y, torch.arange(classes).repeat_interleave(20))
    assert ds.name == f"omniglot/{split}"


@pytest.mark.data
def test_omniglot_ink_is_one(omniglot_background):
    """checks that strokes are 1 on a 0 background: most pixels are blank, none is negative."""
    x = omniglot_background.x
    assert (x == 0).float().mean() > 0.5           # the page is mostly background
    assert x.amax(dim=(1, 2, 3)).min() > 0.2       # every image has some ink
    assert (x.amax(dim=(1, 2, 3)) == 1).float().mean() > 0.9  # most have a solid stroke
    assert x[:, :, 0, :].mean() < 0.05             # the border row is (nearly) blank


@pytest.mark.data
def test_omniglot_splits_differ(omniglot_background, omniglot_evaluation):
    """checks that the two splits are different alphabets, not one file loaded twice."""
    assert not torch.equal(omniglot_background.x[:100], omniglot_evaluation.x[:100])


@pytest.mark.data
@pytest.mark.slow
def test_npz_and_png_tree_decode_identically(offline_copy, tmp_path, monkeypatch,
                                             omniglot_evaluation):
    """checks that the PNG tree (rebuilt zip) and the .npz copy give identical tensors and labels.

    Each path is loaded from its own temporary data directory holding only that file, so the
    class order of the PNG path (character ids from the file names) is compared with the .npz
    path's (array order), pixel for pixel.
    """
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    from_npz, from_zip = tmp_path / "npz", tmp_path / "zip"
    link(offline_copy / "omniglot/npz/images_evaluation.npz",
         from_npz / "omniglot/npz/images_evaluation.npz")
    link(offline_copy / "omniglot/images_evaluation_rebuilt.zip",
         from_zip / "omniglot/images_evaluation_rebuilt.zip")

    monkeypatch.setenv("COURSE_DATA", str(from_npz))
    a = data.load_omniglot("evaluation")
    monkeypatch.setenv("COURSE_DATA", str(from_zip))
    b = data.load_omniglot("evaluation")

    assert (from_zip / "cache/omniglot-py/images_evaluation").is_dir()  # extracted, not in repo
    check_images(b, 659 * 20, 659)
    assert torch.equal(a.y, b.y)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.x, omniglot_evaluation.x)  # and the suite's cached copy agrees


@pytest.mark.data
@pytest.mark.slow
def test_second_load_comes_from_cache(offline_copy, tmp_data):
    """checks that the first load writes the cache and the second reads it, fast, without the source."""
    npz = tmp_data / "omniglot/npz/images_evaluation.npz"
    link(offline_copy / "omniglot/npz/images_evaluation.npz", npz)
    first = data.load_omniglot("evaluation")
    cached = tmp_data / "cache" / "omniglot_evaluation_28.pt"
    assert cached.is_file()

    npz.unlink()  # the source is gone: only the cache can answer now
    start = time.perf_counter()
    second = data.load_omniglot("evaluation")
    assert time.perf_counter() - start < 5  # well under 2 s in practice; loose against noise
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y)


def test_half_written_cache_is_rebuilt(tmp_data):
    """checks that an unreadable cache file is deleted and rebuilt, not fatal."""
    path = data.cache_dir() / "toy.pt"
    path.write_bytes(b"not a torch file")
    x, y = torch.arange(6, dtype=torch.uint8), torch.arange(6)
    got = data._cached("toy", lambda: (x, y))
    assert torch.equal(got[0], x) and torch.equal(got[1], y)
    assert torch.equal(torch.load(path, weights_only=True)[0], x)


def test_with_rotations():
    """checks 4× the classes, labels c + k·classes, and that class k is a k·90° anticlockwise turn."""
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 0, 27] = 1   # image 0: one dot in the top-right corner
    x[1, 0, 27, 27] = 1  # image 1: one dot in the bottom-right corner
    ds = ImageSet(x, torch.tensor([0, 1]), 2, "toy")
    rot = with_rotations(ds)
    assert rot.classes == 8 and rot.x.shape == (8, 1, 28, 28) and rot.name == "toy+rot"
    assert rot.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    # oracle: NumPy's rot90 (anticlockwise) of every image, k = 0…3
    for k in range(4):
        for i in range(2):
            expected = np.rot90(x[i, 0].numpy(), k)
            assert np.array_equal(rot.x[2 * k + i, 0].numpy(), expected)
    # by hand: a quarter turn anticlockwise takes the top-right corner to the top-left
    assert rot.x[2, 0, 0, 0] == 1
    # a half turn takes the top-right corner to the bottom-left
    assert rot.x[4, 0, 27, 0] == 1


@pytest.mark.data
def test_some_classes_are_random_nested_relabelled_and_move_with_the_course_seed(monkeypatch):
    """checks that some_classes keeps every example of the classes it draws and no other,
    relabels them 0…n−1, draws nested sets for one seed (the 3 are among the 6), other classes
    for another seed or COURSE_SEED, and refuses a count outside 1…classes."""
    y = torch.arange(10).repeat_interleave(3)               # 10 classes, 3 examples each
    full = ImageSet(y.float().view(-1, 1, 1, 1), y, 10, "toy")   # an image holds its class
    original = lambda part: {int(v) for v in part.x.flatten()}
    six, three = some_classes(full, 6, seed=1), some_classes(full, 3, seed=1)
    assert (six.classes, len(six)) == (6, 18) and sorted(six.y.unique().tolist()) == list(range(6))
    assert original(three) < original(six)
    assert all(len({int(v) for v in six.x.flatten()[six.y == k]}) == 1 for k in range(6))
    others = [original(some_classes(full, 3, seed=s)) for s in range(2, 8)]
    monkeypatch.setenv("COURSE_SEED", "1")
    others.append(original(some_classes(full, 3, seed=1)))
    assert any(o != original(three) for o in others)
    assert some_classes(full, 3, seed=1).name != three.name     # another cache entry
    for bad in (0, 11):
        with pytest.raises(ValueError, match="1…10"):
            some_classes(full, bad)


def test_with_rotations_on_omniglot(omniglot_evaluation):
    """checks 4 × 659 classes of 20 images, the first quarter unchanged."""
    rot = with_rotations(omniglot_evaluation)
    assert rot.classes == 4 * 659
    assert torch.equal(torch.bincount(rot.y), torch.full((4 * 659,), 20))
    n = len(omniglot_evaluation)
    assert torch.equal(rot.x[:n], omniglot_evaluation.x)
    assert torch.equal(rot.x[2 * n:3 * n], omniglot_evaluation.x.flip(2, 3))  # 180° = both flips


# ---------------------------------------------------------------------------- errors
def assert_clear(err: DataUnavailable, name: str, searched):
    """The message names the data set, where it looked, COURSE_DATA and the fetch command."""
    message = str(err)
    assert f"The {name} data set is not available" in message
    assert str(searched) in message
    assert "COURSE_DATA" in message and FETCH_COMMAND in message
    # no chained traceback from torchvision's internals
    assert err.__cause__ is None and err.__suppress_context__
    assert "torchvision" not in "".join(traceback.format_exception(err)).replace(message, "")


@pytest.mark.parametrize("loader, name", [
    (lambda: data.load_omniglot("evaluation"), "Omniglot"),
    (lambda: data.load_mnist(False), "MNIST"),
    (lambda: data.load_fashion_mnist(False), "Fashion-MNIST"),
])
def test_empty_directory_is_a_clear_error(tmp_data, no_network, loader, name):
    """checks that an empty COURSE_DATA raises DataUnavailable (fast, offline) with a clear message."""
    start = time.perf_counter()
    with pytest.raises(DataUnavailable) as info:
        loader()
    assert time.perf_counter() - start < 10
    assert info.value.name == name
    assert_clear(info.value, name, tmp_data)


def test_corrupt_npz_wrong_shape(tmp_data):
    """checks that an .npz with the wrong array shape is reported as corrupt, naming the file."""
    path = tmp_data / "omniglot/npz/images_evaluation.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, images=np.ones((10, 20, 105, 105), dtype=bool), labels=np.zeros(10))
    with pytest.raises(DataUnavailable, match="corrupt") as info:
        data.load_omniglot("evaluation")
    assert "(10, 20, 105, 105)" in str(info.value)
    assert_clear(info.value, "Omniglot", path)
    assert not (tmp_data / "cache" / "omniglot_evaluation_28.pt").exists()  # nothing cached


@pytest.mark.parametrize("content", [b"garbage" * 10, b"PK\x03\x04truncated"])
def test_corrupt_npz_bytes(tmp_data, content):
    """checks that a file that is not an .npz at all is also a DataUnavailable."""
    path = tmp_data / "omniglot/npz/images_background.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(DataUnavailable, match="corrupt"):
        data.load_omniglot("background")


def test_incomplete_zip(tmp_data):
    """checks that a rebuilt zip missing most characters is a DataUnavailable, not a short data set."""
    from PIL import Image

    path = tmp_data / "omniglot/images_evaluation_rebuilt.zip"
    path.parent.mkdir(parents=True)
    png = tmp_data / "x.png"
    Image.new("1", (105, 105), 1).save(png)
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(png, "images_evaluation/Alphabet/character01/0965_01.png")
    with pytest.raises(DataUnavailable, match="holds 1 PNG files"):
        data.load_omniglot("evaluation")


def test_unknown_split():
    """checks that a wrong split name is a ValueError naming the two splits."""
    with pytest.raises(ValueError, match="background"):
        data.load_omniglot("train")


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("true", pytest.fail.Exception),
                                         ("false", pytest.skip.Exception)])
def test_missing_data_skips_or_fails_in_ci(monkeypatch, ci, outcome):
    """checks the suite's rule: a missing data set skips, but fails under CI=true, with its message."""
    from conftest import load_or_skip

    def missing():
        raise DataUnavailable("Omniglot", data.data_dir(), "it is not there")

    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="The Omniglot data set is not available"):
        load_or_skip(missing)
    assert load_or_skip(lambda: 42) == 42


# ---------------------------------------------------------------------------- cache location
def test_cache_inside_writable_data_dir(tmp_data):
    """checks that a writable data directory keeps its own cache."""
    assert data.cache_dir() == tmp_data / "cache"


def test_cache_never_inside_read_only_data_dir(tmp_path, monkeypatch):
    """checks the chmod rule: a read-only data directory is never written to, even as root."""
    root = tmp_path / "readonly"
    root.mkdir()
    monkeypatch.setenv("COURSE_DATA", str(root))
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    root.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        path = data.cache_dir()
        assert path == tmp_path / "repo" / "data" / "cache" and path.is_dir()
        assert list(root.iterdir()) == []
    finally:
        root.chmod(stat.S_IRWXU)


@pytest.mark.data
def test_cache_of_the_shared_copy(tmp_path, monkeypatch):
    """checks that the real COURSE_DATA, when read-only, gets its cache outside itself."""
    root = data.data_dir()
    if not root.is_dir():
        pytest.skip(f"COURSE_DATA={root} does not exist")
    if root.stat().st_mode & stat.S_IWUSR:
        pytest.skip(f"{root} is writable; the read-only rule does not apply")
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    assert not data.cache_dir().is_relative_to(root)


# ---------------------------------------------------------------------------- MNIST-like
@pytest.mark.data
@pytest.mark.parametrize("name, train, n", [
    ("mnist", True, 60000), ("mnist", False, 10000),
    ("fashion_mnist", True, 60000), ("fashion_mnist", False, 10000),
])
def test_mnist_like_shapes(request, name, train, n):
    """checks 60k / 10k images of 28×28 in [0, 1] with all ten labels, roughly balanced."""
    ds = request.getfixturevalue(f"{name}_{'train' if train else 'test'}")
    check_images(ds, n, 10)
    counts = torch.bincount(ds.y, minlength=10)
    assert counts.min() > 0.08 * n and counts.max() < 0.12 * n
    assert ds.x.max() == 1 and ds.x.min() == 0


@pytest.mark.data
def test_mnist_and_fashion_differ(mnist_test, fashion_mnist_test):
    """checks that the two data sets are not the same files."""
    assert not torch.equal(mnist_test.x[:10], fashion_mnist_test.x[:10])


@pytest.mark.data
@pytest.mark.slow
def test_mnist_from_offline_layout(offline_copy, tmp_data, mnist_test):
    """checks that mnist/*.gz (the offline copy's layout) loads like torchvision's layout."""
    link(offline_copy / "mnist", tmp_data / "mnist")
    ds = data.load_mnist(False)
    assert torch.equal(ds.x, mnist_test.x) and torch.equal(ds.y, mnist_test.y)
    assert not (tmp_data / "MNIST").exists()  # the links live in the cache, not the data dir


@pytest.mark.slow
def test_digits():
    """checks scikit-learn's digits: 1797 images upsampled to 28×28 in [0, 1], ten classes."""
    ds = data.load_digits()
    check_images(ds, 1797, 10)
    assert ds.name == "digits"
