"""Tasks as episodes: an N-way K-shot support set 𝒟ᵗʳ and a query set 𝒟ᵗˢ.

One episode type, made by one seeded sampler over class-disjoint splits. The transfer topic uses
it for few-label target tasks; the meta-learning topics use it for MAML, prototypical networks
and black-box learners (lecture: "the meta-learning problem", N-way K-shot).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from . import seeding
from .data import ImageSet


@dataclass
class Episode:
    """One task 𝒯ᵢ: a support set 𝒟ᵗʳ and a query set 𝒟ᵗˢ.

    Attributes:
        support_x: shape (ways·shots, *input_shape), grouped by class.
        support_y: shape (ways·shots,), labels 0…ways−1 (relabelled per episode).
        query_x: shape (ways·queries, *input_shape).
        query_y: shape (ways·queries,).
        classes: what identifies the task 𝒯ᵢ: for classification, shape (ways,), the data
            set's class ids behind labels 0…ways−1; for regression, the parameters that
            generated the task (e.g. a sinusoid's amplitude and phase).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    @property
    def ways(self) -> int:
        return len(self.classes)

    @property
    def shots(self) -> int:
        return len(self.support_y) // self.ways

    def to(self, device) -> "Episode":
        return Episode(*(t.to(device) for t in (self.support_x, self.support_y,
                                                 self.query_x, self.query_y, self.classes)))


def split_classes(classes: int, sizes: list[int], seed: int = 0) -> list[torch.Tensor]:
    """Split class ids 0…classes−1 into disjoint random groups of the given sizes (fixed by seed).

    >>> train, val = split_classes(10, [7, 3])
    """
    if sum(sizes) > classes:
        raise ValueError(f"cannot take {sum(sizes)} classes out of {classes}")
    perm = torch.randperm(classes, generator=seeding.generator(seed))
    return list(perm[: sum(sizes)].split(sizes))


class EpisodeSampler:
    """Draws N-way K-shot episodes from ``data`` using only the class ids in ``classes``.

    >>> sampler = EpisodeSampler(data, ways=5, shots=1, queries=15, seed=0)    # all classes
    >>> sampler = EpisodeSampler(data, train_classes, ways=5, shots=1)         # a split only

    Args:
        data: images and labels.
        classes: the class ids this sampler may use (e.g. a meta-training split); ``None``
            (the default) means every class of ``data``, ``torch.arange(data.classes)``.
        ways: N, classes per episode (required; keyword, or third positional argument).
        shots: K, support examples per class (required; keyword, or fourth positional argument).
        queries: query examples per class.
        seed: seeds the sampler's own generator (:func:`~course_lib.seeding.generator`, so it
            moves with ``COURSE_SEED``): the k-th episode is the same on every run.
        device: where the episodes' tensors go (e.g. ``"cuda"``); sampling itself stays on
            the CPU, so the stream of episodes is the same on every device.

    Raises:
        TypeError: ``ways`` or ``shots`` is missing.
        ValueError: class ids outside ``data``, more ways than classes, or a class with fewer
            than ``shots + queries`` examples.
    """

    def __init__(self, data: ImageSet, classes: torch.Tensor | None = None, ways: int | None = None,
                 shots: int | None = None, queries: int = 15, seed: int = 0, device=None):
        missing = [name for name, value in (("ways", ways), ("shots", shots)) if value is None]
        if missing:
            raise TypeError(f"EpisodeSampler needs {' and '.join(missing)} (N-way K-shot), e.g. "
                            "EpisodeSampler(data, ways=5, shots=1)")
        self.data, self.ways, self.shots, self.queries = data, ways, shots, queries
        self.classes = torch.arange(data.classes) if classes is None else torch.as_tensor(classes)
        if len(self.classes) and not 0 <= int(self.classes.min()) <= int(self.classes.max()) < data.classes:
            raise ValueError(f"class ids must lie in 0…{data.classes - 1} for {data.name}")
        if ways > len(self.classes):
            raise ValueError(f"{ways}-way episodes need at least {ways} classes, "
                             f"the split has {len(self.classes)}")
        # indices of each class's examples, built once
        order = torch.argsort(data.y, stable=True)
        counts = torch.bincount(data.y, minlength=data.classes)
        self.index = dict(zip(range(data.classes), order.split(counts.tolist())))
        fewest = min(len(self.index[int(c)]) for c in self.classes)
        if shots + queries > fewest:
            raise ValueError(f"shots + queries = {shots + queries} exceeds the {fewest} examples "
                             "of the smallest class")
        self.generator = seeding.generator(seed)
        self.device = device

    def sample(self) -> Episode:
        """The next episode of this sampler's seeded stream."""
        g = self.generator
        chosen = self.classes[torch.randperm(len(self.classes), generator=g)[: self.ways]]
        support, query = [], []
        for c in chosen.tolist():
            idx = self.index[c][torch.randperm(len(self.index[c]), generator=g)]
            support.append(idx[: self.shots])
            query.append(idx[self.shots: self.shots + self.queries])
        support, query = torch.cat(support), torch.cat(query)
        labels = torch.arange(self.ways)
        episode = Episode(self.data.x[support], labels.repeat_interleave(self.shots),
                          self.data.x[query], labels.repeat_interleave(self.queries), chosen)
        return episode if self.device is None else episode.to(self.device)

    def __iter__(self):
        while True:
            yield self.sample()

    def over(self, x: torch.Tensor) -> "EpisodeSampler":
        """This sampler's stream over other inputs of the same examples (row i of ``x`` stands for
        example i, e.g. its features f_θ(xᵢ)): the twin shares the generator, so its next
        episode is the one this sampler would have drawn next, with the same labels."""
        if len(x) != len(self.data):
            raise ValueError(f"x has {len(x)} rows, the sampler's data {len(self.data)} examples")
        twin = copy.copy(self)
        twin.data = replace(self.data, x=x)
        return twin


def stack_episodes(episodes) -> tuple[torch.Tensor, ...]:
    """A meta-batch as tensors with a leading task dimension: (support_x, support_y, query_x,
    query_y), each (B, n, …). All episodes must have the same sizes."""
    sizes = {(len(e.support_x), len(e.query_x)) for e in episodes}
    if len(sizes) != 1:
        raise ValueError(f"a stacked meta-batch needs episodes of one size, got (support, query) "
                         f"sizes {sorted(sizes)}")
    return tuple(torch.stack([getattr(e, f) for e in episodes])
                 for f in ("support_x", "support_y", "query_x", "query_y"))
