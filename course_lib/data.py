"""Data sets from one data directory: Omniglot, MNIST, Fashion-MNIST and scikit-learn's digits.

Where the data live
    ``COURSE_DATA`` names the data directory (default: ``data/`` at the repository root).
    Each data set is looked for there in torchvision's layout (``MNIST/raw/*.gz``,
    ``FashionMNIST/raw/*.gz``, ``omniglot-py/images_background/…``), then in the layout of the
    course's offline copy (``mnist/*.gz``, ``fashion-mnist/*.gz``, ``omniglot/npz/*.npz`` or
    ``omniglot/images_*_rebuilt.zip``), and when neither is there it is downloaded as
    torchvision does. A data set that cannot be had raises :class:`DataUnavailable`, whose
    message names the data set, the directory searched, the variable to set and the command
    that fetches it.

Caching
    Decoded tensors are cached in ``<COURSE_DATA>/cache`` (or ``data/cache`` in the repository
    when the data directory is read-only, as the shared offline copy is), so the second load of
    Omniglot takes well under two seconds.

Run ``python -m course_lib.data prepare`` to fetch, check and cache everything at once
(``check NAME ...`` does it for some and exits 1 when one is missing).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import seeding
from .paths import cache_dir, cache_file, data_dir

DATASETS = ("omniglot", "mnist", "fashion_mnist", "digits")
FETCH_COMMAND = "make data   (or: python -m course_lib.data prepare)"

# Omniglot: characters × drawers in each split, and the first character id of each split.
OMNIGLOT_SPLITS = {"background": (964, 1), "evaluation": (659, 965)}
OMNIGLOT_DRAWERS = 20


class DataUnavailable(RuntimeError):
    """A data set is missing or corrupt; the message says what to do."""

    def __init__(self, name: str, searched: Path, reason: str):
        self.name, self.searched, self.reason = name, searched, reason
        super().__init__(
            f"The {name} data set is not available: {reason}\n"
            f"  searched: {searched}\n"
            f"  to fix:   run `{FETCH_COMMAND}` on a machine with network access, or point\n"
            f"            COURSE_DATA at a directory that holds a copy\n"
            f"            (e.g. `export COURSE_DATA=/path/to/shared/data`)."
        )


@dataclass
class ImageSet:
    """Images with integer labels.

    Attributes:
        x: images, shape (n, 1, 28, 28), float32 in [0, 1] (ink = 1 for Omniglot).
        y: labels, shape (n,), int64; for Omniglot the label is the character (class) index.
        classes: number of distinct labels.
        name: where it came from, e.g. ``"omniglot/background"``.
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: int
    name: str

    def __len__(self) -> int:
        return len(self.y)


# ---------------------------------------------------------------------------- directories
# data_dir() and cache_dir() live in course_lib.paths, the one module that knows the layout.


def _cached(key: str, build) -> tuple[torch.Tensor, torch.Tensor]:
    """Load ``(x_uint8, y)`` from the cache, or build and store it."""
    found, path = cache_file(f"{key}.pt"), cache_dir() / f"{key}.pt"
    if found.exists():
        try:
            return torch.load(found, weights_only=True)
        except Exception:  # a half-written cache file: rebuild it (in the cache we write)
            path.unlink(missing_ok=True)
    x, y = build()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save((x, y), tmp)
    tmp.replace(path)
    return x, y


def _to_28(images: torch.Tensor) -> torch.Tensor:
    """Area-resize (n, H, W) floats in [0, 1] to (n, 28, 28) uint8, in chunks to bound memory."""
    out = []
    for chunk in images.split(2048):
        small = F.interpolate(chunk[:, None].float(), size=(28, 28), mode="area")[:, 0]
        out.append((small * 255).round().to(torch.uint8))
    return torch.cat(out)


# ---------------------------------------------------------------------------- Omniglot
def _omniglot_from_npz(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    chars, _ = OMNIGLOT_SPLITS[split]
    with np.load(path) as npz:
        images = npz["images"]
    if images.shape != (chars, OMNIGLOT_DRAWERS, 105, 105):
        raise ValueError(f"{path.name} holds an array of shape {images.shape}, "
                         f"expected ({chars}, {OMNIGLOT_DRAWERS}, 105, 105)")
    ink = torch.from_numpy(~images.reshape(-1, 105, 105))  # True = white in the file
    y = torch.arange(chars).repeat_interleave(OMNIGLOT_DRAWERS)
    return _to_28(ink), y


def _omniglot_from_tree(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a PNG tree laid out as the original zips (alphabet/characterNN/IIII_DD.png)."""
    from PIL import Image

    chars, first_id = OMNIGLOT_SPLITS[split]
    files = sorted(folder.glob("*/character*/*.png"))
    if len(files) != chars * OMNIGLOT_DRAWERS:
        raise ValueError(f"{folder} holds {len(files)} PNG files, "
                         f"expected {chars * OMNIGLOT_DRAWERS}")
    # Class order: the character id in the file name (IIII), which is stable and also the
    # order of the .npz copy; sorting by path alone would depend on the alphabet names.
    ids = torch.tensor([int(f.name[:4]) - first_id for f in files])
    if sorted(set(ids.tolist())) != list(range(chars)):
        raise ValueError(f"{folder} does not hold characters {first_id}…{first_id + chars - 1}")
    ink = torch.stack([torch.from_numpy(~np.array(Image.open(f).convert("1"))) for f in files])
    order = torch.argsort(ids * 100 + torch.tensor([int(f.stem[5:]) for f in files]))
    return _to_28(ink[order]), ids[order]


def _find_omniglot(split: str) -> Path:
    """The first place under the data directory that holds the split, fetching if needed."""
    root = data_dir()
    candidates = [
        root / "omniglot-py" / f"images_{split}",            # torchvision's layout
        root / "omniglot" / "npz" / f"images_{split}.npz",   # offline copy: arrays
        root / "omniglot" / f"images_{split}_rebuilt.zip",   # offline copy: rebuilt zips
        root / "omniglot-py" / f"images_{split}.zip",        # downloaded, not yet extracted
    ]
    for path in candidates:
        if path.exists():
            return path
    _download_omniglot(root, split)
    return root / "omniglot-py" / f"images_{split}"


def _download_omniglot(root: Path, split: str) -> None:
    from torchvision.datasets import Omniglot

    try:
        Omniglot(str(root), background=(split == "background"), download=True)
    except Exception as err:  # offline, or a read-only directory
        raise DataUnavailable("Omniglot", root, f"it is not there and downloading it failed "
                              f"({type(err).__name__}: {err})") from None


def _extract(zip_path: Path) -> Path:
    """Extract a zip of the original layout next to the cache; return its image folder."""
    target = cache_dir() / "omniglot-py"
    folder = target / zip_path.name.replace("_rebuilt", "").removesuffix(".zip")
    if not folder.exists():  # extract beside it, then rename: an interrupted run leaves no half
        partial = target / f".partial-{folder.name}"
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(partial)
        (partial / folder.name).rename(folder)
        shutil.rmtree(partial)
    return folder


def load_omniglot(split: str = "background") -> ImageSet:
    """Omniglot's ``background`` (964 classes) or ``evaluation`` (659 classes) alphabets.

    Images are 28×28 with ink = 1, twenty drawers per character; the class index is the
    character's position in the original numbering, so the order is the same on every machine.
    The integrity check counts characters, drawers and pixels rather than comparing the zip's
    md5, so the offline "rebuilt" zips (exact pixels, other zip bytes) are accepted.
    """
    if split not in OMNIGLOT_SPLITS:
        raise ValueError(f"split must be 'background' or 'evaluation', not {split!r}")

    def build():
        path = _find_omniglot(split)
        try:
            if path.suffix == ".npz":
                return _omniglot_from_npz(path, split)
            if path.suffix == ".zip":
                path = _extract(path)
            return _omniglot_from_tree(path, split)
        except (ValueError, OSError, zipfile.BadZipFile, KeyError) as err:
            raise DataUnavailable("Omniglot", path, f"the copy there is corrupt ({err})") from None

    x, y = _cached(f"omniglot_{split}_28", build)
    return ImageSet(x[:, None].float().div_(255), y, OMNIGLOT_SPLITS[split][0], f"omniglot/{split}")


def some_classes(data: ImageSet, classes: int, seed: int = 0) -> ImageSet:
    """``classes`` classes of ``data`` drawn at random (seeded, and moving with ``COURSE_SEED``),
    relabelled 0…classes−1, with all their examples. The draws of one seed are nested: the 20
    classes of a seed include its 5. For "how many tasks": fewer meta-training classes, fewer
    distinct tasks (Omniglot's background classes come alphabet by alphabet, so the first n
    would also be fewer alphabets)."""
    if not 1 <= classes <= data.classes:
        raise ValueError(f"classes must lie in 1…{data.classes} for {data.name}, got {classes}")
    chosen = torch.randperm(data.classes, generator=seeding.generator(seed))[:classes]
    relabel = torch.full((data.classes,), -1, dtype=torch.long)
    relabel[chosen] = torch.arange(classes)
    keep = relabel[data.y] >= 0
    return ImageSet(data.x[keep], relabel[data.y[keep]], classes,
                    f"{data.name}{{{classes} of seed {seeding.seed(seed)}}}")


def with_rotations(data: ImageSet) -> ImageSet:
    """Add the 90°, 180° and 270° rotations of every class as new classes (4× the classes)."""
    xs = [torch.rot90(data.x, k, dims=(2, 3)) for k in range(4)]  # (n, 1, 28, 28) each
    ys = [data.y + k * data.classes for k in range(4)]
    return ImageSet(torch.cat(xs), torch.cat(ys), 4 * data.classes, data.name + "+rot")


# ---------------------------------------------------------------------------- MNIST-like
_MNIST_LIKE = {
    "mnist": ("MNIST", "mnist", "MNIST"),
    "fashion_mnist": ("FashionMNIST", "fashion-mnist", "Fashion-MNIST"),
}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _mnist_root(name: str) -> Path:
    """A root in torchvision's layout for ``name``: the data directory, or links in the cache."""
    folder, offline, title = _MNIST_LIKE[name]
    root = data_dir()
    if all((root / folder / "raw" / f"{f}.gz").exists() or (root / folder / "raw" / f).exists()
           for f in _IDX_FILES):
        return root
    if all((root / offline / f"{f}.gz").exists() for f in _IDX_FILES):
        linked = cache_dir() / "torchvision"
        raw = linked / folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for f in _IDX_FILES:
            if not (raw / f"{f}.gz").exists():
                os.symlink(root / offline / f"{f}.gz", raw / f"{f}.gz")
        return linked
    return root  # nothing here: torchvision will try to download into the data directory


def _load_mnist_like(name: str, train: bool) -> ImageSet:
    folder, _, title = _MNIST_LIKE[name]

    def build():   # torchvision only on a cache miss: its import alone takes a second
        from torchvision import datasets

        root = _mnist_root(name)
        try:
            ds = getattr(datasets, folder)(str(root), train=train, download=True)
        except Exception as err:
            raise DataUnavailable(title, root, f"it is not there, is corrupt, or downloading it "
                                  f"failed ({type(err).__name__}: {err})") from None
        return ds.data.clone(), ds.targets.clone()

    x, y = _cached(f"{name}_{'train' if train else 'test'}", build)
    return ImageSet(x[:, None].float().div_(255), y, 10, f"{name}/{'train' if train else 'test'}")


def load_mnist(train: bool = True) -> ImageSet:
    """MNIST digits, 28×28, 60,000 training or 10,000 test images."""
    return _load_mnist_like("mnist", train)


def load_fashion_mnist(train: bool = True) -> ImageSet:
    """Fashion-MNIST (Zalando), 28×28, 60,000 training or 10,000 test images."""
    return _load_mnist_like("fashion_mnist", train)


def load_digits() -> ImageSet:
    """scikit-learn's 8×8 digits (1,797 images, bundled with scikit-learn), upsampled to 28×28."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16
    x = F.interpolate(x[:, None], size=(28, 28), mode="bilinear", align_corners=False)
    return ImageSet(x.clamp(0, 1), torch.tensor(digits.target), 10, "digits")


LOADERS = {
    "omniglot": lambda: (load_omniglot("background"), load_omniglot("evaluation")),
    "mnist": lambda: (load_mnist(True), load_mnist(False)),
    "fashion_mnist": lambda: (load_fashion_mnist(True), load_fashion_mnist(False)),
    "digits": lambda: (load_digits(),),
}


def available(name: str) -> DataUnavailable | None:
    """Load data set ``name`` once (filling the cache); return the error, or None if it is there."""
    try:
        LOADERS[name]()
    except DataUnavailable as err:
        return err
    return None


_status: dict[tuple[str, Path], DataUnavailable | None] = {}


def needed_by(notebook) -> list[str]:
    """The data sets a notebook (a path or a parsed notebook) declares in its metadata:
    ``"course": {"data": ["omniglot", ...]}``."""
    if not isinstance(notebook, dict):
        notebook = json.loads(Path(notebook).read_text())
    return list(notebook.get("metadata", {}).get("course", {}).get("data", []))


def missing_for(notebook) -> list[DataUnavailable]:
    """What keeps a notebook from running: the error of each data set it needs that cannot be
    had (empty: it can run). Each data set is checked once per data directory and process."""
    return [err for err in map(checked, needed_by(notebook)) if err is not None]


def checked(name: str) -> DataUnavailable | None:
    """:func:`available`, checked once per data directory and process."""
    key = (name, data_dir())
    if key not in _status:
        _status[key] = available(name)
    return _status[key]


def prepare(names=DATASETS) -> dict[str, DataUnavailable | None]:
    """Fetch, check and cache every data set; print one line each. Never stops at the first."""
    status = {}
    print(f"data directory: {data_dir()}   (set COURSE_DATA to change it)")
    for name in names:
        status[name] = available(name)
        print(f"  {name:14s} {'ok' if status[name] is None else 'MISSING'}")
    for err in filter(None, status.values()):
        print("\n" + str(err), file=sys.stderr)
    return status


def check(names) -> int:
    """Load (and cache) the data sets ``names``; print each one's error on stderr and return 1
    if any cannot be had, else 0. The grading command runs it before a batch, so a missing
    data set is the machine's fault, said once, and no kernel decodes a cold cache."""
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        print(f"unknown data set(s) {', '.join(unknown)}: the course has {', '.join(DATASETS)}",
              file=sys.stderr)
        return 2
    errors = [err for err in map(available, names) if err is not None]
    for err in errors:
        print(str(err), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["prepare"]:
        prepare()
    elif sys.argv[1:2] == ["check"]:
        sys.exit(check(sys.argv[2:]))
    else:
        sys.exit("usage: python -m course_lib.data prepare | check NAME ...")
