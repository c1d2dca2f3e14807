"""What a continual learner is scored by: summaries of the accuracy matrix R; gradient alignment.

R[i, j] is the accuracy on task j after training on task i, shape (T, T). ACC
(:func:`average_accuracy`), BWT (:func:`backward_transfer`) and FWT (:func:`forward_transfer`)
summarise it (Lopez-Paz & Ranzato 2017), and so does the average forgetting
(:func:`forgetting`, Chaudhry et al. 2018); :func:`last_task_only` is the ACC of a model that
knows the last task only. :func:`gradient_cosine` tells, for two tasks' losses, whether a step
on one also lowers (> 0) or raises (< 0) the other.
"""
from __future__ import annotations

import torch

from ..gradients import flat_grad


# ---------------------------------------------------------------------------- metrics of R
def _check_R(R) -> torch.Tensor:
    R = torch.as_tensor(R, dtype=torch.float64)
    if R.dim() != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be square (T, T): R[i, j] = accuracy on task j after training "
                         f"on task i; got shape {tuple(R.shape)}")
    return R


def average_accuracy(R) -> float:
    """ACC = (1/T) Σ_j R[T−1, j]: the mean accuracy over all tasks at the end of the stream."""
    R = _check_R(R)
    return R[-1].mean().item()


def backward_transfer(R) -> float:
    """BWT = 1/(T−1) Σ_{j<T−1} (R[T−1, j] − R[j, j]): how later tasks changed earlier ones
    (negative: forgetting). Needs T ≥ 2."""
    R = _check_R(R)
    T = len(R)
    if T < 2:
        raise ValueError("backward transfer needs at least 2 tasks")
    return (R[-1, :-1] - R.diagonal()[:-1]).mean().item()


def forward_transfer(R, b) -> float:
    """FWT = 1/(T−1) Σ_{j≥1} (R[j−1, j] − b_j): how much learning tasks < j helps task j before
    it is seen, against b_j, the accuracy of a randomly initialised model on task j.

    Args:
        R: the accuracy matrix, shape (T, T). b: the random-initialisation accuracies, (T,).
    """
    R = _check_R(R)
    b = torch.as_tensor(b, dtype=torch.float64)
    T = len(R)
    if b.shape != (T,):
        raise ValueError(f"b needs one accuracy per task, shape ({T},), got {tuple(b.shape)}")
    if T < 2:
        raise ValueError("forward transfer needs at least 2 tasks")
    return (R.diagonal(1) - b[1:]).mean().item()  # R.diagonal(1)[j−1] = R[j−1, j]


def forgetting(R) -> float:
    """Average forgetting 1/(T−1) Σ_{j<T−1} (max_{i<T−1} R[i, j] − R[T−1, j]) (Chaudhry et al.
    2018): the drop from the best accuracy a task ever had to its final one (≥ 0)."""
    R = _check_R(R)
    T = len(R)
    if T < 2:
        raise ValueError("forgetting needs at least 2 tasks")
    best = torch.stack([R[:T - 1, j].max() for j in range(T - 1)])
    return (best - R[-1, :-1]).mean().item()


def last_task_only(R) -> float:
    """The ACC of a model that is right on the last task and wrong on all others:
    R[T−1, T−1] / T — what class-incremental naive fine-tuning tends to."""
    R = _check_R(R)
    return (R[-1, -1] / len(R)).item()


# ---------------------------------------------------------------------------- gradient alignment
def gradient_cosine(params: list[torch.Tensor], loss_a: torch.Tensor,
                    loss_b: torch.Tensor) -> float:
    """cos(∇_θ ℒ_a, ∇_θ ℒ_b) over the parameters ``params``: > 0 when a step on ℒ_a also lowers
    ℒ_b (alignment, transfer), < 0 when it raises it (interference, forgetting); 0 when
    either gradient is zero."""
    g_a, g_b = flat_grad(loss_a, params), flat_grad(loss_b, params)
    norm = g_a.norm() * g_b.norm()
    return 0.0 if norm == 0 else (g_a @ g_b / norm).item()
