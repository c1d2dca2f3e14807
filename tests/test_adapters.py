"""Low-rank adapters (LoRA) on frozen convolutions: W + (α/r)·B A, B = 0 at the start."""
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from course_lib.adapters import LowRankConv2d, with_adapters
from course_lib.finetuning import trainable_count
from course_lib.models import ConvNet
from course_lib.training import fit

W = 8  # channels of the tiny test nets


def effective_weight(layer: nn.Module, in_channels: int, k: int) -> torch.Tensor:
    """The weight a (padding-0, stride-1) conv layer applies, read off its outputs: (out, in·k·k).

    The inputs are the in·k·k one-hot patches of size k × k, so output j of filter o is
    W_eff[o].flatten()[j] (+ the bias, subtracted via the all-zero patch).
    """
    n = in_channels * k * k
    basis = torch.eye(n, dtype=torch.float64).view(n, in_channels, k, k)  # (in·k·k, in, k, k)
    with torch.no_grad():
        out = layer(basis)[:, :, 0, 0] - layer(torch.zeros_like(basis[:1]))[:, :, 0, 0]
    return out.T  # (in·k·k, out) → (out, in·k·k)


def random_adapter(conv: nn.Conv2d, rank: int, alpha: float = 1.0, seed: int = 0) -> LowRankConv2d:
    """A LowRankConv2d whose B is non-zero (as after training)."""
    layer = LowRankConv2d(conv, rank, alpha)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.B.copy_(torch.randn(layer.B.shape, generator=g, dtype=layer.B.dtype))
    return layer


# ---------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2), dict(padding=2, dilation=2),
                                    dict(padding=1, bias=False), dict(padding=1, groups=3),
                                    dict(padding=1, padding_mode="reflect")])
def test_starts_as_the_wrapped_conv(kwargs):
    """checks that with B = 0 the adapted conv gives exactly the wrapped conv's outputs."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, **kwargs)
    x = torch.randn(4, 3, 11, 11)
    expected = conv(x)
    layer = LowRankConv2d(conv, rank=2)
    assert torch.count_nonzero(layer.B) == 0
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


def test_shapes_scale_and_frozen_conv():
    """checks A: (r, in·k·k), B: (out, r), scale α/r, and that the conv's parameters are frozen."""
    conv = nn.Conv2d(3, 5, (3, 2))
    layer = LowRankConv2d(conv, rank=4, alpha=2.0)
    assert layer.A.shape == (4, 3 * 3 * 2) and layer.B.shape == (5, 4)
    assert layer.scale == pytest.approx(0.5)
    assert not any(p.requires_grad for p in layer.conv.parameters())
    assert layer.A.requires_grad and layer.B.requires_grad
    assert {name for name, p in layer.named_parameters() if p.requires_grad} == {"A", "B"}


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_update_has_rank_at_most_r(rank):
    """checks rank(W_eff − W) = r for a random B, with W_eff read off the layer's outputs."""
    torch.manual_seed(rank)
    conv = nn.Conv2d(3, 6, 3).double()
    layer = random_adapter(conv, rank, alpha=3.0, seed=rank).double()
    delta = effective_weight(layer, 3, 3) - effective_weight(conv, 3, 3)  # (out, in·k·k)
    assert delta.shape == (6, 27)
    assert delta.abs().max() > 1e-3  # a non-zero B changes the weight …
    assert torch.linalg.matrix_rank(delta) == rank  # … by exactly rank r (generic A, B)
    # and the change is (α/r)·B A
    torch.testing.assert_close(delta, layer.scale * layer.B.detach() @ layer.A.detach())


def test_gradients_match_an_explicit_conv():
    """checks outputs and ∂L/∂A, ∂L/∂B, ∂L/∂x against nn.Conv2d with weight W + (α/r)·B A.

    The oracle conv's autograd gives G = ∂L/∂W_eff; the chain rule through W_eff = W + s·B A
    gives ∂L/∂B = s·G Aᵀ and ∂L/∂A = s·Bᵀ G (G flattened to (out, in·k·k)).
    """
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1).double()
    layer = random_adapter(conv, rank=2, alpha=4.0).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 5, 5, 5, dtype=torch.float64)  # upstream gradient ∂L/∂out
    (layer(x) * g).sum().backward()

    s, A, B = layer.scale, layer.A.detach(), layer.B.detach()
    oracle = nn.Conv2d(3, 5, 3, stride=2, padding=1).double()
    with torch.no_grad():
        oracle.weight.copy_(conv.weight + s * (B @ A).reshape(5, 3, 3, 3))
        oracle.bias.copy_(conv.bias)
    x2 = x.detach().clone().requires_grad_(True)
    out = oracle(x2)
    (out * g).sum().backward()
    G = oracle.weight.grad.reshape(5, 27)

    torch.testing.assert_close(layer(x), out)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.B.grad, s * G @ A.T)
    torch.testing.assert_close(layer.A.grad, s * B.T @ G)
    assert conv.weight.grad is None and conv.bias.grad is None  # the frozen W gets none


def test_gradcheck_numerical():
    """checks the layer's analytic gradients wrt A, B and x against finite differences (float64)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    layer = random_adapter(conv, rank=2).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    A = layer.A.detach().clone().requires_grad_(True)
    B = layer.B.detach().clone().requires_grad_(True)

    def out(x, A, B):  # the layer's own forward, with A and B passed in
        return functional_call(layer, {"A": A, "B": B}, (x,))

    assert torch.autograd.gradcheck(out, (x, A, B))


# ---------------------------------------------------------------------------- the network
def expected_trainable(width: int, rank: int, ways: int, in_channels: int = 1,
                       depth: int = 4, k: int = 3) -> int:
    """r·(out + in·k·k) per conv, plus the new head's weight and bias."""
    convs = rank * (width + in_channels * k * k) + (depth - 1) * rank * (width + width * k * k)
    return convs + width * ways + ways


@pytest.mark.parametrize("rank,ways", [(1, 5), (2, 3), (4, 20)])
def test_only_adapters_and_head_are_trainable(rank, ways):
    """checks the trainable names and trainable_count against the closed form."""
    theta = ConvNet(10, width=W)
    phi = with_adapters(theta, rank, ways)
    trainable = {name for name, p in phi.named_parameters() if p.requires_grad}
    expected = {f"blocks.{i}.0.{m}" for i in range(4) for m in "AB"} | {"head.weight", "head.bias"}
    assert trainable == expected
    assert trainable_count(phi) == expected_trainable(W, rank, ways)
    assert phi.head.out_features == ways


def test_with_adapters_starts_as_theta_features_and_leaves_theta_alone():
    """checks that φ's features equal θ's at the start and that θ is a separate deep copy."""
    torch.manual_seed(0)
    theta = ConvNet(10, width=W).eval()
    before = copy.deepcopy(theta.state_dict())
    phi = with_adapters(theta, 2, 5).eval()
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(phi.features(x), theta.features(x), rtol=0, atol=0)
    assert isinstance(phi.blocks[0][0], LowRankConv2d)
    assert isinstance(theta.blocks[0][0], nn.Conv2d)  # θ's blocks were not replaced
    assert theta.head.out_features == 10
    assert all(p.requires_grad for p in theta.parameters())  # θ's trainable flags untouched
    phi_params = {p.data_ptr() for p in phi.parameters()}
    assert not phi_params & {p.data_ptr() for p in theta.parameters()}  # no shared storage
    for key, value in theta.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_training_changes_only_adapters_and_head():
    """checks that fit steps move A, B and the head but leave W, biases and batch norm as in θ."""
    torch.manual_seed(0)
    theta = ConvNet(10, width=W)
    before = copy.deepcopy(theta.state_dict())
    phi = with_adapters(theta, 2, 3)
    start = copy.deepcopy(phi.state_dict())
    x, y = torch.rand(24, 1, 28, 28), torch.arange(3).repeat(8)
    fit(phi, x, y, steps=5, lr=1e-2, batch_size=12, progress=False)
    after = phi.state_dict()
    for i in range(4):
        for key in ("weight", "bias"):  # the frozen conv inside the adapter
            assert torch.equal(after[f"blocks.{i}.0.conv.{key}"], before[f"blocks.{i}.0.{key}"])
        for key in ("weight", "bias", "running_mean", "running_var"):  # frozen batch norm
            assert torch.equal(after[f"blocks.{i}.1.{key}"], before[f"blocks.{i}.1.{key}"])
        assert torch.count_nonzero(after[f"blocks.{i}.0.B"]) > 0  # B left zero
        assert not torch.equal(after[f"blocks.{i}.0.A"], start[f"blocks.{i}.0.A"])
    assert not torch.equal(after["head.weight"], start["head.weight"])
    for key, value in theta.state_dict().items():  # θ itself untouched by training φ
        assert torch.equal(value, before[key]), key
    # the learned update of every block is low-rank
    for block in phi.blocks:
        layer = block[0]
        delta = layer.scale * (layer.B @ layer.A).detach()
        assert torch.linalg.matrix_rank(delta) <= 2
