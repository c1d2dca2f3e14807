"""Importance weighting under covariate shift: weighted least squares and the density ratio."""
import numpy as np
import pytest

from course_lib.importance import density_ratio, polynomial_features, weighted_least_squares


def normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def cubic(x):
    """p(y | x) of the lecture's example: y = x³ − x (+ noise)."""
    return x ** 3 - x


# ---------------------------------------------------------------------------- features
def test_polynomial_features():
    """checks the columns 1, x, x², x³ by hand."""
    x = np.array([-2.0, 0.0, 0.5, 3.0])
    X = polynomial_features(x, 3)
    assert X.shape == (4, 4)
    np.testing.assert_allclose(X, np.array([[1, -2, 4, -8], [1, 0, 0, 0],
                                            [1, 0.5, 0.25, 0.125], [1, 3, 9, 27]]))


# ---------------------------------------------------------------------------- weighted LS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wls_equals_closed_form(seed):
    """checks β = (XᵀWX)⁻¹ XᵀW y for positive weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    y = rng.normal(size=40)
    w = rng.uniform(0.1, 5.0, size=40)
    beta = weighted_least_squares(X, y, w)
    closed_form = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
    assert beta.shape == (3,)
    np.testing.assert_allclose(beta, closed_form, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_wls_without_weights_is_ordinary_least_squares(degree):
    """checks w=None (and w = 1) against np.polyfit (which lists the highest power first)."""
    rng = np.random.default_rng(degree)
    x = rng.uniform(-2, 2, 50)
    y = cubic(x) + rng.normal(0, 0.3, 50)
    X = polynomial_features(x, degree)
    expected = np.polyfit(x, y, degree)[::-1]
    np.testing.assert_allclose(weighted_least_squares(X, y), expected, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted_least_squares(X, y, np.ones(50)), expected,
                               rtol=1e-8, atol=1e-10)


def test_integer_weights_equal_duplicated_rows():
    """checks that weight m on a row gives the same fit as m copies of that row (m = 0: dropped)."""
    rng = np.random.default_rng(3)
    X = polynomial_features(rng.normal(size=30), 2)
    y = rng.normal(size=30)
    counts = rng.integers(0, 4, size=30)
    counts[:3] = 1  # keep enough rows for a unique solution
    beta = weighted_least_squares(X, y, counts.astype(float))
    duplicated = weighted_least_squares(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    np.testing.assert_allclose(beta, duplicated, rtol=1e-9, atol=1e-12)


def test_wls_is_invariant_to_scaling_the_weights():
    """checks that c·w gives the same β as w (only relative weights matter)."""
    rng = np.random.default_rng(4)
    X, y, w = rng.normal(size=(25, 2)), rng.normal(size=25), rng.uniform(0.5, 2, 25)
    np.testing.assert_allclose(weighted_least_squares(X, y, 7.5 * w),
                               weighted_least_squares(X, y, w), rtol=1e-9)


# ---------------------------------------------------------------------------- density ratio
@pytest.mark.parametrize("source,target,n_t", [((0.5, 0.5), (0.0, 0.3), 2000),
                                               ((0.0, 1.0), (0.5, 0.8), 2000),
                                               ((0.0, 1.0), (0.5, 0.8), 500)])
def test_density_ratio_matches_the_true_ratio(source, target, n_t):
    """checks ŵ against p_t/p_s of two Gaussians: correlation > 0.95, shape (n_s,), ŵ > 0,
    and mean ≈ 1 under the source (E_s[w] = 1), also when n_t ≠ n_s (the n_s/n_t factor)."""
    rng = np.random.default_rng(0)
    x_s = rng.normal(*source, 2000)
    x_t = rng.normal(*target, n_t)
    w_hat = density_ratio(x_s, x_t)
    w_true = normal_pdf(x_s, *target) / normal_pdf(x_s, *source)
    assert w_hat.shape == x_s.shape
    assert np.all(w_hat > 0)
    assert np.corrcoef(w_hat, w_true)[0, 1] > 0.95
    assert w_hat.mean() == pytest.approx(1.0, abs=0.1)
    # on a log scale too: the estimate follows the true ratio where the source has mass
    core = np.abs(x_s - source[0]) < source[1]
    assert np.median(np.abs(np.log(w_hat[core] / w_true[core]))) < 0.2


def test_density_ratio_without_shift_is_about_one():
    """checks ŵ ≈ 1 everywhere when source and target come from the same distribution."""
    rng = np.random.default_rng(1)
    w_hat = density_ratio(rng.normal(0, 1, 3000), rng.normal(0, 1, 3000))
    assert np.median(np.abs(w_hat - 1)) < 0.1
    assert np.abs(w_hat - 1).max() < 0.6  # the tails, where few points pin the fit down
    assert w_hat.mean() == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------------------- the lecture's demo
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighting_reduces_target_error_of_a_misspecified_line(seed):
    """checks the covariate-shift demo: a line fitted to y = x³ − x on source N(0.5, 0.5²) has a
    lower MSE on target N(0, 0.3²) when weighted by the true or the estimated w(x)."""
    rng = np.random.default_rng(seed)
    x_s = rng.normal(0.5, 0.5, 200)
    y_s = cubic(x_s) + rng.normal(0, 0.3, 200)
    x_t = rng.normal(0.0, 0.3, 1000)
    y_t = cubic(x_t) + rng.normal(0, 0.3, 1000)
    X_s, X_t = polynomial_features(x_s, 1), polynomial_features(x_t, 1)

    def target_mse(w):
        return np.mean((X_t @ weighted_least_squares(X_s, y_s, w) - y_t) ** 2)

    unweighted = target_mse(None)
    true_w = target_mse(normal_pdf(x_s, 0.0, 0.3) / normal_pdf(x_s, 0.5, 0.5))
    estimated_w = target_mse(density_ratio(x_s, x_t[:200]))  # 200 unlabelled target inputs
    assert true_w < 0.7 * unweighted
    assert estimated_w < 0.7 * unweighted
    assert estimated_w == pytest.approx(true_w, rel=0.1)
    # the noise floor: nothing linear does better than the best line on the target itself
    best = np.mean((X_t @ weighted_least_squares(X_t, y_t) - y_t) ** 2)
    assert best <= min(true_w, estimated_w) + 1e-12
