"""Optimisation-based meta-learning: MAML (Finn et al. 2017) and Meta-SGD (Li et al. 2017).

Meta-training learns an initialisation θ such that a few gradient steps on a task's support set
𝒟ᵗʳᵢ give parameters φᵢ that do well on its query set 𝒟ᵗˢᵢ:

    inner loop (per task):  φᵢ = θ − α ∇_θ ℒ(θ, 𝒟ᵗʳᵢ)            (repeated ``steps`` times)
    outer loop (per batch): θ ← θ − β ∇_θ Σᵢ ℒ(φᵢ, 𝒟ᵗˢᵢ)

The inner loop is one pure function, :func:`inner_loop` (θ in, φᵢ out), built on
``torch.func``; meta-training, evaluation, the tests and ``notebooks/05_maml.ipynb`` all call
it. ``first_order=True`` drops the second-order term (the gradient of the inner gradient), so
∇_θ ℒ(φᵢ) is approximated by ∇_φ ℒ(φᵢ). With ``alpha`` a dict of tensors shaped like θ, every
parameter has its own learned inner learning rate (Meta-SGD; La-MAML builds on the same idea).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad
from tqdm.auto import tqdm

from .training import evaluate_episodes, mean_ci

Params = dict[str, torch.Tensor]


def parameters_of(model: nn.Module) -> Params:
    """θ as a dict ``name → Parameter`` (the module's own tensors: updating them updates it)."""
    return dict(model.named_parameters())


def task_loss(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor,
              loss_fn=F.cross_entropy) -> torch.Tensor:
    """ℒ(params, (x, y)): the loss of ``model`` evaluated with ``params`` in place of its own."""
    return loss_fn(functional_call(model, params, (x,)), y)


def _step_size(alpha, name: str):
    return alpha[name] if isinstance(alpha, dict) else alpha


def inner_loop(model: nn.Module, theta: Params, support_x: torch.Tensor,
               support_y: torch.Tensor, alpha, steps: int = 1, first_order: bool = False,
               loss_fn=F.cross_entropy) -> Params:
    """Adapt θ to one task: ``steps`` gradient steps φ ← φ − α ∇_φ ℒ(φ, 𝒟ᵗʳ), from φ = θ.

    Args:
        model: the network f; only its structure is used, the weights come from ``theta``.
        theta: θ, ``name → tensor``. If its tensors require grad, φᵢ is a differentiable
            function of θ and the meta-gradient can flow back through the inner loop.
        support_x: 𝒟ᵗʳ inputs, shape (ways·shots, *input_shape) or (K, d) for regression.
        support_y: 𝒟ᵗʳ targets, shape (ways·shots,) or (K, d).
        alpha: α, a float, or a dict ``name → tensor shaped like θ[name]`` (Meta-SGD).
        steps: number of inner gradient steps.
        first_order: treat the inner gradients as constants (first-order MAML).
        loss_fn: ℒ, e.g. ``F.cross_entropy`` or ``F.mse_loss``.

    Returns:
        φᵢ, a dict with θ's keys.
    """
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    if len(support_x) != len(support_y):
        raise ValueError(f"support_x has {len(support_x)} examples but support_y has "
                         f"{len(support_y)}")
    gradient = grad(lambda params: task_loss(model, params, support_x, support_y, loss_fn))
    phi = theta
    for _ in range(steps):
        g = gradient(phi)
        if first_order:
            g = {name: t.detach() for name, t in g.items()}
        phi = {name: phi[name] - _step_size(alpha, name) * g[name] for name in phi}
    return phi


def meta_loss(model: nn.Module, theta: Params, episodes, alpha, steps: int = 1,
              first_order: bool = False, loss_fn=F.cross_entropy) -> torch.Tensor:
    """(1/B) Σᵢ ℒ(φᵢ, 𝒟ᵗˢᵢ) over a meta-batch of B episodes, each φᵢ from :func:`inner_loop`."""
    losses = []
    for e in episodes:
        phi = inner_loop(model, theta, e.support_x, e.support_y, alpha, steps, first_order,
                         loss_fn)
        losses.append(task_loss(model, phi, e.query_x, e.query_y, loss_fn))
    return torch.stack(losses).mean()


@dataclass
class MetaHistory:
    """Meta-training record: the outer loss every step, validation accuracy now and then."""

    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0


def meta_train(model: nn.Module, sampler, steps: int, alpha: float = 0.4, beta: float = 1e-3,
               inner_steps: int = 1, meta_batch: int = 16, first_order: bool = False,
               learn_alpha: bool = False, loss_fn=F.cross_entropy, val_sampler=None,
               val_every: int = 0, val_episodes: int = 50, progress: bool = True,
               desc: str = "meta-train"):
    """MAML's outer loop: θ ← θ − β ∇_θ (1/B) Σᵢ ℒ(φᵢ, 𝒟ᵗˢᵢ), with Adam at rate β.

    Args:
        model: the network whose parameters are θ (updated in place).
        sampler: draws episodes (``sampler.sample()``), e.g. an EpisodeSampler over the
            meta-training classes or a SinusoidSampler.
        steps: outer steps. alpha: inner α (the initial value when ``learn_alpha``).
        beta: outer learning rate β. inner_steps: inner gradient steps per task.
        meta_batch: tasks per outer step (B). first_order: first-order MAML.
        learn_alpha: learn one α per parameter (Meta-SGD), starting at ``alpha``.
        val_sampler, val_every, val_episodes: record query accuracy on validation episodes.

    Returns:
        ``(history, alpha)``: a :class:`MetaHistory` and the α to adapt with (a float, or the
        learned dict for Meta-SGD).
    """
    theta = parameters_of(model)
    if learn_alpha:
        alpha = {n: torch.full_like(p, alpha).requires_grad_() for n, p in theta.items()}
    learned = list(alpha.values()) if learn_alpha else []
    optimizer = torch.optim.Adam(list(theta.values()) + learned, lr=beta)
    history, start = MetaHistory(), time.perf_counter()
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        loss = meta_loss(model, theta, [sampler.sample() for _ in range(meta_batch)], alpha,
                         inner_steps, first_order, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        if val_sampler is not None and val_every and (step + 1) % val_every == 0:
            history.seconds += time.perf_counter() - start  # validation time is not training
            acc, _ = evaluate(model, val_sampler, val_episodes, _detached(alpha), inner_steps)
            history.val_step.append(step + 1)
            history.val_acc.append(acc)
            start = time.perf_counter()
    history.seconds += time.perf_counter() - start
    return history, _detached(alpha)


def _detached(alpha):
    return {n: a.detach() for n, a in alpha.items()} if isinstance(alpha, dict) else alpha


def learner(model: nn.Module, alpha, steps: int = 1):
    """A learner for :func:`~course_lib.training.evaluate_episodes`: adapt θ on 𝒟ᵗʳ, predict 𝒟ᵗˢ.

    At test time no gradient flows to θ, so the inner loop runs on a detached copy of θ.
    """
    theta = {n: p.detach() for n, p in model.named_parameters()}

    def adapt_and_predict(support_x, support_y, query_x):
        phi = inner_loop(model, theta, support_x, support_y, alpha, steps, first_order=True)
        with torch.no_grad():
            return functional_call(model, phi, (query_x,)).argmax(1)

    return adapt_and_predict


def evaluate(model: nn.Module, sampler, episodes: int, alpha, steps: int = 1,
             progress: bool = False) -> tuple[float, float]:
    """Query accuracy after adaptation: mean ± 95% CI over ``episodes`` episodes."""
    return evaluate_episodes(learner(model, alpha, steps), sampler, episodes, progress)


def adaptation_curve(model: nn.Module, theta: Params, episodes, alpha, steps: int,
                     loss_fn=F.mse_loss) -> list[tuple[float, float]]:
    """Query loss (mean, 95% CI) after 0, 1, …, ``steps`` inner steps from θ, over episodes.

    The same :func:`inner_loop` serves MAML's θ and a pre-trained θ (fine-tuning at test time).
    """
    per_step = [[] for _ in range(steps + 1)]
    for e in episodes:
        phi = {n: t.detach() for n, t in theta.items()}
        for k in range(steps + 1):
            if k:
                phi = inner_loop(model, phi, e.support_x, e.support_y, alpha, 1, True, loss_fn)
            with torch.no_grad():
                per_step[k].append(task_loss(model, phi, e.query_x, e.query_y, loss_fn).item())
    return [mean_ci(losses) for losses in per_step]
