"""Continual learning: given 𝒯₁…𝒯ₙ₋₁, solve 𝒯ₙ quickly without forgetting the earlier tasks.

The learner sees the tasks one after the other, as a non-i.i.d. stream, with bounded memory
and compute. After training on task i it is tested on every task j, which fills the accuracy
matrix R (R[i, j], shape (T, T)); ACC, BWT and FWT summarise it (Lopez-Paz & Ranzato 2017).

This package holds the pieces of ``notebooks/07_continual_learning.ipynb`` and the
``continual`` assignment, one lecture-sized module each; every name below is also importable
from ``course_lib.continual`` itself:

- task streams (:class:`Stream`, in :mod:`.streams`): permuted MNIST (domain-incremental) and
  split MNIST in its task-incremental (a head mask: only the task's 2 logits) and
  class-incremental (all 10 logits, no task id) forms;
- a reservoir-sampled replay memory (:class:`ReservoirBuffer`, Vitter's algorithm R), or one
  reservoir per task with a hard cap (:class:`TaskReservoirs`), in :mod:`.memory`;
- the diagonal Fisher (:func:`diagonal_fisher`), the EWC penalty (:func:`ewc_penalty`,
  Kirkpatrick et al. 2017) and the plain L2 tie (:func:`l2_penalty`), in :mod:`.ewc`;
- the metrics of R (:func:`average_accuracy`, :func:`backward_transfer`,
  :func:`forward_transfer`, :func:`forgetting`, :func:`last_task_only`) and the gradient
  alignment cos(∇ℒ_a, ∇ℒ_b) of two tasks' losses (:func:`gradient_cosine`), in :mod:`.metrics`;
- progressive networks (:class:`ProgressiveNet`; Rusu et al. 2016), in :mod:`.progressive`;
- the methods as small classes with hooks (:class:`Naive` and its subclasses), in
  :mod:`.methods`, and La-MAML (:func:`lookahead`, :func:`lamaml_update`, :class:`LaMAML`;
  Gupta et al. 2020), in :mod:`.lamaml`;
- the one loop that drives them, :func:`train_sequentially`, with :func:`evaluate` and
  :class:`ContinualResult`, in :mod:`.loop`.
"""
from __future__ import annotations

from .ewc import Params, diagonal_fisher, ewc_penalty, l2_penalty
from .lamaml import LaMAML, lamaml_update, lookahead
from .loop import ContinualResult, evaluate, train_sequentially
from .memory import ReservoirBuffer, TaskReservoirs
from .methods import EWC, Joint, L2Tie, Naive, Progressive, Replay
from .metrics import (average_accuracy, backward_transfer, forgetting, forward_transfer,
                      gradient_cosine, last_task_only)
from .progressive import ProgressiveNet
from .streams import SCENARIOS, ContinualTask, Stream, permuted_mnist, split_mnist

__all__ = [
    # streams
    "SCENARIOS", "ContinualTask", "Stream", "permuted_mnist", "split_mnist",
    # memory
    "ReservoirBuffer", "TaskReservoirs",
    # ewc
    "Params", "diagonal_fisher", "ewc_penalty", "l2_penalty",
    # metrics
    "average_accuracy", "backward_transfer", "forward_transfer", "forgetting", "last_task_only",
    "gradient_cosine",
    # progressive
    "ProgressiveNet",
    # methods
    "Naive", "Joint", "EWC", "L2Tie", "Replay", "Progressive",
    # lamaml
    "lookahead", "lamaml_update", "LaMAML",
    # loop
    "ContinualResult", "evaluate", "train_sequentially",
]
