"""Flat gradients (course_lib.gradients) against autograd, and the cosine that uses them."""
from __future__ import annotations

import pytest
import torch

from course_lib.continual import gradient_cosine
from course_lib.gradients import flat_grad, set_flat_grad


def test_flat_grad_is_autograd_concatenated():
    """checks ∇_θ ℒ flattened equals the hand-computed gradient of ℒ = Σ (W x)² + 3 b, and that
    a parameter ℒ does not use gets zeros."""
    W, b, unused = torch.randn(2, 3, requires_grad=True), torch.randn(2, requires_grad=True), \
        torch.randn(4, requires_grad=True)
    x = torch.randn(3)
    loss = ((W @ x) ** 2).sum() + 3 * b.sum()
    g = flat_grad(loss, [W, b, unused])
    expected = torch.cat([(2 * (W @ x)[:, None] * x[None, :]).flatten(), torch.full((2,), 3.0),
                          torch.zeros(4)])
    assert torch.allclose(g, expected.detach())
    flat_grad(loss, [W])  # the graph is kept for a second loss of the same forward pass


def test_flat_grad_of_a_constant_is_zero():
    """checks a loss that does not depend on θ at all (no graph) has the zero gradient."""
    theta = [torch.randn(3, requires_grad=True)]
    assert torch.equal(flat_grad(torch.tensor(1.5), theta), torch.zeros(3))
    assert gradient_cosine(theta, (theta[0] ** 2).sum(), torch.tensor(2.0)) == 0.0


def test_set_flat_grad_round_trip_and_size_check():
    """checks set_flat_grad writes each slice into p.grad in order and refuses a wrong size."""
    params = [torch.zeros(2, 2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    set_flat_grad(params, torch.arange(7.0))
    assert torch.equal(params[0].grad, torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert torch.equal(params[1].grad, torch.tensor([4.0, 5.0, 6.0]))
    for wrong in (6, 8):
        with pytest.raises(ValueError, match=f"{wrong} entries, the parameters 7"):
            set_flat_grad(params, torch.zeros(wrong))


def test_gradient_cosine_signs():
    """checks cos(∇ℒ_a, ∇ℒ_b) is 1 for proportional losses and −1 for opposite ones."""
    theta = torch.randn(5, requires_grad=True)
    a = (theta * torch.arange(5.0)).sum()
    assert gradient_cosine([theta], a, 2 * a) == pytest.approx(1.0)
    assert gradient_cosine([theta], a, -a) == pytest.approx(-1.0)
