"""The continual-learning methods, as small classes with hooks that one loop drives.

:class:`Naive` (sequential fine-tuning, the lower bound) defines the hooks that
:func:`~course_lib.continual.loop.train_sequentially` calls for every task; the others override
some of them: :class:`Joint` (all data so far, the upper bound), :class:`EWC` and
:class:`L2Tie` (a penalty that ties θ to the old solutions θ*), :class:`Replay` (rehearsal from
a reservoir memory ℳ) and :class:`Progressive` (a column per task). La-MAML, a replay method
too, has its own module, :mod:`course_lib.continual.lamaml`.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import seeding
from ..models import MLP
from ..training import adam
from .ewc import Params, diagonal_fisher, ewc_penalty
from .memory import ReservoirBuffer, TaskReservoirs
from .progressive import ProgressiveNet
from .streams import Stream


class Naive:
    """Naive sequential fine-tuning: each task's loss minimised in turn (the lower bound).

    The methods below subclass it and override its hooks, which :func:`train_sequentially`
    calls in this order for every task 𝒯ᵢ:

    ``begin_task`` → (``training_data`` once, then per step ``update``, which calls
    ``objective``) → ``end_task``; ``forward`` gives the logits for any task.

    Args:
        lr: learning rate of the optimiser.
        hidden: hidden widths of the MLP f_θ built by :meth:`make_model`.
        optimizer: ``"adam"`` or ``"sgd"``, restarted at every task.
    """

    name = "naive"

    def __init__(self, lr: float = 1e-3, hidden: tuple[int, ...] = (100, 100),
                 optimizer: str = "adam"):
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")
        self.lr, self.hidden, self.optimizer_name = lr, hidden, optimizer

    def make_model(self, stream: Stream) -> nn.Module:
        return MLP(784, self.hidden, stream.outputs)

    def forward(self, model: nn.Module, x: torch.Tensor, task: int) -> torch.Tensor:
        """Logits (B, outputs) of x for task ``task`` (the task id matters to progressive nets)."""
        return model(x)

    def begin_task(self, model: nn.Module, task: int, stream: Stream) -> None:
        """A fresh optimiser over the trainable parameters at the start of every task."""
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = (adam(params, lr=self.lr) if self.optimizer_name == "adam"
                          else torch.optim.SGD(params, lr=self.lr))

    def training_data(self, stream: Stream, task: int):
        """(x, y, task ids) to draw task i's minibatches from: 𝒟ᵢ alone."""
        t = stream.tasks[task]
        return t.train_x, t.train_y, torch.full((len(t.train_y),), task)

    def objective(self, model, x, y, ids, task: int, stream: Stream) -> torch.Tensor:
        """The loss minimised on one minibatch: ℒᵢ(θ) (subclasses add penalties or replay)."""
        return stream.loss(self.forward(model, x, task), y, ids)

    def update(self, model, x, y, ids, task: int, stream: Stream) -> float:
        """One optimiser step on :meth:`objective`; returns its value."""
        loss = self.objective(model, x, y, ids, task, stream)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def end_task(self, model: nn.Module, task: int, stream: Stream) -> None:
        pass


class Joint(Naive):
    """Cumulative joint training, the upper bound: task i trains on 𝒟₀ ∪ … ∪ 𝒟ᵢ at once
    (it breaks the memory limit: every example of every task is kept)."""

    name = "joint"

    def training_data(self, stream: Stream, task: int):
        parts = [super(Joint, self).training_data(stream, j) for j in range(task + 1)]
        return tuple(torch.cat(p) for p in zip(*parts))


class EWC(Naive):
    """Elastic weight consolidation: ℒᵢ(θ) + Σ_{j<i} (λ/2) Σ_k F_{j,k} (θ_k − θ*_{j,k})².

    After each task j, θ*_j and the diagonal Fisher F_j (:func:`diagonal_fisher` on
    ``fisher_samples`` of its training images; empirical labels unless ``sampled=True``) are
    stored — one penalty per old task, as in Kirkpatrick et al. 2017.

    Args:
        lam: λ. fisher_samples: images behind each F_j. sampled: sampled-label Fisher.
    """

    name = "EWC"

    def __init__(self, lam: float = 100.0, fisher_samples: int = 500, sampled: bool = False,
                 **kw):
        super().__init__(**kw)
        self.lam, self.fisher_samples, self.sampled = lam, fisher_samples, sampled
        self.anchors: list[tuple[Params, Params]] = []  # (θ*_j, F_j)

    def importance(self, model, task: int, stream: Stream) -> Params:
        t = stream.tasks[task]
        x, y = t.train_x[:self.fisher_samples], t.train_y[:self.fisher_samples]
        mask = stream.masks()[task]
        return diagonal_fisher(model, x, None if self.sampled else y, mask,
                               seeding.generator(task))

    def end_task(self, model, task: int, stream: Stream) -> None:
        theta_star = {n: p.detach().clone() for n, p in model.named_parameters()
                      if p.requires_grad}  # frozen weights cannot move, so need no anchor
        self.anchors.append((theta_star, self.importance(model, task, stream)))

    def objective(self, model, x, y, ids, task, stream):
        theta = dict(model.named_parameters())
        penalty = sum(ewc_penalty(theta, star, f, self.lam) for star, f in self.anchors)
        return super().objective(model, x, y, ids, task, stream) + penalty


class L2Tie(EWC):
    """The plain L2 tie to the old weights: (λ/2) ‖θ − θ*‖², with θ* the weights at the end of
    the previous task — EWC with F_k = 1 (every weight equally important) and one anchor.

    One anchor, not one per old task: with F = 1 a sum of ties would pull θ to the *mean* of
    the old solutions, which solves none of them (measured: worse than naive fine-tuning).
    """

    name = "L2"

    def importance(self, model, task, stream):
        return {n: torch.ones_like(p) for n, p in model.named_parameters()}

    def end_task(self, model, task, stream):
        super().end_task(model, task, stream)
        self.anchors = self.anchors[-1:]


class Replay(Naive):
    """Experience replay: ℒᵢ on the incoming batch plus ℒ on an equal batch from a reservoir
    memory ℳ of ``per_task`` · T examples (:class:`ReservoirBuffer`), which every incoming
    batch is offered to.

    Args:
        per_task: memory slots per task of the stream (capacity = per_task · T).
        cap_per_task: keep one reservoir of ``per_task`` slots per task (:class:`TaskReservoirs`,
            a hard cap; needs task ids) instead of one reservoir of ``per_task`` · T slots.
        replay_batch: memory examples per step (default: the incoming batch size).
    """

    name = "replay"

    def __init__(self, per_task: int = 200, replay_batch: int | None = None, seed: int = 0,
                 cap_per_task: bool = False, **kw):
        super().__init__(**kw)
        self.per_task, self.replay_batch, self.seed = per_task, replay_batch, seed
        self.cap_per_task = cap_per_task
        self.memory: ReservoirBuffer | TaskReservoirs | None = None

    def begin_task(self, model, task, stream):
        super().begin_task(model, task, stream)
        if self.memory is None:
            self.memory = (TaskReservoirs(self.per_task, seed=self.seed) if self.cap_per_task
                           else ReservoirBuffer(self.per_task * len(stream), seed=self.seed))

    def objective(self, model, x, y, ids, task, stream):
        """ℒᵢ on the incoming batch + ℒ on a memory batch (each example with its own task's mask)."""
        loss = super().objective(model, x, y, ids, task, stream)
        if len(self.memory):
            mx, my, mids = self.memory.sample(self.replay_batch or len(y))
            loss = loss + stream.loss(self.forward(model, mx, task), my, mids)
        return loss

    def update(self, model, x, y, ids, task, stream):
        loss = super().update(model, x, y, ids, task, stream)
        self.memory.add(x, y, ids)
        return loss


class Progressive(Naive):
    """Progressive networks: a new column per task, earlier columns frozen
    (:class:`ProgressiveNet`); task i is predicted by column i."""

    name = "progressive"

    def __init__(self, hidden: tuple[int, ...] = (64, 64), **kw):
        super().__init__(hidden=hidden, **kw)

    def make_model(self, stream):
        return ProgressiveNet(784, self.hidden, stream.outputs)

    def forward(self, model, x, task):
        return model(x, min(task, len(model.columns) - 1))  # a task not seen yet: the newest column

    def begin_task(self, model, task, stream):
        while len(model.columns) < task + 1:
            model.add_column()
        super().begin_task(model, task, stream)
