"""The Bayesian view of meta-learning: a hierarchical Gaussian model, its posterior and entropy,
empirical Bayes, and MAML as implicit MAP inference (CS330 lecture 3, "How would Bayes view it?").

The model, for tasks i = 1…n with K data points each::

    θ ~ 𝒩(μ₀, s₀²)              shared latent information (a hyperprior, for the sampling demos)
    φᵢ | θ ~ 𝒩(θ, τ²)            task parameters
    yᵢⱼ | φᵢ ~ 𝒩(φᵢ, σ²)         data, j = 1…K: the training set 𝒟ᵗʳᵢ of task i

Given θ the φᵢ are independent and H(p(φᵢ | θ)) < H(p(φᵢ)); a new task's φ is inferred from
its K points with the prior 𝒩(θ, τ²) (:func:`posterior`); θ and τ² are learned from many tasks
(:func:`empirical_bayes`). On linear-Gaussian regression, k gradient steps from θ with step α are
MAP inference under a Gaussian prior centred at θ (Grant et al. 2018, "Recasting gradient-based
meta-learning as hierarchical Bayes"): :func:`gradient_steps` and :func:`implicit_prior_map`.

Everything here is float64 and pure. Used by ``notebooks/03_bayesian_view.ipynb`` and as the
reference of ``solutions/bayes/bayes.ipynb``.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle

from .plots import finish
from .seeding import as_generator

DTYPE = torch.float64


# ---------------------------------------------------------------------------- checks
def _tensor(value, name: str) -> torch.Tensor:
    """``value`` as a float64 tensor, or a ValueError naming the argument."""
    try:
        return torch.as_tensor(value, dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} should be a number or a tensor of numbers, got {value!r}") from err


def _variance(value, name: str, positive: bool = False) -> torch.Tensor:
    """A variance (τ², σ², s₀² …) as a tensor: ≥ 0 (> 0 if ``positive``), else a ValueError."""
    v = _tensor(value, name)
    bad = (v <= 0) if positive else (v < 0)
    if torch.isnan(v).any() or bad.any():
        need = "> 0" if positive else "≥ 0"
        raise ValueError(f"{name} is a variance and must be {need}, got {v.tolist()}")
    return v


def _count(value, name: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} should be an int ≥ {minimum}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- sampling
def sample_theta(worlds: int, mu0: float, s02: float, generator) -> torch.Tensor:
    """θ ~ 𝒩(μ₀, s₀²), one per "world" (a meta-training distribution); shape (worlds,)."""
    g, s02 = as_generator(generator), _variance(s02, "s02")
    return mu0 + s02.sqrt() * torch.randn(_count(worlds, "worlds", 1), generator=g, dtype=DTYPE)


def sample_tasks(theta, tau2: float, sigma2: float, tasks: int, K: int, generator):
    """Tasks of the hierarchical model: φᵢ | θ ~ 𝒩(θ, τ²), then yᵢⱼ | φᵢ ~ 𝒩(φᵢ, σ²).

    Args:
        theta: θ, a float or a tensor of shape (...,) (e.g. one θ per world).
        tau2: τ² ≥ 0, the spread of the task parameters around θ.
        sigma2: σ² ≥ 0, the noise of each data point.
        tasks: n, tasks per θ. K: data points per task (K = 0 gives no data).
        generator: a ``torch.Generator`` or an int seed.

    Returns:
        phi of shape (..., n) and y of shape (..., n, K).
    """
    g, theta = as_generator(generator), _tensor(theta, "theta")
    tau, sigma = _variance(tau2, "tau2").sqrt(), _variance(sigma2, "sigma2").sqrt()
    n, K = _count(tasks, "tasks", 1), _count(K, "K")
    phi = theta[..., None] + tau * torch.randn(*theta.shape, n, generator=g, dtype=DTYPE)
    y = phi[..., None] + sigma * torch.randn(*phi.shape, K, generator=g, dtype=DTYPE)
    return phi, y  # (..., n), (..., n, K)


# ---------------------------------------------------------------------------- inference
def posterior(y, theta, tau2, sigma2):
    """Mean and variance of p(φ | 𝒟ᵗʳ, θ) for one task or a batch of tasks.

    With prior φ ~ 𝒩(θ, τ²) and K points yⱼ ~ 𝒩(φ, σ²) the posterior is Gaussian,
    v = 1 / (1/τ² + K/σ²) and m = v (θ/τ² + Σⱼ yⱼ/σ²), written here as
    v = τ²σ² / (σ² + Kτ²), m = (σ²θ + τ² Σⱼ yⱼ) / (σ² + Kτ²) so that τ² = 0 (every task is θ)
    works. K = 0 returns the prior (θ, τ²).

    Args:
        y: 𝒟ᵗʳ, shape (..., K): the last axis holds one task's K points.
        theta: θ, a float or a tensor broadcastable to y.shape[:-1].
        tau2: τ² ≥ 0, float or tensor broadcastable to y.shape[:-1].
        sigma2: σ² > 0, float or tensor broadcastable to y.shape[:-1].

    Returns:
        (m, v), each of shape y.shape[:-1] broadcast with the parameters.
    """
    y = _tensor(y, "y")
    if y.dim() < 1:
        raise ValueError("y should have shape (..., K) with the K data points of a task on the "
                         f"last axis, got a scalar {y.item()}")
    theta = _tensor(theta, "theta")
    tau2, sigma2 = _variance(tau2, "tau2"), _variance(sigma2, "sigma2", positive=True)
    K = y.shape[-1]
    total = sigma2 + K * tau2
    mean, variance = (sigma2 * theta + tau2 * y.sum(-1)) / total, tau2 * sigma2 / total
    return tuple(torch.broadcast_tensors(mean, variance))


def gaussian_entropy(variance) -> torch.Tensor:
    """Differential entropy H = ½ ln(2πe v) of 𝒩(m, v) in nats, elementwise over ``variance``.

    v = 0 (a point mass: a single possible value) gives −∞. Shape: that of ``variance``.
    """
    v = _variance(variance, "variance")
    return 0.5 * torch.log(2 * math.pi * math.e * v)


def gaussian_entropy_matrix(covariance) -> torch.Tensor:
    """Differential entropy ½ ln det(2πe Σ) of a d-dimensional Gaussian; Σ: (..., d, d) → (...)."""
    sigma = _tensor(covariance, "covariance")
    if sigma.dim() < 2 or sigma.shape[-1] != sigma.shape[-2]:
        raise ValueError(f"covariance should be a square matrix (..., d, d), got shape {tuple(sigma.shape)}")
    if not torch.allclose(sigma, sigma.mT):
        raise ValueError("covariance should be symmetric")
    eigenvalues = torch.linalg.eigvalsh(sigma)
    if (eigenvalues < 0).any():
        raise ValueError(f"covariance should be positive semi-definite, has eigenvalues {eigenvalues.tolist()}")
    d = sigma.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.log(eigenvalues).sum(-1))


def phi_correlation(s02, tau2) -> torch.Tensor:
    """corr(φᵢ, φⱼ) = s₀² / (s₀² + τ²) for two tasks i ≠ j once θ ~ 𝒩(μ₀, s₀²) is integrated out."""
    s02, tau2 = _variance(s02, "s02"), _variance(tau2, "tau2")
    return s02 / (s02 + tau2)


def entropy_gap(s02, tau2) -> torch.Tensor:
    """H(p(φᵢ)) − H(p(φᵢ | θ)) = ½ ln((s₀² + τ²)/τ²) nats: what knowing θ tells about φᵢ."""
    s02, tau2 = _variance(s02, "s02"), _variance(tau2, "tau2", positive=True)
    return gaussian_entropy(s02 + tau2) - gaussian_entropy(tau2)


def gaussian_log_density(x, mean, variance) -> torch.Tensor:
    """ln 𝒩(x; m, v), elementwise (broadcast)."""
    v = _variance(variance, "variance", positive=True)
    x, mean = _tensor(x, "x"), _tensor(mean, "mean")
    return -0.5 * (torch.log(2 * math.pi * v) + (x - mean) ** 2 / v)


def within_task_variance(y) -> float:
    """σ̂² = Σᵢⱼ (yᵢⱼ − ȳᵢ)² / (n (K − 1)), the pooled within-task variance; y: (n, K), K ≥ 2."""
    y = _tasks_by_points(y)
    n, K = y.shape
    if K < 2:
        raise ValueError(f"estimating σ² from the data needs K ≥ 2 points per task, got K = {K}")
    return float(((y - y.mean(1, keepdim=True)) ** 2).sum() / (n * (K - 1)))


def _tasks_by_points(y) -> torch.Tensor:
    y = _tensor(y, "y")
    if y.dim() != 2 or y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError(f"y should have shape (tasks, K) with tasks ≥ 1 and K ≥ 1, got {tuple(y.shape)}")
    return y


def empirical_bayes(y, sigma2=None) -> tuple[float, float]:
    """θ̂ and τ̂² of the prior 𝒩(θ, τ²), learned from n meta-training tasks by maximum marginal likelihood.

    Integrating φᵢ out, each task mean ȳᵢ ~ 𝒩(θ, τ² + σ²/K) independently, and the deviations
    yᵢⱼ − ȳᵢ carry no information about θ or τ². So θ̂ = (1/n) Σᵢ ȳᵢ and
    τ̂² = max(0, (1/n) Σᵢ (ȳᵢ − θ̂)² − σ²/K). The clip at 0 is part of the maximum: when the task
    means scatter less than the noise alone predicts (σ²/K), the likelihood is largest at τ² = 0.

    Args:
        y: 𝒟ᵗʳ of the meta-training tasks, shape (n, K): row i is task i's K points.
        sigma2: σ² > 0; None estimates it by :func:`within_task_variance` (needs K ≥ 2; the
            result is then the maximum-likelihood estimate unless τ̂² is clipped).

    Returns:
        (θ̂, τ̂²) as floats, τ̂² ≥ 0.
    """
    y = _tasks_by_points(y)
    n, K = y.shape
    if sigma2 is None:
        sigma2 = within_task_variance(y)
    sigma2 = float(_variance(sigma2, "sigma2", positive=True))
    means = y.mean(1)  # ȳᵢ, (n,)
    theta = means.mean()
    spread = ((means - theta) ** 2).mean()  # the MLE of Var(ȳᵢ) = τ² + σ²/K
    return float(theta), max(0.0, float(spread) - sigma2 / K)


def marginal_log_likelihood(y, theta, tau2, sigma2) -> torch.Tensor:
    """ln p(y | θ, τ², σ²) with every φᵢ integrated out, up to terms free of θ and τ²; y: (n, K).

    Σᵢ ln 𝒩(ȳᵢ; θ, τ² + σ²/K): the function :func:`empirical_bayes` maximises.
    """
    y = _tasks_by_points(y)
    sigma2 = _variance(sigma2, "sigma2", positive=True)
    return gaussian_log_density(y.mean(1), theta, _variance(tau2, "tau2") + sigma2 / y.shape[1]).sum()


def linear_posterior(features, y, prior_mean, prior_cov, sigma2):
    """Mean and covariance of p(φ | 𝒟ᵗʳ) for y = Φ φ + ε, ε ~ 𝒩(0, σ² I), prior φ ~ 𝒩(θ, Σ₀).

    Precision form Σ = (Σ₀⁻¹ + ΦᵀΦ/σ²)⁻¹, written as Σ₀ − Σ₀Φᵀ(ΦΣ₀Φᵀ + σ²I)⁻¹ΦΣ₀ so that a
    singular Σ₀ (a prior that rules directions out) and K = 0 points both work. Batched: leading
    axes of ``features`` and ``y`` are tasks, each with its own K points and the same prior.

    Args:
        features: Φ, shape (..., K, d): the d basis functions at each task's K inputs.
        y: targets, shape (..., K).
        prior_mean: θ, shape (d,). prior_cov: Σ₀, shape (d, d). sigma2: σ² > 0.

    Returns:
        (mean (..., d), covariance (..., d, d)).
    """
    Phi, y = _tensor(features, "features"), _tensor(y, "y")
    m0, S0 = _tensor(prior_mean, "prior_mean"), _tensor(prior_cov, "prior_cov")
    sigma2 = _variance(sigma2, "sigma2", positive=True)
    if Phi.dim() < 2 or y.shape != Phi.shape[:-1]:
        raise ValueError(f"features should be (..., K, d) and y (..., K), got {tuple(Phi.shape)} "
                         f"and {tuple(y.shape)}")
    d = Phi.shape[-1]
    if m0.shape != (d,) or S0.shape != (d, d):
        raise ValueError(f"with d = {d} features prior_mean should be ({d},) and prior_cov ({d}, {d}), "
                         f"got {tuple(m0.shape)} and {tuple(S0.shape)}")
    gram = Phi @ S0 @ Phi.mT + sigma2 * torch.eye(y.shape[-1], dtype=DTYPE)  # (..., K, K)
    gain = torch.linalg.solve(gram, Phi @ S0).mT  # Σ₀Φᵀ(ΦΣ₀Φᵀ + σ²I)⁻¹, (..., d, K)
    residual = y - Phi @ m0  # (..., K)
    return m0 + (gain @ residual[..., None])[..., 0], S0 - gain @ Phi @ S0


# ---------------------------------------------------------------------------- MAML ↔ hierarchical Bayes
def _regression(X, y, theta):
    X, y, theta = _tensor(X, "X"), _tensor(y, "y"), _tensor(theta, "theta")
    if X.dim() != 2:
        raise ValueError(f"X should have shape (K, d), got {tuple(X.shape)}")
    K, d = X.shape
    if y.shape != (K,):
        raise ValueError(f"y should have shape (K,) = ({K},) to match X, got {tuple(y.shape)}")
    if theta.shape != (d,):
        raise ValueError(f"theta should have shape (d,) = ({d},) to match X, got {tuple(theta.shape)}")
    return X, y, theta


def gradient_steps(X, y, theta, alpha: float, steps: int) -> torch.Tensor:
    """MAML's inner loop on linear regression: φ ← φ − α ∇ℒ(φ) from φ = θ, ``steps`` times.

    ℒ(φ) = ½ ‖Xφ − y‖², the negative log-likelihood of y ~ 𝒩(Xφ, I) up to a constant, so
    ∇ℒ(φ) = Xᵀ(Xφ − y).

    Args:
        X: inputs of 𝒟ᵗʳ, shape (K, d). y: targets, shape (K,). theta: θ, shape (d,).
        alpha: α > 0. steps: k ≥ 0.

    Returns:
        φ after k steps, shape (d,).
    """
    X, y, phi = _regression(X, y, theta)
    for _ in range(_count(steps, "steps")):
        phi = phi - alpha * X.T @ (X @ phi - y)
    return phi


def implicit_prior_precision(X, alpha: float, steps: int):
    """The Gaussian prior precision under which k gradient steps equal MAP inference.

    In the eigenbasis XᵀX = Q diag(λ) Qᵀ, k steps from θ move φ − θ a fraction
    1 − (1 − αλⱼ)^k of the way to the least-squares solution along direction j. MAP with the prior
    𝒩(θ, P⁻¹), P = Q diag(p) Qᵀ, moves it λⱼ/(λⱼ + pⱼ) of the way. Equal when
    pⱼ = λⱼ (1 − αλⱼ)^k / (1 − (1 − αλⱼ)^k), with the limit pⱼ = 1/(kα) where λⱼ = 0.
    More steps or a larger α give a weaker (wider) prior (Grant et al. 2018, §3).

    Args:
        X: inputs, shape (K, d). alpha: α with 0 < α λ_max < 1 (every pⱼ is then finite and
            positive: a proper Gaussian). steps: k ≥ 1.

    Returns:
        (p (d,), Q (d, d)): precisions per eigendirection and the eigenvectors (columns).
    """
    X = _tensor(X, "X")
    if X.dim() != 2:
        raise ValueError(f"X should have shape (K, d), got {tuple(X.shape)}")
    k = _count(steps, "steps", 1)
    lam, Q = torch.linalg.eigh(X.T @ X)
    lam = lam.clamp(min=0)  # rounding can make a zero eigenvalue slightly negative
    if not 0 < alpha * float(lam.max()) < 1:
        raise ValueError(f"alpha should satisfy 0 < α λ_max < 1 (λ_max = {float(lam.max()):.4g}, so "
                         f"α < {1 / float(lam.max()):.4g}) for the implicit prior to be a proper "
                         f"Gaussian, got alpha = {alpha}")
    keep = (1 - alpha * lam) ** k  # the fraction of θ − φ_LS left after k steps
    flat = lam * alpha * k < 1e-8  # λ ≈ 0: use the limit 1/(kα) instead of 0/0
    p = torch.where(flat, 1 / (k * alpha), lam * keep / (1 - keep).clamp(min=1e-300))
    return p, Q


def map_estimate(X, y, theta, precision) -> torch.Tensor:
    """argmin_φ ½‖Xφ − y‖² + ½ (φ − θ)ᵀ P (φ − θ): MAP under y ~ 𝒩(Xφ, I), φ ~ 𝒩(θ, P⁻¹).

    Solves (XᵀX + P)(φ − θ) = Xᵀ(y − Xθ). X: (K, d), y: (K,), θ: (d,), P: (d, d) → φ (d,).
    """
    X, y, theta = _regression(X, y, theta)
    P = _tensor(precision, "precision")
    if P.shape != (len(theta), len(theta)):
        raise ValueError(f"precision should have shape (d, d) = {(len(theta),) * 2}, got {tuple(P.shape)}")
    return theta + torch.linalg.solve(X.T @ X + P, X.T @ (y - X @ theta))


def implicit_prior_map(X, y, theta, alpha: float, steps: int) -> torch.Tensor:
    """MAP estimate of φ under the implicit prior of k gradient steps (equals :func:`gradient_steps`).

    X: (K, d), y: (K,), θ: (d,) → φ (d,).
    """
    p, Q = implicit_prior_precision(X, alpha, steps)
    return map_estimate(X, y, theta, Q @ torch.diag(p) @ Q.T)


# ---------------------------------------------------------------------------- features (sinusoids)
def sinusoid_features(x) -> torch.Tensor:
    """[sin x, cos x]: the family of A sin(x − b) = (A cos b) sin x − (A sin b) cos x; x: (...) → (..., 2)."""
    x = _tensor(x, "x")
    return torch.stack([torch.sin(x), torch.cos(x)], -1)


def random_features(x, omega, phase) -> torch.Tensor:
    """A generic basis √(2/D) cos(ωₖ x + bₖ), k = 1…D (random Fourier features); x: (...) → (..., D).

    With ωₖ ~ 𝒩(0, 1), bₖ ~ U[0, 2π] and weights φ ~ 𝒩(0, s² I), f = Φφ is approximately a
    Gaussian process with the kernel s² exp(−(x − x')²/2): smooth functions, nothing sinusoidal.
    """
    x, omega, phase = _tensor(x, "x"), _tensor(omega, "omega"), _tensor(phase, "phase")
    if omega.dim() != 1 or phase.shape != omega.shape:
        raise ValueError(f"omega and phase should both have shape (D,), got {tuple(omega.shape)} "
                         f"and {tuple(phase.shape)}")
    return math.sqrt(2 / len(omega)) * torch.cos(x[..., None] * omega + phase)


# ---------------------------------------------------------------------------- the graphical model
def draw_graph(nodes: dict, edges: list, plates: list = (), title: str = "", ax=None,
               name: str | None = None):
    """Draw a directed graphical model: circles for random variables, arrows for dependencies.

    Args:
        nodes: label → (x, y, observed); observed nodes are shaded.
        edges: (parent, child) label pairs: the child's distribution depends on the parent.
        plates: (x0, y0, x1, y1, label) rectangles: everything inside is repeated per index.
        title: the axes title. ax: draw into these axes (else a new figure).
        name: save the figure as build/figures/<name>.png.

    Returns:
        the figure.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    radius = 0.32
    for label, (x, y, observed) in nodes.items():
        ax.add_patch(Circle((x, y), radius, facecolor="0.75" if observed else "white",
                            edgecolor="black", lw=1.5, zorder=2))
        ax.text(x, y, label, ha="center", va="center", fontsize=13, zorder=3)
    for parent, child in edges:
        if parent not in nodes or child not in nodes:
            raise ValueError(f"edge {parent!r} → {child!r} names a node that is not in nodes")
        (x0, y0, _), (x1, y1, _) = nodes[parent], nodes[child]
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length  # from circle edge to circle edge
        ax.add_patch(FancyArrowPatch((x0 + radius * ux, y0 + radius * uy),
                                     (x1 - radius * ux, y1 - radius * uy), arrowstyle="-|>",
                                     mutation_scale=16, shrinkA=0, shrinkB=0, lw=1.3,
                                     color="black", zorder=1))
    for x0, y0, x1, y1, label in plates:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, edgecolor="black"))
        ax.text(x1 - 0.1, y0 + 0.1, label, ha="right", va="bottom", fontsize=10)
    xs = [v[0] for v in nodes.values()] + [p[i] for p in plates for i in (0, 2)]
    ys = [v[1] for v in nodes.values()] + [p[i] for p in plates for i in (1, 3)]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return finish(ax.figure, name)


def draw_meta_learning_model(name: str | None = None, ax=None):
    """The lecture's graphical model of multi-task and meta-learning, drawn with matplotlib.

    θ (latent, outside every plate) → φᵢ (latent, in the task plate i = 1…n) → yᵢⱼ (observed, in
    the nested data plate j = 1…K), with the observed input xᵢⱼ → yᵢⱼ. Returns the figure.
    """
    nodes = {"$\\theta$": (0.0, 1.0, False), "$\\phi_i$": (1.6, 1.0, False),
             "$x_{ij}$": (3.0, 2.0, True), "$y_{ij}$": (3.0, 1.0, True)}
    edges = [("$\\theta$", "$\\phi_i$"), ("$\\phi_i$", "$y_{ij}$"), ("$x_{ij}$", "$y_{ij}$")]
    plates = [(2.35, 0.3, 3.75, 2.55, "j = 1…K"), (0.95, 0.0, 4.1, 2.85, "i = 1…n")]
    return draw_graph(nodes, edges, plates, "Meta-learning as a graphical model", ax=ax, name=name)
