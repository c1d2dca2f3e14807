"""Reproducibility, CPU threads and the compute device."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded the same way.

    Every notebook calls this in its first code cell so that its figures are identical on
    every run (on the same machine and library versions).
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_generator(generator) -> torch.Generator:
    """A ``torch.Generator`` as it is, or a new one seeded with the int ``generator``.

    For samplers that accept either (``generator=0`` or ``generator=torch.Generator()``); any
    other value is a ValueError that names what was expected.
    """
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
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
