"""The networks: shapes, parameter names, and torch.func.functional_call against the module."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from course_lib.models import MLP, ConvNet


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return ConvNet(5, width=8)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(10, 1, 28, 28, generator=g), torch.arange(10) % 5


# ---------------------------------------------------------------------------- shapes and names
@pytest.mark.parametrize("width", [4, 16])
def test_convnet_shapes(width):
    """checks (n, 1, 28, 28) → (n, outputs) logits and (n, width) features."""
    model = ConvNet(7, width=width)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 7)
    assert model.features(x).shape == (3, width)
    assert ConvNet(0, width=width)(x).shape == (3, width)  # no head: features


def test_mlp_shapes():
    """checks (n, inputs) → (n, outputs), and that images are flattened."""
    assert MLP(1)(torch.rand(6, 1)).shape == (6, 1)
    assert MLP(784, hidden=(32,), outputs=10)(torch.rand(6, 1, 28, 28)).shape == (6, 10)
    assert MLP(3, hidden=(40, 40)).features(torch.rand(2, 3)).shape == (2, 40)


def test_convnet_parameter_names(conv):
    """checks the names blocks.{i}.… and head.… that transfer recipes address."""
    expected = [f"blocks.{i}.{j}.{p}" for i in range(4) for j in (0, 1) for p in ("weight", "bias")]
    expected += ["head.weight", "head.bias"]
    assert [name for name, _ in conv.named_parameters()] == expected
    assert len(conv.blocks) == 4


def test_mlp_parameter_names():
    """checks that the MLP also names its layers blocks.… and head.…"""
    names = [name for name, _ in MLP(1, hidden=(40, 40)).named_parameters()]
    assert names[-2:] == ["head.weight", "head.bias"]
    assert all(n.startswith("blocks.") for n in names[:-2]) and len(names) == 6


def test_convnet_parameter_count():
    """checks the parameter count against its closed form for width w and c classes."""
    w, c = 8, 5
    first = 9 * w + w + 2 * w          # conv 1→w (3×3) with bias, batch-norm γ and β
    later = 9 * w * w + w + 2 * w      # conv w→w
    assert sum(p.numel() for p in ConvNet(c, width=w).parameters()) == first + 3 * later + w * c + c


def test_reset_head(conv):
    """checks that reset_head gives a fresh head of the new size and keeps the body."""
    body = {k: v.clone() for k, v in conv.state_dict().items() if k.startswith("blocks")}
    old_head = conv.head.weight.detach().clone()
    conv.reset_head(3)
    assert all(torch.equal(conv.state_dict()[k], v) for k, v in body.items())
    assert conv.head.weight.shape == (3, 8)
    assert not torch.equal(conv.head.weight[:3].detach(), old_head[:3])
    assert conv.head.weight.requires_grad
    assert conv(torch.rand(2, 1, 28, 28)).shape == (2, 3)


# ---------------------------------------------------------------------------- functional_call
@pytest.mark.parametrize("train", [True, False])
def test_functional_call_matches_module(conv, batch, train):
    """checks that functional_call with the module's own parameters is the module."""
    x, _ = batch
    conv.train(train)
    params = dict(conv.named_parameters())
    assert torch.allclose(functional_call(conv, params, (x,)), conv(x))


def test_functional_call_uses_the_given_params(conv, batch):
    """checks that the dict's values, not the module's, are used: a zero head outputs its bias."""
    x, _ = batch
    conv.eval()
    params = dict(conv.named_parameters())
    bias = torch.arange(5.0)
    params = {**params, "head.weight": torch.zeros(5, 8), "head.bias": bias}
    assert torch.equal(functional_call(conv, params, (x,)), bias.expand(10, 5))
    assert not torch.equal(conv(x), bias.expand(10, 5))  # the module itself is unchanged


@pytest.mark.parametrize("train", [True, False])
def test_grad_through_functional_call_matches_autograd(conv, batch, train):
    """checks ∇_θ L via functional_call (autograd.grad and torch.func.grad) against .backward().

    In train mode batch norm updates its running statistics in place, which torch.func.grad
    allows only on tensors passed in: so the buffers go in as a second dict (copies).
    """
    x, y = batch
    conv.train(train)
    theta = {k: v.detach().clone().requires_grad_() for k, v in conv.named_parameters()}

    def loss(params, buffers):
        return F.cross_entropy(functional_call(conv, (params, buffers), (x,)), y)

    def buffers():
        return {k: v.clone() for k, v in conv.named_buffers()}

    by_dict = torch.autograd.grad(loss(theta, buffers()), list(theta.values()))
    by_func = grad(loss)({k: v.detach() for k, v in theta.items()}, buffers())

    conv.zero_grad()
    F.cross_entropy(conv(x), y).backward()  # the oracle: autograd on the module
    for (name, p), g in zip(conv.named_parameters(), by_dict):
        assert torch.allclose(g, p.grad, atol=1e-6), name
        assert torch.allclose(by_func[name], p.grad, atol=1e-6), name


def test_mlp_grad_matches_autograd():
    """checks the same oracle on the MLP with an MSE loss (sinusoid-regression shape)."""
    torch.manual_seed(0)
    model = MLP(1)
    x, y = torch.rand(8, 1), torch.rand(8, 1)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    g = grad(lambda p: F.mse_loss(functional_call(model, p, (x,)), y))(theta)
    F.mse_loss(model(x), y).backward()
    for name, p in model.named_parameters():
        assert torch.allclose(g[name], p.grad, atol=1e-6), name


def test_convnet_is_channels_last_except_for_maml():
    """checks the layout the speed-up rests on: a ConvNet's conv weights and feature maps are
    channels-last, MAML's batch-statistics net keeps NCHW (its second-order step is slower
    otherwise), and the features equal those of the same weights laid out NCHW."""
    import torch

    from course_lib.models import ConvNet

    torch.manual_seed(0)
    net, maml_net = ConvNet(5, width=8).eval(), ConvNet(5, width=8, batch_stats=True)
    conv = net.blocks[1][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert maml_net.blocks[1][0].weight.is_contiguous()
    x = torch.rand(3, 1, 28, 28)
    assert net.blocks[:2](x).is_contiguous(memory_format=torch.channels_last)
    nchw = ConvNet(5, width=8).to(memory_format=torch.contiguous_format).eval()
    nchw.load_state_dict(net.state_dict())
    torch.testing.assert_close(net.features(x), nchw.features(x), rtol=1e-5, atol=1e-6)


def test_conv_block_pools_before_relu_with_the_same_function_and_gradients():
    """checks a block is conv → batch norm → ReLU → 2×2 max-pool bit for bit: the modules pool
    first (cheaper), and outputs and gradients equal the literature's order, for the
    channels-last net (training and eval mode) and for MAML's batch-statistics net."""
    import torch
    import torch.nn.functional as F

    from course_lib.models import ConvNet

    def literature_order(net, x):   # written out: conv, batch norm, ReLU, then pool
        for block in net.blocks:
            conv, bn = block[0], block[1]
            x = F.max_pool2d(F.relu(bn(conv(x))), 2)
        return net.head(x.flatten(1))

    assert [type(m).__name__ for m in ConvNet(5).blocks[0]] == ["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"]
    torch.manual_seed(0)
    x, y = torch.randn(12, 1, 28, 28), torch.randint(0, 5, (12,))
    for batch_stats in (False, True):
        for train in (True, False):
            net = ConvNet(5, width=8, batch_stats=batch_stats)
            net(x)             # (in training mode: running statistics other than the initial ones)
            net.train(train)
            grads = []
            for forward in (net, lambda x: literature_order(net, x)):
                out = forward(x)
                grads.append((out, torch.autograd.grad(F.cross_entropy(out, y), list(net.parameters()))))
            (a, ga), (b, gb) = grads
            assert torch.equal(a, b)
            assert all(torch.equal(p, q) for p, q in zip(ga, gb))
