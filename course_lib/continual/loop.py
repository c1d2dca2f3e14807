"""The loop: train a method on 𝒯₁…𝒯_T one after the other and record the accuracy matrix R.

:func:`train_sequentially` calls a method's hooks task after task and, after each task, fills
row i of R with :func:`evaluate`; along the way it can probe the anytime accuracy and the
gradient alignment cos(∇ℒ_current, ∇ℒ_old). It returns a :class:`ContinualResult`, whose
``acc``, ``bwt`` and ``fwt`` are R's summaries.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import seeding
from .methods import Naive
from .metrics import average_accuracy, backward_transfer, forward_transfer, gradient_cosine
from .streams import Stream


@dataclass
class ContinualResult:
    """What :func:`train_sequentially` records.

    Attributes:
        method: the method's name.
        R: the accuracy matrix, R[i, j] = accuracy on task j after training on task i, (T, T).
        b: the accuracy of the randomly initialised model on each task, (T,) (for FWT).
        anytime_step, anytime_acc: the mean accuracy over the tasks seen so far, every
            ``eval_every`` steps (steps counted over the whole stream).
        anytime_tasks: at the same steps, the accuracy on every task, each (T,).
        align_step, align_cos: cos(∇ℒ_current, ∇ℒ_old) every ``eval_every`` steps from task 1 on.
        seconds: training time (evaluation included).
        model: the trained network.
    """

    method: str
    R: torch.Tensor
    b: torch.Tensor
    anytime_step: list = field(default_factory=list)
    anytime_acc: list = field(default_factory=list)
    anytime_tasks: list = field(default_factory=list)
    align_step: list = field(default_factory=list)
    align_cos: list = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = None

    @property
    def acc(self) -> float:
        return average_accuracy(self.R)

    @property
    def bwt(self) -> float:
        return backward_transfer(self.R)

    @property
    def fwt(self) -> float:
        return forward_transfer(self.R, self.b)


@torch.no_grad()
def evaluate(method: Naive, model: nn.Module, stream: Stream, split: str = "test",
             tasks=None) -> torch.Tensor:
    """Accuracy of ``model`` on each task (or on the indices ``tasks``), shape (T,) or (len,).

    Task j is predicted with ``method.forward(model, x, j)`` and, task-incrementally, with
    task j's head mask."""
    model.eval()
    which = range(len(stream)) if tasks is None else tasks
    accs = []
    for j in which:
        x, y = stream.tasks[j].split(split)
        logits = stream.mask(method.forward(model, x, j), j)
        accs.append((logits.argmax(1) == y).float().mean().item())
    model.train()
    return torch.tensor(accs)


def _probe_cosine(method, model, stream, task: int, split: str, n: int) -> float:
    """cos(∇ℒ_task, ∇ℒ_old) on n held-out images of task ``task`` and n of the old tasks."""
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = stream.tasks[task].split(split)
    new = stream.loss(method.forward(model, x[:n], task), y[:n], task)
    per_old = max(n // task, 1)
    old = sum(stream.loss(method.forward(model, stream.tasks[j].split(split)[0][:per_old], j),
                          stream.tasks[j].split(split)[1][:per_old], j) for j in range(task)) / task
    return gradient_cosine(params, new, old)


def train_sequentially(method: Naive, stream: Stream, steps: int, batch_size: int = 64,
                       eval_every: int = 0, eval_split: str = "test", align: bool = False,
                       probe: int = 256, seed: int = 0, progress: bool = True) -> ContinualResult:
    """Train ``method`` on 𝒯₁…𝒯_T one after the other and record the accuracy matrix R.

    Every task gets ``steps`` minibatches of ``batch_size`` drawn from
    ``method.training_data`` (task i's data; all data so far for :class:`Joint`). After each
    task, every task is evaluated on ``eval_split``, which fills row i of R.

    Args:
        method: a :class:`Naive` or one of its subclasses (its state is consumed: use a fresh one
            per run).
        stream: the tasks and the scenario.
        steps: minibatches per task (compute per task is fixed across methods).
        eval_every: record the anytime accuracy (mean over the tasks seen so far) every this
            many steps (0: never).
        eval_split: ``"test"`` for reported numbers, ``"val"`` for tuning hyperparameters.
        align: also record :func:`gradient_cosine` between the current task's and the old tasks'
            loss on ``probe`` held-out images each (every ``eval_every`` steps, from task 1 on).
        seed: seeds the model's initialisation and the minibatches.
        progress: show a tqdm bar.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if len(stream) < 1:
        raise ValueError("the stream has no task")
    torch.manual_seed(seeding.seed(seed))
    model = method.make_model(stream)
    g = seeding.generator(seed)
    T, start = len(stream), time.perf_counter()
    result = ContinualResult(method.name, torch.zeros(T, T), evaluate(method, model, stream,
                                                                      eval_split))
    bar = tqdm(total=T * steps, desc=method.name, disable=not progress, leave=False)
    for i in range(T):
        method.begin_task(model, i, stream)
        x, y, ids = method.training_data(stream, i)
        model.train()
        for step in range(steps):
            idx = torch.randint(len(y), (batch_size,), generator=g)
            loss = method.update(model, x[idx], y[idx], ids[idx], i, stream)
            bar.update()
            if eval_every and (step + 1) % eval_every == 0:
                t = i * steps + step + 1
                accs = evaluate(method, model, stream, eval_split)
                result.anytime_step.append(t)
                result.anytime_tasks.append(accs)
                result.anytime_acc.append(accs[:i + 1].mean().item())
                if align and i > 0:
                    result.align_step.append(t)
                    result.align_cos.append(_probe_cosine(method, model, stream, i, "val", probe))
            if step % 50 == 0:
                bar.set_postfix(task=i, loss=f"{loss:.3f}")
        method.end_task(model, i, stream)
        result.R[i] = evaluate(method, model, stream, eval_split)
    bar.close()
    result.seconds, result.model = time.perf_counter() - start, model
    model.eval()
    return result
