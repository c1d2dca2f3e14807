"""Argument checks shared by the modules of :mod:`course_lib.rl`, and :data:`DTYPE`, the float
type (float64) of every model, value and return tensor they build. Each check returns its
argument as a float or an int, or raises a ``ValueError`` that names it.
"""
from __future__ import annotations

import torch

DTYPE = torch.float64


def _gamma(gamma) -> float:
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"the discount γ must lie in [0, 1], got {gamma}")
    return gamma


def _probability(value, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value}")
    return value


def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} should be an int ≥ {minimum}, got {value!r}")
    return value
