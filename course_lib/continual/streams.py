"""Task streams: 𝒯₁…𝒯_T in the order they arrive, and the scenario that says what a prediction uses.

A :class:`Stream` holds its tasks (each a :class:`ContinualTask` with train, val and test
splits) and one of the :data:`SCENARIOS`: permuted MNIST (:func:`permuted_mnist`) is
domain-incremental — the same ten labels, pᵢ(x) changes — and split MNIST (:func:`split_mnist`)
comes task-incremental (a head mask: only the task's 2 logits compete) or class-incremental
(all 10 logits compete, no task id).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import seeding
from ..data import ImageSet

SCENARIOS = ("domain", "task", "class")


@dataclass
class ContinualTask:
    """One task 𝒯ᵢ of a stream.

    Attributes:
        name: e.g. ``"permutation 2"`` or ``"digits 4/5"``.
        train_x, val_x, test_x: flattened images, shape (n, 784).
        train_y, val_y, test_y: labels in 0…9 (the digit), shape (n,).
        classes: the labels this task uses, e.g. (4, 5); all ten for permuted MNIST.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[int, ...]

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', not {which!r}")
        return getattr(self, f"{which}_x"), getattr(self, f"{which}_y")


@dataclass
class Stream:
    """𝒯₁…𝒯_T in the order they arrive, and the scenario that says what a prediction may use.

    Attributes:
        tasks: the T tasks.
        scenario: ``"domain"`` (the same 10 labels, pᵢ(x) changes; no task id needed),
            ``"task"`` (the task id is given at test time: only the task's logits compete) or
            ``"class"`` (all 10 logits compete and no task id is given).
        outputs: logits of the shared head (10).
    """

    tasks: list[ContinualTask]
    scenario: str
    outputs: int = 10

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, not {self.scenario!r}")

    def __len__(self) -> int:
        return len(self.tasks)

    def masks(self) -> torch.Tensor:
        """Which logits each task may use, shape (T, outputs) bool (all True unless ``"task"``)."""
        m = torch.ones(len(self.tasks), self.outputs, dtype=torch.bool)
        if self.scenario == "task":
            m[:] = False
            for i, t in enumerate(self.tasks):
                m[i, list(t.classes)] = True
        return m

    def mask(self, logits: torch.Tensor, task_ids: torch.Tensor | int) -> torch.Tensor:
        """Logits (B, outputs) with the logits that example b's task may not use set to −∞
        (the multi-head of the task-incremental scenario); unchanged in the other scenarios."""
        if self.scenario != "task":
            return logits
        allowed = self.masks()[task_ids]  # (B, outputs) or (outputs,)
        return logits.masked_fill(~allowed, float("-inf"))

    def loss(self, logits: torch.Tensor, y: torch.Tensor, task_ids) -> torch.Tensor:
        """Cross-entropy of the masked logits (B, outputs) against the labels y (B,)."""
        return F.cross_entropy(self.mask(logits, task_ids), y)


def _subset(data: ImageSet, n: int, g: torch.Generator, classes=None):
    """n random images (flattened, (n, 784)) and labels, optionally only of ``classes``."""
    pool = torch.arange(len(data)) if classes is None else torch.isin(
        data.y, torch.tensor(classes)).nonzero().flatten()
    if n > len(pool):
        raise ValueError(f"asked for {n} images of {data.name} but only {len(pool)} are there")
    idx = pool[torch.randperm(len(pool), generator=g)[:n]]
    return data.x[idx].flatten(1), data.y[idx]


def permuted_mnist(train: ImageSet, test: ImageSet, tasks: int = 5, per_task: int = 5000,
                   val_per_task: int = 500, test_per_task: int = 2000, identity_first: bool = True,
                   seed: int = 0) -> Stream:
    """Permuted MNIST (domain-incremental): task i shows digits through its own fixed pixel
    permutation πᵢ (task 0 unpermuted when ``identity_first``).

    The labels stay the ten digits, so one 10-way head serves every task; what changes is
    pᵢ(x). Each task draws its own ``per_task`` training, ``val_per_task`` validation (both
    from MNIST's training set, disjoint) and ``test_per_task`` test images.
    """
    if tasks < 1:
        raise ValueError(f"tasks must be ≥ 1, got {tasks}")
    g = seeding.generator(seed)
    out = []
    for i in range(tasks):
        pi = torch.arange(784) if (i == 0 and identity_first) else torch.randperm(784, generator=g)
        x, y = _subset(train, per_task + val_per_task, g)
        x_test, y_test = _subset(test, test_per_task, g)
        x, x_test = x[:, pi], x_test[:, pi]  # (n, 784): pixel k of the new image is pixel πᵢ(k)
        out.append(ContinualTask(f"permutation {i}", x[:per_task], y[:per_task], x[per_task:],
                                 y[per_task:], x_test, y_test, tuple(range(10))))
    return Stream(out, "domain")


def split_mnist(train: ImageSet, test: ImageSet, scenario: str = "task", per_class: int = 2000,
                val_per_class: int = 200, test_per_class: int = 500, seed: int = 0) -> Stream:
    """Split MNIST: 5 tasks of 2 digits, (0, 1), (2, 3), …, (8, 9).

    ``scenario="task"`` (task-incremental): the task id is known and only the task's two
    logits compete (a head mask). ``scenario="class"`` (class-incremental): all ten logits
    compete and no task id is given, so a model must tell 0 from 9 though it never saw them in
    one batch. Labels are the digits themselves in both.
    """
    if scenario not in ("task", "class"):
        raise ValueError(f"split MNIST is 'task'- or 'class'-incremental, not {scenario!r}")
    g = seeding.generator(seed)
    out = []
    for i in range(5):
        classes = (2 * i, 2 * i + 1)
        x, y = _subset(train, 2 * (per_class + val_per_class), g, classes)
        x_test, y_test = _subset(test, 2 * test_per_class, g, classes)
        n = 2 * per_class
        out.append(ContinualTask(f"digits {classes[0]}/{classes[1]}", x[:n], y[:n], x[n:], y[n:],
                                 x_test, y_test, classes))
    return Stream(out, scenario)
