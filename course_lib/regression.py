"""Regression task families: sinusoids, as in the MAML paper (Finn et al. 2017, §5.1).

Task 𝒯ᵢ: y = A sin(x − b) with amplitude A ~ U[0.1, 5], phase b ~ U[0, π], inputs
x ~ U[−5, 5]. An episode holds K support points (𝒟ᵗʳ) and some query points (𝒟ᵗˢ) of one
task, in the same :class:`~course_lib.episodes.Episode` type as classification; ``classes``
holds (A, b). Used by ``notebooks/05_maml.ipynb``.
"""
from __future__ import annotations

import math

import torch

from . import seeding
from .episodes import Episode


class SinusoidSampler:
    """Draws sinusoid-regression episodes from a seeded stream.

    Args:
        shots: K, support points per task.
        queries: query points per task.
        amplitude: range of A. phase: range of b. x_range: range of x.
        seed: seeds the sampler's generator.
    """

    def __init__(self, shots: int = 10, queries: int = 10, amplitude=(0.1, 5.0),
                 phase=(0.0, math.pi), x_range=(-5.0, 5.0), seed: int = 0):
        if shots < 1 or queries < 0:
            raise ValueError(f"need shots ≥ 1 and queries ≥ 0, got shots={shots}, queries={queries}")
        self.shots, self.queries = shots, queries
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.generator = seeding.generator(seed)

    def _uniform(self, low_high, *shape) -> torch.Tensor:
        low, high = low_high
        return low + (high - low) * torch.rand(*shape, generator=self.generator)

    def sample(self) -> Episode:
        """One task's support (K, 1) and query (queries, 1) points and its (A, b)."""
        A, phi = self._uniform(self.amplitude, 1), self._uniform(self.phase, 1)
        x = self._uniform(self.x_range, self.shots + self.queries, 1)
        y = A * torch.sin(x - phi)
        k = self.shots
        return Episode(x[:k], y[:k], x[k:], y[k:], torch.cat([A, phi]))

    def batch(self, tasks: int) -> list[Episode]:
        return [self.sample() for _ in range(tasks)]

    def __iter__(self):
        while True:
            yield self.sample()


def sinusoid(task: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The task's true function A sin(x − b); task = (A, b), x: (n, 1) → (n, 1)."""
    return task[0] * torch.sin(x - task[1])
