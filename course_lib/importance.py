"""Instance transfer: importance weighting under covariate shift.

Covariate shift: p_s(x) ≠ p_t(x) while p(y | x) is shared. Weighting each source example by
w(x) = p_t(x) / p_s(x) makes the source risk an unbiased estimate of the target risk
(Shimodaira 2000). The ratio is rarely known; a domain classifier that tells target from source
gives it: w(x) = p(t | x) / p(s | x) · n_s / n_t. Used by ``notebooks/01c_transfer_taxonomy``.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression


def polynomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    """[1, x, x², …, x^degree] for 1-D inputs x: (n,) → (n, degree + 1)."""
    return np.stack([x ** d for d in range(degree + 1)], axis=1)


def density_ratio(x_source: np.ndarray, x_target: np.ndarray, degree: int = 2) -> np.ndarray:
    """Estimated w(x) = p_t(x) / p_s(x) at the source points, from a domain classifier.

    A logistic regression on polynomial features of x learns p(t | x); Bayes' rule turns its
    odds into the density ratio. Shapes: x_source (n_s,), x_target (n_t,) → (n_s,).
    """
    X = polynomial_features(np.concatenate([x_source, x_target]), degree)[:, 1:]
    d = np.r_[np.zeros(len(x_source)), np.ones(len(x_target))]
    clf = LogisticRegression(C=10.0, max_iter=1000).fit(X, d)
    p_t = clf.predict_proba(polynomial_features(x_source, degree)[:, 1:])[:, 1]
    return p_t / (1 - p_t) * len(x_source) / len(x_target)


def weighted_least_squares(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """argmin_β Σᵢ wᵢ (yᵢ − Xᵢβ)²; X: (n, d), y: (n,), w: (n,) or None → β: (d,)."""
    w = np.ones(len(y)) if w is None else w
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
