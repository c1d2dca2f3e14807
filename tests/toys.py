"""Small synthetic data sets the unit tests share (no download, milliseconds to make)."""
from __future__ import annotations

import torch

from course_lib.data import ImageSet


def fake_images(n_per_class: int = 40, seed: int = 0) -> ImageSet:
    """10 classes of random 28×28 images; class k has its pixels 20k … 20k + 19 bright, so a
    small MLP separates them in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = 0.1 * torch.rand(len(y), 1, 28, 28, generator=g)
    for k in range(10):
        x.view(len(y), -1)[y == k, 20 * k: 20 * k + 20] = 1.0
    return ImageSet(x, y, 10, "fake")
