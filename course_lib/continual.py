"""Continual learning: given 𝒯₁…𝒯ₙ₋₁, solve 𝒯ₙ quickly without forgetting the earlier tasks.

The learner sees the tasks one after the other, as a non-i.i.d. stream, with bounded memory
and compute. After training on task i it is tested on every task j, which fills the accuracy
matrix R (R[i, j], shape (T, T)); ACC, BWT and FWT summarise it (Lopez-Paz & Ranzato 2017).

This module holds the pieces of ``notebooks/07_continual_learning.ipynb`` and the
``continual`` assignment:

- task streams (:class:`Stream`): permuted MNIST (domain-incremental) and split MNIST in its
  task-incremental (a head mask: only the task's 2 logits) and class-incremental (all 10
  logits, no task id) forms;
- a reservoir-sampled replay memory (:class:`ReservoirBuffer`, Vitter's algorithm R), or one
  reservoir per task with a hard cap (:class:`TaskReservoirs`);
- the diagonal Fisher (:func:`diagonal_fisher`), the EWC penalty (:func:`ewc_penalty`,
  Kirkpatrick et al. 2017) and the plain L2 tie (:func:`l2_penalty`);
- the metrics of R (:func:`average_accuracy`, :func:`backward_transfer`,
  :func:`forward_transfer`, :func:`forgetting`);
- La-MAML (:func:`lookahead`, :func:`lamaml_update`, :class:`LaMAML`; Gupta et al. 2020) and
  progressive networks (:class:`ProgressiveNet`; Rusu et al. 2016);
- the methods as small classes with hooks (:class:`Naive` and its subclasses) driven by one
  loop, :func:`train_sequentially`;
- the gradient alignment cos(∇ℒ_a, ∇ℒ_b) of two tasks' losses (:func:`gradient_cosine`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from .data import ImageSet
from .maml import inner_loop
from .models import MLP

Params = dict[str, torch.Tensor]
SCENARIOS = ("domain", "task", "class")


# ---------------------------------------------------------------------------- task streams
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
    g = torch.Generator().manual_seed(seed)
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
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(5):
        classes = (2 * i, 2 * i + 1)
        x, y = _subset(train, 2 * (per_class + val_per_class), g, classes)
        x_test, y_test = _subset(test, 2 * test_per_class, g, classes)
        n = 2 * per_class
        out.append(ContinualTask(f"digits {classes[0]}/{classes[1]}", x[:n], y[:n], x[n:], y[n:],
                                 x_test, y_test, classes))
    return Stream(out, scenario)


# ---------------------------------------------------------------------------- replay memory
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
        self.g = torch.Generator().manual_seed(seed)
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
        self.g = torch.Generator().manual_seed(seed)

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


# ---------------------------------------------------------------------------- EWC
def diagonal_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    batch_size: int = 256) -> Params:
    """The diagonal of the Fisher information at θ: F_k = E[(∂ log p(y|x; θ) / ∂θ_k)²].

    The expectation runs over the n inputs x and labels y:

    - ``y`` given: the **empirical Fisher**, with the data's own labels;
    - ``y=None``: the **sampled-label Fisher**, with y ~ p(y|x; θ) drawn from the model
      (an unbiased one-sample estimate of the true Fisher; seeded by ``generator``).

    Gradients are per example (``torch.func.vmap`` over ``grad``), squared, then averaged —
    not the square of a batch gradient. Only parameters with ``requires_grad`` get an entry.

    Args:
        model: f_θ; x (n, …) → logits (n, C).
        x: inputs, shape (n, …). y: labels, shape (n,), or None.
        mask: logits a task may use, shape (C,) bool (the task-incremental head), or None.

    Returns:
        F as ``name → tensor shaped like θ[name]``.
    """
    theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if len(x) == 0:
        raise ValueError("the Fisher is an average over examples: x holds none")
    if y is not None and len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if y is None:
        with torch.no_grad():
            logits = model(x)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            y = torch.multinomial(logits.softmax(1), 1, generator=generator)[:, 0]

    def log_p(params, xi, yi):  # log p(yᵢ | xᵢ; θ) of one example
        logits = functional_call(model, params, (xi[None],))[0]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return -F.cross_entropy(logits[None], yi[None])

    per_example = vmap(grad(log_p), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(t) for n, t in theta.items()}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        for n, g in per_example(theta, xb, yb).items():  # g: (b, *shape)
            fisher[n] += g.pow(2).sum(0)
    return {n: f / len(x) for n, f in fisher.items()}


def ewc_penalty(theta: Params, theta_star: Params, fisher: Params, lam: float) -> torch.Tensor:
    """The EWC penalty (λ/2) Σ_k F_k (θ_k − θ*_k)² (Kirkpatrick et al. 2017).

    A Laplace approximation of the old tasks' posterior around their solution θ*: weights that
    mattered to the old tasks (large F_k) are expensive to move, the others are free.

    Args:
        theta: θ, ``name → tensor``; theta_star: θ* (same names and shapes), a constant.
        fisher: F (same names and shapes). lam: λ ≥ 0.
    """
    if set(theta_star) != set(fisher) or not set(theta_star) <= set(theta):
        raise ValueError(f"θ*, F and θ must name the same parameters: θ* has {sorted(theta_star)}, "
                         f"F has {sorted(fisher)}")
    total = torch.zeros(())
    for n, anchor in theta_star.items():
        if theta[n].shape != anchor.shape or fisher[n].shape != anchor.shape:
            raise ValueError(f"shape mismatch at {n!r}: θ {tuple(theta[n].shape)}, "
                             f"θ* {tuple(anchor.shape)}, F {tuple(fisher[n].shape)}")
        # θ* and F are constants of the penalty: only θ receives a gradient
        total = total + (fisher[n].detach() * (theta[n] - anchor.detach()).pow(2)).sum()
    return 0.5 * lam * total


def l2_penalty(theta: Params, theta_star: Params, lam: float) -> torch.Tensor:
    """The plain L2 tie (λ/2) Σ_k (θ_k − θ*_k)²: EWC with F_k = 1 for every weight."""
    return ewc_penalty(theta, theta_star, {n: torch.ones_like(t) for n, t in theta_star.items()},
                       lam)


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


# ---------------------------------------------------------------------------- gradient alignment
def gradient_cosine(params: list[torch.Tensor], loss_a: torch.Tensor,
                    loss_b: torch.Tensor) -> float:
    """cos(∇_θ ℒ_a, ∇_θ ℒ_b) over the parameters ``params``: > 0 when a step on ℒ_a also lowers
    ℒ_b (alignment, transfer), < 0 when it raises it (interference, forgetting); 0 when
    either gradient is zero."""
    def flat(loss):
        gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(gs, params)])
    g_a, g_b = flat(loss_a), flat(loss_b)
    norm = g_a.norm() * g_b.norm()
    return 0.0 if norm == 0 else (g_a @ g_b / norm).item()


# ---------------------------------------------------------------------------- progressive nets
class ProgressiveNet(nn.Module):
    """Progressive networks (Rusu et al. 2016), small form: one MLP column per task.

    Column k has hidden layers h_l^k and a head; from its second layer on, each layer also
    reads the previous layer of every earlier column through lateral weights U_l^{k:j}:

        h_l^k = ReLU(W_l^k h_{l−1}^k + Σ_{j<k} U_l^{k:j} h_{l−1}^j).

    :meth:`add_column` freezes every existing column, so old tasks cannot be forgotten by
    construction; the price is parameters that grow with T (quadratically, through U).

    Args:
        inputs: input size (784). hidden: widths of the hidden layers, e.g. (64, 64).
        outputs: logits of each column's head.
    """

    def __init__(self, inputs: int = 784, hidden: tuple[int, ...] = (64, 64), outputs: int = 10):
        super().__init__()
        self.sizes = (inputs, *hidden, outputs)
        self.columns = nn.ModuleList()   # columns[k][l]: W_l^k
        self.laterals = nn.ModuleList()  # laterals[k][l−1][j]: U_l^{k:j}, l ≥ 1
        self.add_column()

    def add_column(self) -> None:
        """Freeze the existing columns and add a fresh one with laterals from all of them."""
        for p in self.parameters():
            p.requires_grad_(False)
        k = len(self.columns)
        s = self.sizes
        self.columns.append(nn.ModuleList(nn.Linear(a, b) for a, b in zip(s[:-1], s[1:])))
        self.laterals.append(nn.ModuleList(
            nn.ModuleList(nn.Linear(s[l], s[l + 1], bias=False) for _ in range(k))
            for l in range(1, len(s) - 1)))

    def forward(self, x: torch.Tensor, task: int | None = None) -> torch.Tensor:
        """Logits of column ``task`` (default: the newest): (B, inputs) → (B, outputs)."""
        task = len(self.columns) - 1 if task is None else task
        if not 0 <= task < len(self.columns):
            raise ValueError(f"no column {task}: the network has {len(self.columns)}")
        h = [x.flatten(1)] * (task + 1)  # h[j]: the current layer's input in column j
        layers = len(self.sizes) - 1
        for l in range(layers):
            new = []
            for k in range(task + 1):
                z = self.columns[k][l](h[k])
                if l > 0:
                    z = z + sum(self.laterals[k][l - 1][j](h[j]) for j in range(k))
                new.append(F.relu(z) if l < layers - 1 else z)
            h = new
        return h[task]


# ---------------------------------------------------------------------------- methods
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
        self.optimizer = (torch.optim.Adam(params, lr=self.lr) if self.optimizer_name == "adam"
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
                               torch.Generator().manual_seed(task))

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


# ---------------------------------------------------------------------------- La-MAML
def lookahead(model: nn.Module, theta: Params, alpha: Params, x: torch.Tensor, y: torch.Tensor,
              inner_steps: int, loss_fn, first_order: bool = False) -> Params:
    """La-MAML's look-ahead: split the incoming batch into ``inner_steps`` chunks and take one
    SGD step per chunk, θ_{k+1} = θ_k − max(α, 0) ⊙ ∇ℒ(θ_k, chunk_k), from θ_0 = θ.

    Each step is :func:`course_lib.maml.inner_loop` with per-parameter rates (as in Meta-SGD),
    so the result is differentiable in θ and α.

    Args:
        theta: θ, ``name → tensor``. alpha: α, the same names and shapes.
        x: incoming inputs, shape (B, …); y: labels (B,); B ≥ inner_steps.
        loss_fn: ``(logits, y) → loss``.

    Returns:
        the looked-ahead weights θ_k, a dict with θ's keys.
    """
    if inner_steps < 1 or inner_steps > len(x):
        raise ValueError(f"inner_steps must be in 1…{len(x)} (the batch size), got {inner_steps}")
    rate = {n: a.clamp(min=0) for n, a in alpha.items()}  # max(α, 0)
    phi = theta
    for xc, yc in zip(x.tensor_split(inner_steps), y.tensor_split(inner_steps)):
        phi = inner_loop(model, phi, xc, yc, rate, steps=1, first_order=first_order,
                         loss_fn=loss_fn)
    return phi


def _clip(grads, max_norm: float) -> list[torch.Tensor]:
    """The tensors scaled together so that their joint norm is at most ``max_norm``."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [g * scale for g in grads]


@torch.no_grad()
def lamaml_update(theta: Params, alpha: Params, grad_theta: Params, grad_alpha: Params,
                  alpha_lr: float) -> None:
    """La-MAML's outer step, in place: first α ← α − η ∇_α ℒ_meta, then
    θ ← θ − max(α, 0) ⊙ ∇_θ ℒ_meta with the new α. A parameter whose α is ≤ 0 does not move.

    Args:
        theta, alpha: θ and α (``name → tensor``, updated in place).
        grad_theta, grad_alpha: ∇_θ ℒ_meta and ∇_α ℒ_meta, the same names and shapes.
        alpha_lr: η, the learning rate of the learning rates.
    """
    for n in theta:
        alpha[n] -= alpha_lr * grad_alpha[n]
        theta[n] -= alpha[n].clamp(min=0) * grad_theta[n]


class LaMAML(Replay):
    """La-MAML (Gupta, Yadav & Paull 2020): look-ahead meta-learning with replay.

    For every incoming batch b: look ahead with ``inner_steps`` SGD steps on b at the learned
    per-parameter rates α (:func:`lookahead`); evaluate the meta-loss ℒ_meta on b plus a batch
    from the reservoir memory at the looked-ahead weights; then :func:`lamaml_update`. The
    meta-gradient rewards steps on the new data that also lower the loss on the old data, the
    gradient-alignment objective of MER, at a fraction of its cost.

    Args:
        alpha_init: initial α of every parameter. alpha_lr: η.
        inner_steps: look-ahead steps per incoming batch.
        first_order: treat the inner gradients as constants (∇_α still flows).
        clip: bound the norms of ∇_θ ℒ_meta and ∇_α ℒ_meta (None: no clipping).
        per_task, replay_batch: the replay memory, as in :class:`Replay`.
    """

    name = "La-MAML"

    def __init__(self, alpha_init: float = 0.1, alpha_lr: float = 0.1, inner_steps: int = 4,
                 first_order: bool = False, clip: float | None = 2.0, **kw):
        super().__init__(**kw)
        self.clip = clip
        self.alpha_init, self.alpha_lr = alpha_init, alpha_lr
        self.inner_steps, self.first_order = inner_steps, first_order
        self.alpha: Params | None = None

    def begin_task(self, model, task, stream):
        super().begin_task(model, task, stream)
        if self.alpha is None:
            self.alpha = {n: torch.full_like(p, self.alpha_init).requires_grad_()
                          for n, p in model.named_parameters()}

    def update(self, model, x, y, ids, task, stream):
        theta = dict(model.named_parameters())
        phi = lookahead(model, theta, self.alpha, x, y, self.inner_steps,
                        lambda logits, yy: stream.loss(logits, yy, ids[0]), self.first_order)
        mx, my, mids = x, y, ids
        if len(self.memory):
            px, py, pids = self.memory.sample(self.replay_batch or len(y))
            mx, my, mids = torch.cat([x, px]), torch.cat([y, py]), torch.cat([ids, pids])
        meta = stream.loss(functional_call(model, phi, (mx,)), my, mids)
        names = list(theta)
        grads = torch.autograd.grad(meta, [theta[n] for n in names] + [self.alpha[n] for n in names])
        grad_theta, grad_alpha = grads[:len(names)], grads[len(names):]
        if self.clip:  # as the authors' code does: bound ‖∇_θ‖ and ‖∇_α‖ (separately)
            grad_theta, grad_alpha = _clip(grad_theta, self.clip), _clip(grad_alpha, self.clip)
        lamaml_update(theta, self.alpha, dict(zip(names, grad_theta)),
                      dict(zip(names, grad_alpha)), self.alpha_lr)
        self.memory.add(x, y, ids)
        return meta.item()


# ---------------------------------------------------------------------------- the loop
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
    torch.manual_seed(seed)
    model = method.make_model(stream)
    g = torch.Generator().manual_seed(seed)
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


def last_task_only(R) -> float:
    """The ACC of a model that is right on the last task and wrong on all others:
    R[T−1, T−1] / T — what class-incremental naive fine-tuning tends to."""
    R = _check_R(R)
    return (R[-1, -1] / len(R)).item()

