"""Reproducibility, CPU threads and the compute device.

Every seed the course uses (splits, initialisations, episodes, environments) goes through
:func:`seed` once: the effective seed is ``n + 10_000 · COURSE_SEED``. ``COURSE_SEED`` is 0 by
default, which changes nothing; ``COURSE_SEED=1 make course`` reruns every notebook with other
seeds, so a sentence about a method can be checked on seeds its author never saw.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

SEED_VARIABLE = "COURSE_SEED"
STRIDE = 10_000  # seeds of one course seed: n + STRIDE · COURSE_SEED


def course_seed() -> int:
    """The course seed ``COURSE_SEED`` (default 0), a non-negative integer; anything else is a
    ValueError that names the variable and the value."""
    value = os.environ.get(SEED_VARIABLE, "").strip() or "0"
    if not value.isdecimal():
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {value!r}")
    return int(value)


def seed(n: int) -> int:
    """The effective seed of the int seed ``n``: ``n + 10_000 · COURSE_SEED`` (``n`` itself when
    ``COURSE_SEED`` is 0). Apply it once, to the seed a notebook or function names."""
    return n + STRIDE * course_seed()


_effective_seed = seed  # the same, for the functions below whose argument is named ``seed``


def generator(n: int) -> torch.Generator:
    """A ``torch.Generator`` seeded with the effective seed :func:`seed` of ``n``."""
    return torch.Generator().manual_seed(seed(n))


def rng(n: int) -> np.random.Generator:
    """A NumPy ``Generator`` (``np.random.default_rng``) seeded with the effective seed of ``n``."""
    return np.random.default_rng(seed(n))


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch with the effective seed of ``seed`` (see :func:`seed`);
    return a ``torch.Generator`` seeded the same way.

    Every notebook calls this in its first code cell so that its figures are identical on
    every run (on the same machine and library versions) and move with ``COURSE_SEED``.
    """
    seed = _effective_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_generator(generator) -> torch.Generator:
    """A ``torch.Generator`` as it is, or :func:`generator` of the int ``generator`` (seeded with
    its effective seed, which moves with ``COURSE_SEED``).

    For samplers that accept either (``generator=0`` or ``generator=torch.Generator()``); any
    other value is a ValueError that names what was expected.
    """
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(_effective_seed(generator))
    raise ValueError(f"generator should be a torch.Generator or an int seed, got {generator!r}")


def use_threads(n: int) -> int:
    """``torch.set_num_threads(n)``, but never more than ``OMP_NUM_THREADS`` where it is set (the
    test suite gives each of its processes one thread, and two processes with two threads each
    on two cores run many times slower). Returns the number of threads now in use."""
    limit = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(min(n, int(limit)) if limit.isdigit() and int(limit) > 0 else n)
    return torch.get_num_threads()


def get_device() -> torch.device:
    """The GPU when one is present, otherwise the CPU (every experiment runs on a CPU)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
