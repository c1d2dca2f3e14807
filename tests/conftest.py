"""Shared fixtures of the test suite.

Real data sets come from ``COURSE_DATA`` (CI exports ``COURSE_DATA=/path/to/shared/data``).
A data set that is not there makes its tests *skip* with the loader's own message (which names
the data set, the directory searched and the fetch command) — except under ``CI=true``, where a
missing data set is a configuration error and the tests *fail* with that message.

Tests run at the quick budget unless ``COURSE_BUDGET`` says otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("COURSE_BUDGET", "quick")

from course_lib import data, paths  # noqa: E402  (after the budget default is set)
from course_lib.data import DataUnavailable  # noqa: E402

# Unit tests train tiny nets on tiny batches, where a second intra-op thread only adds
# spin-waiting (measured: 100 MLP steps take 0.05 s on one thread, 0.6–6 s on two busy cores).
# Notebooks run in their own kernels and are not affected.
torch.set_num_threads(1)

# The data directory the suite was started with, before any test monkeypatches COURSE_DATA.
REAL_DATA = data.data_dir()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(message: str):
    """Skip the test with ``message`` — or fail it under CI=true, where data must be present."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def load_or_skip(loader, *args):
    """``loader(*args)``, or skip (fail under CI) with the DataUnavailable message."""
    try:
        return loader(*args)
    except DataUnavailable as err:
        skip_or_fail(str(err))


# ---------------------------------------------------------------------------- real data sets
@pytest.fixture(scope="session")
def omniglot_background():
    """Omniglot's background split (964 classes × 20 drawers), 28×28, ink = 1."""
    return load_or_skip(data.load_omniglot, "background")


@pytest.fixture(scope="session")
def omniglot_evaluation():
    """Omniglot's evaluation split (659 classes × 20 drawers), 28×28, ink = 1."""
    return load_or_skip(data.load_omniglot, "evaluation")


@pytest.fixture(scope="session")
def mnist_train():
    return load_or_skip(data.load_mnist, True)


@pytest.fixture(scope="session")
def mnist_test():
    return load_or_skip(data.load_mnist, False)


@pytest.fixture(scope="session")
def fashion_mnist_train():
    return load_or_skip(data.load_fashion_mnist, True)


@pytest.fixture(scope="session")
def fashion_mnist_test():
    return load_or_skip(data.load_fashion_mnist, False)


@pytest.fixture(scope="session")
def offline_copy() -> Path:
    """The course's offline data copy (the layout of ``shared/data``) that COURSE_DATA names.

    Tests that rebuild a data set from its raw files in a temporary directory link them from here.
    """
    needed = ["omniglot/npz/images_evaluation.npz", "omniglot/images_evaluation_rebuilt.zip",
              "mnist/t10k-images-idx3-ubyte.gz"]
    missing = [name for name in needed if not (REAL_DATA / name).exists()]
    if missing:
        skip_or_fail(f"these tests need the course's offline data copy under COURSE_DATA "
                     f"(searched: {REAL_DATA}; missing: {', '.join(missing)}); "
                     f"set e.g. `export COURSE_DATA=/path/to/shared/data`")
    return REAL_DATA


# ---------------------------------------------------------------------------- isolation
@pytest.fixture
def tmp_data(tmp_path, monkeypatch) -> Path:
    """An empty data directory as COURSE_DATA; nothing is written to the repository.

    ``course_lib.paths.REPO`` is redirected too, so even the read-only fallback cache
    (``<repo>/data/cache``) lands under ``tmp_path``.
    """
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("COURSE_DATA", str(root))
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    return root


@pytest.fixture
def no_network(monkeypatch):
    """Make every connection attempt fail at once, so a "download" cannot hang or succeed."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test suite")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def _course_seed_zero(monkeypatch):
    """Unit tests assert seeded numbers: they run at ``COURSE_SEED=0`` whatever the shell says
    (the notebooks run at the reader's seed)."""
    monkeypatch.setenv("COURSE_SEED", "0")
