"""Replay memories ℳ of bounded size: what a rehearsal method keeps of the tasks it has left.

:class:`ReservoirBuffer` fills ``capacity`` slots by reservoir sampling (Vitter's algorithm R),
so that every item of the stream so far is stored with the same probability, without knowing
task boundaries; :class:`TaskReservoirs` keeps one such reservoir per task id, a hard cap of
``per_task`` examples each.
"""
from __future__ import annotations

import torch

from .. import seeding


class ReservoirBuffer:
    """A replay memory ℳ of fixed ``capacity`` filled by reservoir sampling (Vitter's algorithm R).

    The n-th item of the stream (n = 1, 2, …) is stored if the memory is not full; otherwise it
    replaces a uniformly chosen slot with probability capacity/n. After n items, every one of
    them is in ℳ with the same probability capacity/n, whatever task it came from — so with
    capacity = m·T the memory keeps about m examples of each of T tasks without knowing task
    boundaries.

    Args:
        capacity: slots of ℳ.
        seed: seeds the replacement draws and :meth:`sample`.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0  # n: items offered so far
        self.g = seeding.generator(seed)
        self.x = self.y = self.task = None

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor | int = 0) -> None:
        """Offer a batch to the memory, one item after the other; x (B, …), y (B,), task ids
        (B,) or one int."""
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} items but y has {len(y)}")
        task = torch.as_tensor(task).expand(len(y)) if torch.as_tensor(task).dim() == 0 else task
        if self.x is None:
            self.x = torch.zeros(self.capacity, *x.shape[1:], dtype=x.dtype)
            self.y = torch.zeros(self.capacity, dtype=y.dtype)
            self.task = torch.zeros(self.capacity, dtype=torch.long)
        for b in range(len(y)):
            if self.seen < self.capacity:
                slot = self.seen
            else:  # j uniform in {0, …, n−1} (n = seen + 1); keep the item if j < capacity
                slot = int(torch.randint(self.seen + 1, (), generator=self.g))
            if slot < self.capacity:
                self.x[slot], self.y[slot], self.task[slot] = x[b], y[b], task[b]
            self.seen += 1

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n stored items drawn uniformly with replacement: (x (n, …), y (n,), task ids (n,))."""
        if len(self) == 0:
            raise ValueError("the memory is empty: add items before sampling")
        idx = torch.randint(len(self), (n,), generator=self.g)
        return self.x[idx], self.y[idx], self.task[idx]

    def counts(self, tasks: int) -> list[int]:
        """How many stored items come from each task 0…tasks−1."""
        if self.task is None:
            return [0] * tasks
        return torch.bincount(self.task[:len(self)], minlength=tasks).tolist()


class TaskReservoirs:
    """A replay memory with a hard cap per task: one :class:`ReservoirBuffer` of ``per_task``
    slots for each task id, filled by reservoir sampling within that task's stream.

    Unlike a single reservoir of ``per_task`` · T slots (whose per-task shares are only equal on
    average, and which early in the stream holds nothing but the first task), no task ever
    holds more than ``per_task`` examples. It needs the task id of every example. ``sample``
    draws uniformly from everything stored, as :meth:`ReservoirBuffer.sample` does.
    """

    def __init__(self, per_task: int, seed: int = 0):
        if per_task < 1:
            raise ValueError(f"per_task must be ≥ 1, got {per_task}")
        self.per_task, self.seed = per_task, seed
        self.buffers: dict[int, ReservoirBuffer] = {}
        self.g = seeding.generator(seed)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    @property
    def seen(self) -> int:
        return sum(b.seen for b in self.buffers.values())

    @property
    def capacity(self) -> int:
        return self.per_task * len(self.buffers)

    def add(self, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor | int = 0) -> None:
        """Offer a batch; each item goes to its own task's reservoir. x (B, …), y (B,), task
        ids (B,) or one int."""
        task = torch.as_tensor(task).expand(len(y)) if torch.as_tensor(task).dim() == 0 else task
        for t in task.unique().tolist():
            if t not in self.buffers:
                self.buffers[t] = ReservoirBuffer(self.per_task, seed=self.seed + 1 + t)
            keep = task == t
            self.buffers[t].add(x[keep], y[keep], task[keep])

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n stored items drawn uniformly with replacement over all tasks' reservoirs."""
        if len(self) == 0:
            raise ValueError("the memory is empty: add items before sampling")
        stored = [b for b in self.buffers.values() if len(b)]
        x = torch.cat([b.x[:len(b)] for b in stored])
        y = torch.cat([b.y[:len(b)] for b in stored])
        task = torch.cat([b.task[:len(b)] for b in stored])
        idx = torch.randint(len(y), (n,), generator=self.g)
        return x[idx], y[idx], task[idx]

    def counts(self, tasks: int) -> list[int]:
        """How many stored items come from each task 0…tasks−1."""
        return [len(self.buffers[t]) if t in self.buffers else 0 for t in range(tasks)]
