"""The Bayesian view: posterior, entropy, empirical Bayes, MAML as implicit MAP, the drawing."""
import math

import matplotlib
import pytest
import torch

from course_lib import bayes

matplotlib.use("Agg")
D = torch.float64


def grid_posterior(y, theta, tau2, sigma2):
    """Oracle: p(φ | y, θ) by brute force on a fine grid (prior × likelihood, normalised)."""
    phi = torch.linspace(theta - 12 * math.sqrt(tau2), theta + 12 * math.sqrt(tau2), 200001, dtype=D)
    log_p = (-(phi - theta) ** 2 / (2 * tau2)
             - ((y[None, :] - phi[:, None]) ** 2).sum(1) / (2 * sigma2))
    w = torch.softmax(log_p, 0)
    mean = (w * phi).sum()
    return mean, (w * (phi - mean) ** 2).sum()


# ---------------------------------------------------------------------------- posterior
def test_posterior_by_hand():
    """checks v = 1/(1/τ² + K/σ²), m = v(θ/τ² + Σy/σ²) on y = (1, 2, 3), θ = 0, τ² = σ² = 1."""
    m, v = bayes.posterior(torch.tensor([1.0, 2.0, 3.0]), 0.0, 1.0, 1.0)
    assert m.item() == pytest.approx(1.5) and v.item() == pytest.approx(0.25)


def test_posterior_matches_a_grid():
    """checks mean and variance against a brute-force grid posterior for several K and τ²."""
    g = torch.Generator().manual_seed(0)
    for K, tau2, sigma2 in [(1, 0.3, 1.0), (4, 2.0, 0.5), (9, 0.05, 2.0)]:
        y = 1.0 + torch.randn(K, generator=g, dtype=D)
        m, v = bayes.posterior(y, 0.7, tau2, sigma2)
        gm, gv = grid_posterior(y, 0.7, tau2, sigma2)
        assert m.item() == pytest.approx(gm.item(), abs=1e-6)
        assert v.item() == pytest.approx(gv.item(), rel=1e-4)


def test_posterior_matches_monte_carlo():
    """checks E[φ | y] and Var[φ | y] against self-normalised importance sampling from the prior."""
    g = torch.Generator().manual_seed(1)
    y, theta, tau2, sigma2 = torch.tensor([0.4, 1.9], dtype=D), 0.5, 1.0, 1.5
    phi = theta + math.sqrt(tau2) * torch.randn(400_000, generator=g, dtype=D)
    w = torch.softmax(-((y - phi[:, None]) ** 2).sum(1) / (2 * sigma2), 0)
    m, v = bayes.posterior(y, theta, tau2, sigma2)
    mc_mean = (w * phi).sum()
    assert m.item() == pytest.approx(mc_mean.item(), abs=0.01)
    assert v.item() == pytest.approx((w * (phi - mc_mean) ** 2).sum().item(), rel=0.02)


def test_posterior_edge_cases():
    """checks K = 0 gives the prior, τ² = 0 ignores the data, and K → ∞ approaches ȳ with v → 0."""
    m, v = bayes.posterior(torch.zeros(0), 2.0, 0.5, 1.0)
    assert (m.item(), v.item()) == (2.0, 0.5)
    m, v = bayes.posterior(torch.tensor([100.0, -40.0]), 2.0, 0.0, 1.0)
    assert (m.item(), v.item()) == (2.0, 0.0)
    y = 3.0 + torch.randn(100_000, generator=torch.Generator().manual_seed(2), dtype=D)
    m, v = bayes.posterior(y, -5.0, 1.0, 1.0)
    assert m.item() == pytest.approx(y.mean().item(), abs=1e-3) and v.item() < 1e-4


def test_posterior_is_batched_over_tasks():
    """checks that y of shape (n, K) with a θ per task equals n separate calls."""
    g = torch.Generator().manual_seed(3)
    y, theta = torch.randn(5, 3, generator=g, dtype=D), torch.randn(5, generator=g, dtype=D)
    m, v = bayes.posterior(y, theta, 0.4, 0.9)
    assert m.shape == v.shape == (5,)
    for i in range(5):
        mi, vi = bayes.posterior(y[i], theta[i], 0.4, 0.9)
        assert torch.allclose(m[i], mi) and torch.allclose(v[i], vi)


def test_posterior_is_the_linear_map_special_case():
    """checks the scalar posterior mean against map_estimate with X = 1 and prior precision σ²/τ²."""
    y = torch.tensor([0.3, -1.2, 2.5, 1.8], dtype=D)
    m, _ = bayes.posterior(y, 0.6, 0.7, 1.3)
    X = torch.ones(4, 1, dtype=D) / math.sqrt(1.3)  # ½‖Xφ − y/σ‖² = ‖φ − y‖²/(2σ²)
    phi = bayes.map_estimate(X, y / math.sqrt(1.3), torch.tensor([0.6], dtype=D),
                             torch.tensor([[1 / 0.7]], dtype=D))
    assert phi.item() == pytest.approx(m.item(), abs=1e-12)
    mean, cov = bayes.linear_posterior(torch.ones(4, 1, dtype=D), y, torch.tensor([0.6], dtype=D),
                                      torch.tensor([[0.7]], dtype=D), 1.3)
    assert mean.item() == pytest.approx(m.item(), abs=1e-12)
    assert cov.item() == pytest.approx(bayes.posterior(y, 0.6, 0.7, 1.3)[1].item(), abs=1e-12)


# ---------------------------------------------------------------------------- sampling and entropy
def test_sampler_is_seeded_and_has_the_model_moments():
    """checks same seed → same draws, and corr(φ₁, φ₂) = s₀²/(s₀² + τ²) (dependent), ≈ 0 given θ."""
    theta = bayes.sample_theta(50_000, 1.0, 2.0, 0)
    phi, y = bayes.sample_tasks(theta, 0.5, 1.0, tasks=2, K=3, generator=1)
    assert phi.shape == (50_000, 2) and y.shape == (50_000, 2, 3)
    assert torch.equal(phi, bayes.sample_tasks(theta, 0.5, 1.0, 2, 3, 1)[0])
    corr = torch.corrcoef(phi.T)[0, 1].item()
    assert corr == pytest.approx(bayes.phi_correlation(2.0, 0.5).item(), abs=0.02)
    assert phi.var().item() == pytest.approx(2.5, rel=0.03)
    assert (y - phi[..., None]).var().item() == pytest.approx(1.0, rel=0.03)
    fixed, _ = bayes.sample_tasks(1.0, 0.5, 1.0, tasks=2 * 50_000, K=0, generator=2)
    assert abs(torch.corrcoef(fixed.reshape(50_000, 2).T)[0, 1].item()) < 0.02


def test_entropy_matches_torch_and_monte_carlo():
    """checks ½ ln(2πe v) against torch.distributions and a Monte Carlo −E[ln p(φ)]."""
    v = torch.tensor([1e-3, 0.5, 1.0, 7.0], dtype=D)
    expected = torch.distributions.Normal(0.0, v.sqrt()).entropy()
    assert torch.allclose(bayes.gaussian_entropy(v), expected, atol=1e-12)
    x = 3.0 + math.sqrt(2.5) * torch.randn(400_000, generator=torch.Generator().manual_seed(4), dtype=D)
    mc = -bayes.gaussian_log_density(x, 3.0, 2.5).mean().item()
    assert bayes.gaussian_entropy(2.5).item() == pytest.approx(mc, abs=0.01)
    assert bayes.gaussian_entropy(0.0).item() == -math.inf


def test_matrix_entropy_matches_torch():
    """checks ½ ln det(2πe Σ) against MultivariateNormal.entropy and the diagonal case."""
    A = torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=D)
    S = A @ A.T + 0.1 * torch.eye(3, dtype=D)
    expected = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=D), S).entropy()
    assert bayes.gaussian_entropy_matrix(S).item() == pytest.approx(expected.item(), abs=1e-10)
    v = torch.tensor([0.2, 1.0, 3.0], dtype=D)
    assert bayes.gaussian_entropy_matrix(torch.diag(v)).item() == pytest.approx(
        bayes.gaussian_entropy(v).sum().item(), abs=1e-12)


def test_conditioning_on_theta_lowers_entropy():
    """checks H(φ | θ) < H(φ) with the gap ½ ln(1 + s₀²/τ²) = the mutual information I(φ; θ)."""
    for s02, tau2 in [(1.0, 1.0), (4.0, 0.1), (0.01, 2.0)]:
        gap = bayes.entropy_gap(s02, tau2).item()
        assert gap > 0
        assert gap == pytest.approx(0.5 * math.log(1 + s02 / tau2), abs=1e-12)


# ---------------------------------------------------------------------------- empirical Bayes
def test_empirical_bayes_by_hand():
    """checks θ̂ = mean of ȳᵢ and τ̂² = (1/n)Σ(ȳᵢ − θ̂)² − σ²/K on task means 1, 5, 3 (σ² = 2, K = 2)."""
    y = torch.tensor([[0.0, 2.0], [4.0, 6.0], [2.0, 4.0]])
    theta, tau2 = bayes.empirical_bayes(y, 2.0)
    assert theta == pytest.approx(3.0) and tau2 == pytest.approx(8 / 3 - 1)
    theta, tau2 = bayes.empirical_bayes(torch.tensor([[0.0, 0.1], [0.1, 0.0]]), 1.0)
    assert tau2 == 0.0  # the task means agree better than the noise predicts: clipped


def test_empirical_bayes_recovers_theta_and_tau2():
    """checks θ̂, τ̂² (σ² known and estimated) against the true values on 20 000 simulated tasks."""
    phi, y = bayes.sample_tasks(1.5, 0.5, 1.0, tasks=20_000, K=5, generator=6)
    for sigma2 in [1.0, None]:
        theta, tau2 = bayes.empirical_bayes(y, sigma2)
        assert theta == pytest.approx(1.5, abs=0.03)  # standard error ≈ 0.006
        assert tau2 == pytest.approx(0.5, abs=0.04)   # standard error ≈ 0.007
    assert bayes.within_task_variance(y) == pytest.approx(1.0, abs=0.03)


def test_empirical_bayes_maximises_the_marginal_likelihood():
    """checks that autograd ascent on ln p(y | θ, τ²) from elsewhere converges to (θ̂, τ̂²)."""
    _, y = bayes.sample_tasks(-0.4, 0.8, 0.6, tasks=200, K=3, generator=7)
    theta_hat, tau2_hat = bayes.empirical_bayes(y, 0.6)
    theta = torch.tensor(1.0, dtype=D, requires_grad=True)
    log_tau2 = torch.tensor(0.0, dtype=D, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta, log_tau2], max_iter=200, tolerance_grad=1e-12)

    def closure():
        optimizer.zero_grad()
        loss = -bayes.marginal_log_likelihood(y, theta, log_tau2.exp(), 0.6)
        loss.backward()
        return loss

    optimizer.step(closure)
    assert theta.item() == pytest.approx(theta_hat, abs=1e-6)
    assert log_tau2.exp().item() == pytest.approx(tau2_hat, rel=1e-5)


def test_empirical_bayes_never_negative():
    """checks τ̂² ≥ 0 on many small data sets where the sample spread is often below σ²/K."""
    g = torch.Generator().manual_seed(8)
    for _ in range(200):
        _, tau2 = bayes.empirical_bayes(torch.randn(3, 2, generator=g), 1.0)
        assert tau2 >= 0.0


# ---------------------------------------------------------------------------- MAML ↔ MAP
def regression_problem(K=6, d=3, seed=9):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(K, d, generator=g, dtype=D), torch.randn(K, generator=g, dtype=D),
            torch.randn(d, generator=g, dtype=D))


def test_gradient_steps_match_autograd():
    """checks the inner loop against φ ← φ − α ∇ℒ with ∇ from autograd on ½‖Xφ − y‖²."""
    X, y, theta = regression_problem()
    phi = theta.clone()
    for _ in range(4):
        phi = phi.detach().requires_grad_()
        (0.5 * ((X @ phi - y) ** 2).sum()).backward()
        phi = phi - 0.05 * phi.grad
    assert torch.allclose(bayes.gradient_steps(X, y, theta, 0.05, 4), phi, atol=1e-12)
    assert torch.equal(bayes.gradient_steps(X, y, theta, 0.05, 0), theta)


@pytest.mark.parametrize("K, d", [(6, 3), (2, 4)])  # full rank, and XᵀX singular (K < d)
def test_gradient_steps_equal_implicit_prior_map(K, d):
    """checks k steps of gradient descent = MAP under the implicit Gaussian prior (Grant et al. 2018)."""
    X, y, theta = regression_problem(K, d)
    lam_max = torch.linalg.eigvalsh(X.T @ X).max().item()
    for fraction in [0.1, 0.5, 0.9]:
        for k in [1, 2, 5, 50]:
            alpha = fraction / lam_max
            gd = bayes.gradient_steps(X, y, theta, alpha, k)
            assert torch.allclose(gd, bayes.implicit_prior_map(X, y, theta, alpha, k), atol=1e-10, rtol=0)


def test_map_estimate_zeroes_the_gradient():
    """checks that the MAP solution is a stationary point of the regularised loss (autograd)."""
    X, y, theta = regression_problem()
    P = torch.diag(torch.tensor([0.5, 2.0, 10.0], dtype=D))
    phi = bayes.map_estimate(X, y, theta, P).requires_grad_()
    (0.5 * ((X @ phi - y) ** 2).sum() + 0.5 * (phi - theta) @ P @ (phi - theta)).backward()
    assert phi.grad.abs().max().item() < 1e-10


def test_more_steps_mean_a_weaker_prior():
    """checks that the implicit precision falls with k and with α, and is 1/(kα) where λ = 0."""
    X, _, _ = regression_problem(2, 4)
    lam, _ = torch.linalg.eigh(X.T @ X)
    alpha = 0.5 / lam.max().item()
    p1, _ = bayes.implicit_prior_precision(X, alpha, 1)
    p5, _ = bayes.implicit_prior_precision(X, alpha, 5)
    p5_small, _ = bayes.implicit_prior_precision(X, alpha / 2, 5)
    assert (p5 < p1).all() and (p5_small > p5).all()
    assert p5[lam.abs() < 1e-9] == pytest.approx(torch.full((2,), 1 / (5 * alpha), dtype=D))


# ---------------------------------------------------------------------------- drawing and errors
def test_drawing_has_nodes_arrows_and_plates(tmp_path, monkeypatch):
    """checks 4 circles (2 shaded), 3 arrows and 2 plates, and that name= saves a PNG."""
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path))
    fig = bayes.draw_meta_learning_model(name="gm")
    patches = fig.axes[0].patches
    circles = [p for p in patches if isinstance(p, matplotlib.patches.Circle)]
    assert len(circles) == 4
    assert sum(c.get_facecolor()[:3] != (1.0, 1.0, 1.0) for c in circles) == 2
    assert sum(isinstance(p, matplotlib.patches.FancyArrowPatch) for p in patches) == 3
    assert sum(type(p) is matplotlib.patches.Rectangle for p in patches) == 2
    assert (tmp_path / "figures" / "gm.png").stat().st_size > 0
    with pytest.raises(ValueError, match="'z'"):
        bayes.draw_graph({"a": (0, 0, False)}, [("a", "z")])


def test_bad_input_names_the_argument():
    """checks the ValueErrors for negative variances, wrong shapes, mismatched K and a bad α."""
    cases = [
        (lambda: bayes.posterior(torch.ones(3), 0.0, -1.0, 1.0), "tau2"),
        (lambda: bayes.posterior(torch.ones(3), 0.0, 1.0, 0.0), "sigma2"),
        (lambda: bayes.posterior(torch.tensor(1.0), 0.0, 1.0, 1.0), "y should have shape"),
        (lambda: bayes.gaussian_entropy(torch.tensor([1.0, -0.1])), "variance"),
        (lambda: bayes.gaussian_entropy_matrix(torch.ones(2, 3)), "square"),
        (lambda: bayes.empirical_bayes(torch.ones(5), 1.0), r"\(tasks, K\)"),
        (lambda: bayes.empirical_bayes(torch.ones(4, 1)), "K ≥ 2"),
        (lambda: bayes.sample_tasks(0.0, 1.0, 1.0, 2, 3, generator=None), "generator"),
        (lambda: bayes.gradient_steps(torch.ones(3, 2), torch.ones(4), torch.zeros(2), 0.1, 1), r"y should have shape \(K,\) = \(3,\)"),
        (lambda: bayes.gradient_steps(torch.ones(3, 2), torch.ones(3), torch.zeros(3), 0.1, 1), "theta"),
        (lambda: bayes.implicit_prior_precision(torch.eye(2), 1.5, 1), "alpha"),
        (lambda: bayes.linear_posterior(torch.ones(3, 2), torch.ones(3), torch.zeros(3), torch.eye(2), 1.0), "prior_mean"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
