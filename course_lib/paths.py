"""Where the course's files are: the one place that knows the repository's layout.

- :data:`REPO` — the course repository (the folder above this package);
- :func:`data_dir` — the data sets: ``COURSE_DATA``, or ``data/`` in the repository;
- :func:`cache_dir` — decoded tensors and trained models, inside the data directory unless it
  is read-only (as the shared offline copy is), then ``data/cache`` in the repository, or
  ``COURSE_CACHE`` where that is set (a graded kernel's own cache); :func:`cache_file` also
  reads a warmed, read-only cache (``COURSE_CACHE_SHARED``);
- :func:`build_dir` — executed notebooks, figures, ``results.json`` and the book:
  ``COURSE_BUILD``, or ``build/`` in the repository;
- :func:`lecture_notebooks` — the lecture notebooks in course order.

The teaching library, the grading tool and the site all take their paths from here. It imports
nothing heavy, so the grading command can use it without loading torch.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def data_dir() -> Path:
    """The data directory: ``COURSE_DATA`` or ``data/`` at the repository root."""
    return Path(os.environ.get("COURSE_DATA", REPO / "data")).expanduser().resolve()


def cache_dir() -> Path:
    """Where decoded tensors and trained models go: inside the data directory unless it is
    read-only, else ``data/cache`` in the repository (created on first use).

    The owner's write bit decides (not ``os.access``, which is always true for root), so a
    read-only shared copy is never written to.
    """
    own, root = os.environ.get("COURSE_CACHE"), data_dir()
    if own:
        path = Path(own).expanduser()
    elif root.is_dir() and root.stat().st_mode & stat.S_IWUSR:
        path = root / "cache"
    else:
        path = REPO / "data" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_file(name: str) -> Path:
    """Where the cache entry ``name`` (e.g. ``"models/θ.pt"``) is read from: :func:`cache_dir`
    when it holds it; else the warmed cache ``COURSE_CACHE_SHARED`` names when that holds it (a
    graded kernel reads the instructor's cache there, read-only, and writes only its own); else
    :func:`cache_dir`, where it will be written."""
    own, shared = cache_dir() / name, os.environ.get("COURSE_CACHE_SHARED")
    if not own.exists() and shared and (Path(shared) / name).exists():
        return Path(shared) / name
    return own


def build_dir() -> Path:
    """``COURSE_BUILD`` or ``build/`` at the repository root."""
    return Path(os.environ.get("COURSE_BUILD", REPO / "build")).expanduser()


def lecture_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The lecture notebooks of ``folder``, in course order (their names start with the number)."""
    return sorted(Path(folder).glob("[0-9]*.ipynb"))
