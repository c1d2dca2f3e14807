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

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from . import seeding
from .episodes import EpisodeSampler, stack_episodes
from .models import ConvNet
from .seeding import seed_everything
from .training import adam, cached, evaluate_episodes, mean_ci, meta_fit

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


class TaskBatch(nn.Module):
    """f_θ applied to B tasks in one call, each task with its own parameters.

    Every parameter carries a leading task dimension (B, *shape), e.g. θ expanded B times or
    the B adapted φᵢ; inputs are (B, n, *input_shape) and outputs (B, n, outputs). The B
    tasks' convolutions run as one grouped convolution (tasks folded into channels) and their
    linear layers as one batched matmul, so a meta-batch costs a few large calls instead of B
    small ones. Batch norm normalises each task with its own statistics (``batch_stats``).

    Wraps a :class:`~course_lib.models.ConvNet` (built with ``batch_stats=True``) or an
    :class:`~course_lib.models.MLP`; the parameter names are the wrapped model's, so θ from
    :func:`parameters_of` plugs in unchanged. ``channels_last`` stores feature maps as NHWC,
    which on a CPU makes the first-order step about 1.3× faster and the second-order one
    (whose double backward converts formats back and forth) about 2× slower.
    """

    def __init__(self, model: nn.Module, channels_last: bool = False):
        super().__init__()
        self.blocks, self.head = model.blocks, model.head
        self.channels_last = channels_last
        self.convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                raise ValueError("TaskBatch needs batch norm with batch statistics: build the "
                                 "ConvNet with batch_stats=True")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, n = x.shape[:2]
        if self.convolutional:   # (B, n, C, H, W) → (n, B·C, H, W): task i owns channel group i
            h = x.transpose(0, 1).reshape(n, B * x.shape[2], *x.shape[3:])
            if self.channels_last:
                h = h.contiguous(memory_format=torch.channels_last)
        else:                    # (B, n, d) stays
            h = x.flatten(2)
        for layer in self.blocks.modules():
            h = self._batched(layer, h, B)
        if self.convolutional:
            h = h.reshape(n, B, -1).transpose(0, 1)            # (n, B·width, 1, 1) → (B, n, width)
        return self._batched(self.head, h, B)

    @staticmethod
    def _batched(layer: nn.Module, h: torch.Tensor, B: int) -> torch.Tensor:
        if isinstance(layer, nn.Conv2d):
            return F.conv2d(h, layer.weight.flatten(0, 1), layer.bias.flatten(),
                            layer.stride, layer.padding, groups=B)
        if isinstance(layer, nn.BatchNorm2d):  # per channel over (n, H, W) = per task
            return F.batch_norm(h, None, None, layer.weight.flatten(), layer.bias.flatten(),
                                training=True, eps=layer.eps)
        if isinstance(layer, nn.Linear):       # (B, n, in) @ (B, in, out) + (B, 1, out)
            return torch.baddbmm(layer.bias.unsqueeze(1), h, layer.weight.transpose(1, 2))
        if isinstance(layer, (nn.ReLU, nn.MaxPool2d)):
            return layer(h)
        if isinstance(layer, (nn.Sequential, nn.Identity)):
            return h  # containers: their children are visited by modules()
        raise TypeError(f"TaskBatch does not know how to batch {type(layer).__name__}")


def meta_loss_batched(model: nn.Module, theta: Params, episodes, alpha, steps: int = 1,
                      first_order: bool = False, loss_fn=F.cross_entropy) -> torch.Tensor:
    """:func:`meta_loss` computed for all B tasks at once with :class:`TaskBatch`.

    The same :func:`inner_loop` runs once on θ expanded to (B, *shape); since the summed loss
    Σᵢ ℒ(φᵢ, 𝒟ᵗʳᵢ) has task i's parameters in its i-th term only, its gradient holds every
    task's own inner gradient. Gives the same value and meta-gradient as :func:`meta_loss`.
    """
    support_x, support_y, query_x, query_y = stack_episodes(episodes)
    B = len(episodes)

    def summed(prediction, target):  # Σᵢ ℒᵢ = B · mean over all B·n examples
        return B * loss_fn(prediction.flatten(0, 1), target.flatten(0, 1))

    tasks = TaskBatch(model, channels_last=first_order)
    theta_b = {name: t.expand(B, *t.shape) for name, t in theta.items()}
    phi = inner_loop(tasks, theta_b, support_x, support_y, alpha, steps, first_order, summed)
    return task_loss(tasks, phi, query_x, query_y, summed) / B


def meta_train(model: nn.Module, sampler, steps: int, alpha: float = 0.4, beta: float = 1e-3,
               inner_steps: int = 1, meta_batch: int = 16, first_order: bool = False,
               learn_alpha: bool = False, loss_fn=F.cross_entropy, decay_every: int = 0,
               val_sampler=None,
               val_every: int = 0, val_episodes: int = 50, progress: bool = True,
               desc: str = "meta-train", batched: bool = True):
    """MAML's outer loop: θ ← θ − β ∇_θ (1/B) Σᵢ ℒ(φᵢ, 𝒟ᵗˢᵢ), with Adam at rate β.

    Args:
        model: the network whose parameters are θ (updated in place).
        sampler: draws episodes (``sampler.sample()``), e.g. an EpisodeSampler over the
            meta-training classes or a SinusoidSampler.
        steps: outer steps. alpha: inner α (the initial value when ``learn_alpha``).
        beta: outer learning rate β. inner_steps: inner gradient steps per task.
        meta_batch: tasks per outer step (B). first_order: first-order MAML.
        learn_alpha: learn one α per parameter (Meta-SGD), starting at ``alpha``.
        decay_every: halve β every this many outer steps (0: constant β).
        val_sampler, val_every, val_episodes: record query accuracy on validation episodes.
        batched: compute the meta-batch with :func:`meta_loss_batched` (one call for all
            tasks) instead of the per-task loop :func:`meta_loss`; the result is the same.

    Returns:
        ``(history, alpha)``: a :class:`~course_lib.training.MetaHistory` and the α to adapt with (a float, or the
        learned dict for Meta-SGD).
    """
    theta = parameters_of(model)
    if learn_alpha:
        alpha = {n: torch.full_like(p, alpha).requires_grad_() for n, p in theta.items()}
    learned = list(alpha.values()) if learn_alpha else []
    meta_batch_loss = meta_loss_batched if batched else meta_loss

    def step_loss():
        episodes = [sampler.sample() for _ in range(meta_batch)]
        return meta_batch_loss(model, theta, episodes, alpha, inner_steps, first_order,
                               loss_fn), None

    validate = val_sampler and (
        lambda: evaluate(model, val_sampler, val_episodes, _detached(alpha), inner_steps)[0])
    optimizer = adam(list(theta.values()) + learned, lr=beta)
    history = meta_fit(step_loss, optimizer, steps, decay_every, validate, val_every, progress,
                       desc)
    return history, _detached(alpha)


def _detached(alpha):
    return {n: a.detach() for n, a in alpha.items()} if isinstance(alpha, dict) else alpha


def _test_layout(params: Params) -> Params:
    """Detached θ or φ with every 4-D weight channels-last (NHWC), so the feature maps are too.

    At test time no second-order gradient is taken, and on a CPU a small convolution runs
    about 3× faster in NHWC (a forward pass of 75 Omniglot queries: 26 → 8 ms). The first
    convolution's weight (width, 1, 3, 3) fits both layouts, and an inner-loop step returns
    it in the NCHW one, so every weight is copied into a fresh NHWC tensor.
    """
    def nhwc(t):
        t = t.detach()
        if t.dim() != 4:
            return t
        return torch.empty(t.shape, dtype=t.dtype, device=t.device,
                           memory_format=torch.channels_last).copy_(t)

    return {name: nhwc(t) for name, t in params.items()}


def _test_step(model: nn.Module, phi: Params, support_x, support_y, alpha) -> Params:
    """One inner step φ ← φ − α ∇_φ ℒ(φ, 𝒟ᵗʳ) at test time (first-order: θ gets no gradient)."""
    return _test_layout(inner_loop(model, phi, support_x, support_y, alpha, 1, first_order=True))


def learner(model: nn.Module, alpha, steps: int = 1):
    """A learner for :func:`~course_lib.training.evaluate_episodes`: adapt θ on 𝒟ᵗʳ, predict 𝒟ᵗˢ.

    At test time no gradient flows to θ, so the inner loop runs on a detached copy of θ.
    """
    theta = _test_layout(dict(model.named_parameters()))

    def adapt_and_predict(support_x, support_y, query_x):
        phi = theta
        for _ in range(steps):
            phi = _test_step(model, phi, support_x, support_y, alpha)
        with torch.no_grad():
            return functional_call(model, phi, (query_x,)).argmax(1)

    return adapt_and_predict


def evaluate(model: nn.Module, sampler, episodes: int, alpha, steps: int = 1,
             progress: bool = False) -> tuple[float, float]:
    """Query accuracy after adaptation: mean ± 95% CI over ``episodes`` episodes."""
    return evaluate_episodes(learner(model, alpha, steps), sampler, episodes, progress)


def accuracy_by_steps(model: nn.Module, sampler, episodes: int, alpha,
                      steps: list[int]) -> list[tuple[float, float]]:
    """Query accuracy (mean, 95% CI) after each number of inner steps k in ``steps``.

    Each episode is adapted once, step by step up to ``max(steps)``, and its queries are
    classified after each k in ``steps``: the numbers equal those of one :func:`evaluate` per
    k on the same episodes, for the cost of the longest adaptation alone.
    """
    if min(steps) < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    theta = _test_layout(dict(model.named_parameters()))
    accs = {k: [] for k in steps}
    for _ in range(episodes):
        e = sampler.sample()
        phi = theta
        for k in range(max(steps) + 1):
            if k:
                phi = _test_step(model, phi, e.support_x, e.support_y, alpha)
            if k in accs:
                with torch.no_grad():
                    predicted = functional_call(model, phi, (e.query_x,)).argmax(1)
                accs[k].append((predicted == e.query_y).float().mean().item())
    return [mean_ci(accs[k]) for k in steps]


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


# ---------------------------------------------------------------------------- Omniglot
OMNIGLOT = dict(ways=5, shots=1, queries=2, alpha=0.4, beta=1.5e-3, meta_batch=16, inner_steps=1,
                first_order=False, seed=0)
"""The MAML paper's Omniglot 5-way 1-shot setting, fitted to a laptop: α = 0.4, one inner step
while meta-training, a meta-batch of 16 tasks (the paper: 32), Adam with β = 1.5·10⁻³ (the
paper: 10⁻³). Two query drawings per class (the paper: one) give a less noisy meta-gradient for
a third more time per step. Measured here (5-way 1-shot, 600 test episodes, three test steps):
3000 steps at β = 10⁻³ reached 95.2% with one query and 96.5% with five; with two queries,
2666 steps at β = 10⁻³ reached 95.6% and 2000 steps at β = 1.5·10⁻³ 95.5%, as did β = 2·10⁻³
(3·10⁻³ for 1600 steps: 94.5%); a meta-batch of 8 reached 94.5% in 2666 steps, 94.8% in 3333."""


def omniglot_steps(budget) -> int:
    """Outer steps of the Omniglot model at a budget: three fifths of ``budget.meta_steps``
    (1,200 at ``default``, about 6 min on one core of a 2-core laptop-class machine; 2,000
    before the course's notebooks had to fit 20 minutes together)."""
    return 3 * budget.meta_steps // 5


def omniglot(images, budget, steps: int | None = None, val_sampler=None, val_every: int = 0,
             val_episodes: int = 100, retrain: bool = False, progress: bool = True, device=None,
             **changes):
    """θ meta-trained by MAML on ``images`` with the :data:`OMNIGLOT` setting, cached on disk.

    Args:
        images: the meta-training classes (e.g. Omniglot's background set with rotations).
        budget: gives the width of the :class:`~course_lib.models.ConvNet`.
        steps: outer steps (default :func:`omniglot_steps`); β is halved for the last third.
        val_sampler, val_every, val_episodes: meta-validation accuracy (after one inner step)
            on ``val_episodes`` episodes every ``val_every`` outer steps.
        retrain: train even when the cache holds this model (notebook 05 always trains;
            notebook 06 reuses what 05 trained).
        device: where θ and the episodes live (``None``: the CPU); see ``course_site.paper``.
        changes: settings that differ from :data:`OMNIGLOT`, e.g. ``alpha=0.1``.

    Returns:
        ``(model, history, setting)``; ``history.seconds`` is the time training took.
    """
    steps = steps or omniglot_steps(budget)
    setting = {**OMNIGLOT, **changes}
    if set(setting) != set(OMNIGLOT):
        raise TypeError(f"unknown MAML setting(s) {sorted(set(setting) - set(OMNIGLOT))}")
    seed_everything(setting["seed"])
    model = ConvNet(setting["ways"], width=budget.width, batch_stats=True).to(device)
    sampler = EpisodeSampler(images, ways=setting["ways"], shots=setting["shots"],
                             queries=setting["queries"], seed=setting["seed"], device=device)
    named = {**setting, "seed": seeding.seed(setting["seed"])}  # another COURSE_SEED: another θ
    key = f"maml_{images.name}_n{len(images)}_w{budget.width}_steps{steps}_" + "_".join(
        f"{k}{v}" for k, v in named.items())

    def train():
        return meta_train(model, sampler, steps, setting["alpha"], setting["beta"],
                          setting["inner_steps"], setting["meta_batch"], setting["first_order"],
                          decay_every=max(2 * steps // 3, 1), val_sampler=val_sampler,
                          val_every=val_every, val_episodes=val_episodes, progress=progress,
                          desc=f"MAML, α = {setting['alpha']}, {setting['inner_steps']} step(s)")[0]

    return model, cached(model, key, train, retrain), setting
