"""Self-supervised pre-training: a pretext task made from unlabelled images.

Rotation prediction (Gidaris et al. 2018): rotate each image by k · 90° and train a network to
predict k. Solving it needs features of the strokes' shape and orientation — useful for
recognising characters — without a single label. Used by ``notebooks/01c_transfer_taxonomy``.
"""
from __future__ import annotations

import torch

from . import seeding
from .data import ImageSet


def rotation_task(unlabelled: torch.Tensor, seed: int = 0, name: str = "unlabelled") -> ImageSet:
    """Each image x: (n, 1, H, W) rotated by a random k ∈ {0, 1, 2, 3} quarter turns; label k."""
    k = torch.randint(0, 4, (len(unlabelled),), generator=seeding.generator(seed))
    rotated = torch.stack([torch.rot90(x, int(r), dims=(1, 2)) for x, r in zip(unlabelled, k)])
    return ImageSet(rotated, k, 4, f"{name}-rotations")
