"""Multi-task learning: tasks 𝒯ᵢ, conditioning on zᵢ, how much to share, how to weight ℒᵢ.

A task is 𝒯ᵢ = {pᵢ(x), pᵢ(y|x), ℒᵢ}; multi-task learning solves all T of them at once,

    min_θ  Σᵢ wᵢ ℒᵢ(θ, 𝒟ᵢ).

This module holds the pieces of notebook 02 and the ``multitask`` assignment:

- task sets built from MNIST and Fashion-MNIST (:func:`split_tasks`, :func:`relabelled_tasks`,
  :func:`ink_task`);
- :class:`MultiTaskMLP`, one network with a sharing switch per layer (hard sharing with task
  heads, independent networks, sharing only the upper layers) and conditioning on a one-hot
  task descriptor zᵢ (concatenation, multiplicative gating);
- the weighted objective (:func:`weighted_loss`), uncertainty weighting (Kendall et al. 2018),
  GradNorm (Chen et al. 2018), the Pareto-seeking MGDA (:func:`min_norm_weights`, Sener &
  Koltun 2018), gradient surgery (:func:`pcgrad`, Yu et al. 2020) and soft sharing (:func:`soft_tie`), each as one step-gradient function (:func:`weighting_method`)
  called by one loop, :func:`train_multitask`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import seeding
from .data import ImageSet
from .gradients import flat_grad, set_flat_grad
from .training import adam

FASHION_NAMES = ("T-shirt", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle boot")


# ---------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """One task 𝒯ᵢ: its training set 𝒟ᵢ, a test set, and the kind of its loss ℒᵢ.

    Attributes:
        name: e.g. ``"digits 0-4"``.
        train_x, test_x: flattened images, shape (n, 784).
        train_y, test_y: class labels, shape (n,), or regression targets, shape (n, 1).
        outputs: number of classes (1 for a regression task).
        kind: ``"classification"`` (ℒᵢ = cross-entropy, scored by accuracy) or
            ``"regression"`` (ℒᵢ = mean squared error, scored by MSE).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    outputs: int
    kind: str = "classification"

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℒᵢ of a batch: cross-entropy of logits (B, outputs) or MSE of predictions (B, 1)."""
        if self.kind == "classification":
            return F.cross_entropy(output, y)
        return F.mse_loss(output, y)


def _pick(data: ImageSet, classes, per_class: int | None, g: torch.Generator):
    """Up to ``per_class`` random images of each class in ``classes``; labels become 0…len−1."""
    xs, ys = [], []
    for k, c in enumerate(classes):
        idx = (data.y == c).nonzero().flatten()
        if per_class is not None:
            if per_class > len(idx):
                raise ValueError(f"per_class={per_class} but class {c} of {data.name} has only "
                                 f"{len(idx)} images")
            idx = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        xs.append(data.x[idx].flatten(1))
        ys.append(torch.full((len(idx),), k))
    return torch.cat(xs), torch.cat(ys)


def split_tasks(digits: tuple[ImageSet, ImageSet], fashion: tuple[ImageSet, ImageSet],
                per_class: int, test_per_class: int = 300, seed: int = 0) -> list[Task]:
    """Four 5-way tasks with different pᵢ(x): digits 0–4, digits 5–9, clothes 0–4, clothes 5–9.

    Multi-task classification in the lecture's sense: the same ℒᵢ (cross-entropy) for every
    task, each over its own images (like per-language handwriting recognition).

    Args:
        digits, fashion: (train, test) splits of MNIST and Fashion-MNIST.
        per_class: training images per class (little data per task when small).
        test_per_class: test images per class.
    """
    g = seeding.generator(seed)
    tasks = []
    for (train, test), source in [(digits, "digits"), (fashion, "clothes")]:
        for classes in (range(0, 5), range(5, 10)):
            x, y = _pick(train, classes, per_class, g)
            x_test, y_test = _pick(test, classes, test_per_class, g)
            name = f"{source} {classes.start}-{classes.stop - 1}"
            tasks.append(Task(name, x, y, x_test, y_test, outputs=5))
    return tasks


def relabelled_tasks(digits: tuple[ImageSet, ImageSet], tasks: int, per_class: int,
                     test_size: int = 1000, seed: int = 0) -> list[Task]:
    """``tasks`` 10-way digit tasks with the same pᵢ(x) and different pᵢ(y|x).

    Task i names the ten digits with its own code πᵢ (a random permutation): what a digit looks
    like is shared, the label it gets is not — so the tasks want the same features and
    different heads. Each task has its own ``per_class`` training images per digit.
    """
    train, test = digits
    g = seeding.generator(seed)
    out = []
    for i in range(tasks):
        pi = torch.randperm(10, generator=g)  # task i's label code π_i
        x, y = _pick(train, range(10), per_class, g)
        idx = torch.randperm(len(test), generator=g)[:test_size]
        out.append(Task(f"code {i}", x, pi[y], test.x[idx].flatten(1), pi[test.y[idx]], 10))
    return out


def ink_task(digits: tuple[ImageSet, ImageSet], size: int, test_size: int = 1000,
             seed: int = 0) -> Task:
    """A regression task on digit images: y = the amount of ink (sum of pixel values).

    Its targets are in the tens to hundreds, so its MSE is orders of magnitude larger than a
    classification task's cross-entropy — the mixed discrete/continuous case where the
    weights wᵢ matter.
    """
    train, test = digits
    g = seeding.generator(seed)
    i, j = torch.randperm(len(train), generator=g)[:size], torch.randperm(len(test), generator=g)[:test_size]
    x, x_test = train.x[i].flatten(1), test.x[j].flatten(1)
    return Task("ink", x, x.sum(1, keepdim=True), x_test, x_test.sum(1, keepdim=True), 1,
                kind="regression")


# ---------------------------------------------------------------------------- the network
class MultiTaskMLP(nn.Module):
    """f_θ(x, zᵢ): a 3-layer ReLU network with a sharing switch per layer.

    Layers: inputs → hidden → hidden → outputsᵢ. ``shared[l]`` says whether layer l is one
    module for all tasks (shared θ) or one per task (private θᵢ):

    - ``(True, True, False)`` — hard sharing: a shared trunk and task heads (Caruana 1997);
    - ``(False, False, False)`` — independent networks;
    - ``(False, True, False)`` — share less: private first layers, shared upper layer;
    - ``(True, True, True)`` — everything shared; the network tells tasks apart only through
      ``condition``: ``"concat"`` (zᵢ appended to x) or ``"gating"`` (the first hidden layer
      multiplied by σ(W_z zᵢ)), or not at all (``None``).

    Args:
        inputs: input size (784 for flattened 28×28 images).
        hidden: width h of both hidden layers (the capacity of a shared trunk).
        outputs: classes per task, one entry per task (T = len(outputs)).
        shared: per layer, whether it is shared.
        condition: ``None``, ``"concat"`` or ``"gating"``.
    """

    def __init__(self, inputs: int, hidden: int, outputs: list[int],
                 shared=(True, True, False), condition: str | None = None):
        super().__init__()
        if condition not in (None, "concat", "gating"):
            raise ValueError(f"condition must be None, 'concat' or 'gating', not {condition!r}")
        if len(shared) != 3:
            raise ValueError(f"shared has one flag per layer (3), got {shared!r}")
        if shared[2] and len(set(outputs)) != 1:
            raise ValueError(f"a shared head needs the same number of classes in every task, "
                             f"got {outputs}")
        self.tasks, self.shared, self.condition = len(outputs), tuple(shared), condition
        sizes = [(inputs + (self.tasks if condition == "concat" else 0), hidden), (hidden, hidden)]
        self.layers = nn.ModuleList(
            self._layer(s, o if l < 2 else None, outputs, l)
            for l, (s, o) in enumerate(sizes + [(hidden, None)]))
        if condition == "gating":
            self.gate = nn.Linear(self.tasks, hidden)

    def _layer(self, shared_in: int, out: int | None, outputs: list[int], l: int) -> nn.Module:
        if self.shared[l]:
            return nn.Linear(shared_in, out if out is not None else outputs[0])
        return nn.ModuleList(nn.Linear(shared_in, out if out is not None else o) for o in outputs)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Outputs of task ``task`` for x: (B, inputs) → (B, outputs[task])."""
        z = F.one_hot(torch.tensor(task), self.tasks).to(x).expand(len(x), -1)  # zᵢ: (B, T)
        h = torch.cat([x, z], 1) if self.condition == "concat" else x
        for l, layer in enumerate(self.layers):
            h = (layer if self.shared[l] else layer[task])(h)
            if l < 2:
                h = F.relu(h)
            if l == 0 and self.condition == "gating":
                h = h * torch.sigmoid(self.gate(z))  # multiplicative gating by zᵢ
        return h

    def last_shared_weight(self) -> nn.Parameter:
        """W, the weight matrix of the last shared layer (where GradNorm measures Gᵢ)."""
        shared = [layer for l, layer in enumerate(self.layers) if self.shared[l]]
        if not shared:
            raise ValueError("this network shares no layer, so GradNorm has no W to measure at")
        return shared[-1].weight


def soft_tie(model: MultiTaskMLP) -> torch.Tensor:
    """Soft sharing: Σ over private layers of Σᵢ ‖θᵢ − θ̄‖², θ̄ the mean of the T copies.

    Added to the objective with a strength λ, it pulls independent networks towards each other
    (λ = 0: independent; λ → ∞: one shared network).
    """
    total = torch.zeros(())
    for l, layer in enumerate(model.layers):
        if model.shared[l]:
            continue
        for copies in zip(*(m.parameters() for m in layer)):
            if len({c.shape for c in copies}) != 1:
                continue  # heads of different sizes cannot be tied
            stacked = torch.stack(copies)  # (T, *shape)
            total = total + (stacked - stacked.mean(0)).pow(2).sum()
    return total


# ---------------------------------------------------------------------------- weighting
def weighted_loss(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The multi-task objective Σᵢ wᵢ ℒᵢ; losses and weights of shape (T,)."""
    if losses.shape != weights.shape:
        raise ValueError(f"one weight per task: losses {tuple(losses.shape)}, "
                         f"weights {tuple(weights.shape)}")
    return (weights * losses).sum()


class UncertaintyWeighting(nn.Module):
    """Task weights from learned homoscedastic uncertainty (Kendall, Gal & Cipolla 2018).

    Each task has a learnable sᵢ = log σᵢ² (initially 0); the objective is

        Σᵢ ½ exp(−sᵢ) ℒᵢ + ½ sᵢ,

    the negative log-likelihood of a Gaussian with variance σᵢ² up to constants. For fixed ℒᵢ
    its minimiser is sᵢ = log ℒᵢ, so a task's effective weight ½ exp(−sᵢ) falls as its loss
    is large: a loss measured in large units cannot drown the others.
    """

    def __init__(self, tasks: int):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(tasks))  # sᵢ = log σᵢ²

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """Σᵢ ½ exp(−sᵢ) ℒᵢ + ½ sᵢ for the task losses ℒ, shape (T,)."""
        if losses.shape != self.log_var.shape:
            raise ValueError(f"one loss per task: expected shape {tuple(self.log_var.shape)}, "
                             f"got {tuple(losses.shape)}")
        return (0.5 * torch.exp(-self.log_var) * losses + 0.5 * self.log_var).sum()

    def weights(self) -> torch.Tensor:
        """The effective weights ½ exp(−sᵢ), shape (T,)."""
        return 0.5 * torch.exp(-self.log_var.detach())


class GradNorm:
    """GradNorm (Chen et al. 2018): learn wᵢ so that the tasks train at similar rates.

    With Gᵢ = ‖∇_W wᵢ ℒᵢ‖ the gradient norm of task i at the last shared weight W, Ḡ their
    mean, and rᵢ = (ℒᵢ(t)/ℒᵢ(0)) / meanⱼ(ℒⱼ(t)/ℒⱼ(0)) a task's relative inverse training rate,
    the weights descend L_grad = Σᵢ |Gᵢ − Ḡ rᵢ^a| (the target held constant) and are then
    renormalised to Σᵢ wᵢ = T. Because Gᵢ = wᵢ ‖∇_W ℒᵢ‖, ∂L_grad/∂wᵢ is closed-form.

    Args:
        tasks: T.
        a: the asymmetry a (1.5 in the paper; larger pulls harder towards equal rates).
        lr: Adam's step size for the weights.
    """

    def __init__(self, tasks: int, a: float = 1.5, lr: float = 0.025):
        self.w = torch.ones(tasks, requires_grad=True)
        self.a = a
        self.optimizer = adam([self.w], lr=lr)  # as in the paper
        self.initial: torch.Tensor | None = None

    def weights(self) -> torch.Tensor:
        return self.w.detach().clone()

    def update(self, losses: torch.Tensor, last_shared: torch.Tensor) -> None:
        """One step on the weights from the task losses (T,) and the last shared weight W."""
        norms = torch.stack([torch.autograd.grad(loss, last_shared, retain_graph=True)[0].norm()
                             for loss in losses])  # ‖∇_W ℒᵢ‖, shape (T,)
        losses = losses.detach()
        if self.initial is None:
            self.initial = losses.clone()
        ratio = losses / self.initial
        r = ratio / ratio.mean()
        w = self.w.detach()
        g = w * norms  # Gᵢ
        target = g.mean() * r ** self.a
        self.w.grad = torch.sign(g - target) * norms  # ∂/∂wᵢ Σⱼ |Gⱼ − target_j|
        self.optimizer.step()
        with torch.no_grad():
            self.w.clamp_(min=1e-3)
            self.w *= len(self.w) / self.w.sum()


def pcgrad(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gradient surgery (PCGrad, Yu et al. 2020): the sum of de-conflicted task gradients.

    For each task i and every other task j, in random order: if gᵢ · gⱼ < 0 (the gradients
    conflict), project gᵢ onto the normal plane of gⱼ,

        gᵢ ← gᵢ − (gᵢ · gⱼ / ‖gⱼ‖²) gⱼ,

    always against the *original* gⱼ. Gradients that do not conflict are left alone.

    Args:
        grads: per-task gradients g₁…g_T, flattened, shape (T, P).
        generator: seeds the order of the other tasks.

    Returns:
        Σᵢ gᵢ after surgery, shape (P,).
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (T, P) flattened per-task gradients, got {tuple(grads.shape)}")
    projected = grads.clone()
    for i in range(len(grads)):
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / grads[j].pow(2).sum().clamp(min=1e-20) * grads[j]
    return projected.sum(0)


def min_norm_weights(grads: torch.Tensor, iters: int = 50) -> torch.Tensor:
    """MGDA's weights (Sener & Koltun 2018): the α on the simplex whose combination of the task
    gradients is shortest,

        α = argmin_{α ≥ 0, Σᵢ αᵢ = 1} ‖Σᵢ αᵢ gᵢ‖².

    If that norm is 0, θ is Pareto-stationary (no direction lowers every ℒᵢ); otherwise
    −Σᵢ αᵢ gᵢ lowers all of them at once. Solved by Frank–Wolfe with exact line search: from α,
    move towards the task t whose gradient has the smallest inner product with the current
    combination (for two tasks one step reaches the optimum).

    Args:
        grads: per-task gradients g₁…g_T, flattened, shape (T, P).

    Returns:
        α, shape (T,), non-negative and summing to 1.
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (T, P) flattened per-task gradients, got {tuple(grads.shape)}")
    M = grads @ grads.T                                   # gᵢ · gⱼ
    alpha = torch.full((len(grads),), 1.0 / len(grads), dtype=grads.dtype)
    for _ in range(iters):
        Ma = M @ alpha
        t = int(Ma.argmin())
        vv, vt, tt = alpha @ Ma, Ma[t], M[t, t]          # ‖v‖², v·g_t, ‖g_t‖² with v = Σ αᵢ gᵢ
        if vv - vt <= 1e-12 * max(float(vv), 1e-30):     # no step towards g_t shortens v
            break
        gamma = ((vv - vt) / (vv - 2 * vt + tt)).clamp(0.0, 1.0)   # min over γ of ‖(1−γ)v + γ g_t‖²
        alpha = (1 - gamma) * alpha
        alpha[t] += gamma
    return alpha


# ---------------------------------------------------------------------------- training
@dataclass
class MultiTaskHistory:
    """What :func:`train_multitask` records.

    Attributes:
        loss: per step, the T task losses ℒᵢ (a list of lists).
        eval_step: the steps at which the test scores were measured.
        score: per evaluation, the T test scores (accuracy or MSE).
        weights: per step, the T weights wᵢ in force.
    """

    loss: list = field(default_factory=list)
    eval_step: list = field(default_factory=list)
    score: list = field(default_factory=list)
    weights: list = field(default_factory=list)

    def curve(self, task: int) -> tuple[list, list]:
        """(steps, test scores) of one task, for a plot."""
        return self.eval_step, [s[task] for s in self.score]


@torch.no_grad()
def evaluate(model: MultiTaskMLP, tasks: list[Task]) -> list[float]:
    """Test score of every task: accuracy (classification) or MSE (regression)."""
    model.eval()
    scores = []
    for i, task in enumerate(tasks):
        out = model(task.test_x, i)
        scores.append((out.argmax(1) == task.test_y).float().mean().item()
                      if task.kind == "classification" else F.mse_loss(out, task.test_y).item())
    model.train()
    return scores


# ---------------------------------------------------------------------------- one step's gradient
# A weighting method turns one step's task losses into the gradient for θ:
#
#     gradient, weights = method(losses, theta, penalty)
#
# losses: ℒ₁…ℒ_T, shape (T,); theta: the parameters θ (a list of tensors, P entries in all);
# penalty: the soft-sharing term λ · soft_tie (a 0-d tensor, constant 0 when there is none).
# gradient: shape (P,), what the optimiser steps along; weights: the wᵢ used, shape (T,).
# Methods that learn their weights (sᵢ, GradNorm's wᵢ) take that step inside the call.


def weighted_gradient(losses: torch.Tensor, weights: torch.Tensor, theta: list[torch.Tensor],
                      penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """∇_θ (Σᵢ wᵢ ℒᵢ + penalty), shape (P,), and the weights w (T,) it used."""
    return flat_grad(weighted_loss(losses, weights) + penalty, theta), weights


def uniform_step(losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform weighting, wᵢ = 1: ∇_θ (Σᵢ ℒᵢ + penalty), shape (P,), and w = 1, shape (T,)."""
    return weighted_gradient(losses, torch.ones(len(losses)), theta, penalty)


class FixedWeightsStep:
    """Fixed weights wᵢ chosen by hand: ∇_θ (Σᵢ wᵢ ℒᵢ + penalty).

    Args:
        weights: w, shape (T,).
    """

    def __init__(self, weights: torch.Tensor):
        self.weights = weights.float()

    def __call__(self, losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return weighted_gradient(losses, self.weights, theta, penalty)


class UncertaintyStep:
    """Uncertainty weighting (:class:`UncertaintyWeighting`): θ descends Σᵢ ½ exp(−sᵢ) ℒᵢ + ½ sᵢ.

    The same objective's gradient in s (T,) moves the sᵢ by one Adam step of size ``lr``; the
    weights reported are the ½ exp(−sᵢ) in force before that step.
    """

    def __init__(self, tasks: int, lr: float):
        self.weighting = UncertaintyWeighting(tasks)
        self.optimizer = adam(self.weighting.parameters(), lr=lr)

    def __call__(self, losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.weighting.log_var
        weights = self.weighting.weights()
        gradient = flat_grad(self.weighting(losses) + penalty, [*theta, s])  # (P + T,)
        set_flat_grad([s], gradient[-len(s):])
        self.optimizer.step()
        return gradient[:-len(s)], weights


class GradNormStep:
    """GradNorm (:class:`GradNorm`): update the wᵢ from the gradient norms at W, then
    ∇_θ (Σᵢ wᵢ ℒᵢ + penalty) with the new wᵢ.

    Args:
        tasks: T.
        last_shared: W, the last shared weight matrix (:meth:`MultiTaskMLP.last_shared_weight`).
    """

    def __init__(self, tasks: int, last_shared: torch.Tensor):
        self.gradnorm, self.last_shared = GradNorm(tasks), last_shared

    def __call__(self, losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.gradnorm.update(losses, self.last_shared)
        return weighted_gradient(losses, self.gradnorm.weights(), theta, penalty)


class PCGradStep:
    """PCGrad: :func:`pcgrad` of the per-task gradients ∇_θ ℒᵢ (T, P), plus ∇_θ penalty; wᵢ = 1.

    Args:
        generator: draws the order of the other tasks (the training loop's, so one seed
            fixes the run).
    """

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grads = torch.stack([flat_grad(loss, theta) for loss in losses])  # (T, P)
        return pcgrad(grads, self.generator) + flat_grad(penalty, theta), torch.ones(len(losses))


class MGDAStep:
    """MGDA: the task gradients combined with :func:`min_norm_weights`, scaled to sum to T like
    the other methods' weights, plus ∇_θ penalty; w = T·α."""

    def __call__(self, losses: torch.Tensor, theta: list[torch.Tensor],
                 penalty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grads = torch.stack([flat_grad(loss, theta) for loss in losses])  # (T, P)
        weights = len(losses) * min_norm_weights(grads)
        return weights @ grads + flat_grad(penalty, theta), weights


def weighting_method(weighting, model: MultiTaskMLP, tasks: int,
                     generator: torch.Generator | None = None, weight_lr: float = 0.02):
    """The step-gradient function for a ``weighting=`` value of :func:`train_multitask`.

    Args:
        weighting: ``"uniform"``, ``"uncertainty"``, ``"gradnorm"``, ``"mgda"``, ``"pcgrad"``
            or a tensor of T fixed weights.
        model: the network (GradNorm measures at its last shared weight).
        tasks: T.
        generator: PCGrad's source of task orders.
        weight_lr: Adam's step size for the sᵢ of uncertainty weighting.
    """
    if isinstance(weighting, torch.Tensor):
        return FixedWeightsStep(weighting)
    if weighting == "uniform":
        return uniform_step
    if weighting == "uncertainty":  # sᵢ = log σᵢ² must travel ~ln ℒᵢ within the run
        return UncertaintyStep(tasks, weight_lr)
    if weighting == "gradnorm":
        return GradNormStep(tasks, model.last_shared_weight())
    if weighting == "mgda":
        return MGDAStep()
    if weighting == "pcgrad":
        return PCGradStep(generator)
    raise ValueError(f"weighting must be 'uniform', 'uncertainty', 'gradnorm', 'mgda', 'pcgrad' or a "
                     f"tensor of T weights, not {weighting!r}")


def batch_losses(model: MultiTaskMLP, tasks: list[Task], batch_size: int,
                 generator: torch.Generator) -> torch.Tensor:
    """ℒᵢ of f_θ on one random batch of each task, shape (T,)."""
    losses = []
    for i, task in enumerate(tasks):
        idx = torch.randint(len(task.train_x), (batch_size,), generator=generator)
        losses.append(task.loss(model(task.train_x[idx], i), task.train_y[idx]))
    return torch.stack(losses)


def train_multitask(model: MultiTaskMLP, tasks: list[Task], steps: int,
                    weighting="uniform", tie: float = 0.0, batch_size: int = 32,
                    lr: float = 1e-3, weight_lr: float = 0.02, eval_every: int = 0, seed: int = 0,
                    progress: bool = True, desc: str = "multi-task") -> MultiTaskHistory:
    """Train f_θ on all tasks at once with Adam: each step draws a batch from every task.

    Args:
        model: a :class:`MultiTaskMLP` with one output per task in ``tasks``.
        tasks: 𝒯₁…𝒯_T.
        steps: optimiser steps.
        weighting: how the ℒᵢ are combined (see :func:`weighting_method`) —
            ``"uniform"`` (wᵢ = 1), a tensor of fixed weights (T,), ``"uncertainty"``
            (:class:`UncertaintyWeighting`), ``"gradnorm"`` (:class:`GradNorm`) or
            ``"pcgrad"`` (uniform weights, per-task gradients de-conflicted by :func:`pcgrad`).
        weight_lr: Adam's step size for the log-variances sᵢ of uncertainty weighting.
        tie: λ of the soft-sharing penalty λ · :func:`soft_tie` (0: none).
        eval_every: record every task's test score every that many steps (0: only at the end).
        seed: seeds the batches (and PCGrad's order).
    """
    theta = list(model.parameters())
    g = seeding.generator(seed)
    method = weighting_method(weighting, model, len(tasks), g, weight_lr)
    optimizer = adam(theta, lr=lr)
    history = MultiTaskHistory()
    model.train()
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        losses = batch_losses(model, tasks, batch_size, g)  # (T,)
        penalty = tie * soft_tie(model) if tie else torch.zeros(())
        gradient, weights = method(losses, theta, penalty)  # (P,), (T,)
        set_flat_grad(theta, gradient)
        optimizer.step()
        history.loss.append(losses.detach().tolist())
        history.weights.append(weights.tolist())
        if (eval_every and (step + 1) % eval_every == 0) or step + 1 == steps:
            history.eval_step.append(step + 1)
            history.score.append(evaluate(model, tasks))
    model.eval()
    return history


# ---------------------------------------------------------------------------- experiments
ARCHITECTURES = {
    "one network, no zᵢ": dict(shared=(True, True, True)),
    "concatenate zᵢ": dict(shared=(True, True, True), condition="concat"),
    "gate by zᵢ": dict(shared=(True, True, True), condition="gating"),
    "hard sharing (task heads)": dict(shared=(True, True, False)),
    "share less (private 1st layer)": dict(shared=(False, True, False)),
    "soft sharing (L2 tie)": dict(shared=(False, False, False), tie=1e-2),
    "independent networks": dict(shared=(False, False, False)),
}
"""The conditioning choices of notebook 02, from most shared to least: keyword arguments of
:func:`run` (``shared`` and ``condition`` for :class:`MultiTaskMLP`, ``tie`` = λ)."""


def run(tasks: list[Task], hidden: int, steps: int, shared=(True, True, False),
        condition: str | None = None, seed: int = 0,
        **train_kw) -> tuple[MultiTaskMLP, MultiTaskHistory]:
    """Build a seeded :class:`MultiTaskMLP` for ``tasks`` and train it; return it and its history.

    ``train_kw`` go to :func:`train_multitask` (``weighting``, ``tie``, ``eval_every``, …).
    """
    torch.manual_seed(seeding.seed(seed))
    model = MultiTaskMLP(tasks[0].train_x.shape[1], hidden, [t.outputs for t in tasks],
                         shared, condition)
    train_kw.setdefault("progress", False)
    return model, train_multitask(model, tasks, steps, seed=seed, **train_kw)


def mean_accuracy(history: MultiTaskHistory, tasks: list[Task], which=None) -> float:
    """Mean final test accuracy over the classification tasks (or the task indices ``which``)."""
    which = which if which is not None else [i for i, t in enumerate(tasks)
                                             if t.kind == "classification"]
    return sum(history.score[-1][i] for i in which) / len(which)
