"""MAML's inner loop against hand-unrolled autograd, closed forms and properties."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from course_lib import maml
from course_lib.episodes import Episode
from course_lib.maml import (TaskBatch, adaptation_curve, inner_loop, meta_loss,
                             meta_loss_batched, meta_train, parameters_of, stack_episodes,
                             task_loss)
from course_lib.models import MLP, ConvNet
from course_lib.regression import SinusoidSampler, sinusoid


def unrolled(model, theta, x, y, alpha, steps, first_order, loss_fn):
    """Oracle: the inner loop written with torch.autograd.grad (create_graph for 2nd order)."""
    phi = dict(theta)
    for _ in range(steps):
        g = torch.autograd.grad(task_loss(model, phi, x, y, loss_fn), list(phi.values()),
                                create_graph=not first_order)
        phi = {k: v - alpha * (gk.detach() if first_order else gk)
               for (k, v), gk in zip(phi.items(), g)}
    return phi


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_unrolled_autograd(first_order):
    """checks that ∇θ ℒ(φ, 𝒟ᵗˢ) through inner_loop equals the hand-unrolled oracle."""
    torch.manual_seed(0)
    model = MLP(1, (8, 8), 1)
    theta = parameters_of(model)
    x, y, xq, yq = (torch.randn(6, 1) for _ in range(4))
    grads = []
    for fn in (inner_loop, unrolled):
        phi = fn(model, theta, x, y, 0.1, 3, first_order, F.mse_loss)
        loss = task_loss(model, phi, xq, yq, F.mse_loss)
        grads.append(torch.autograd.grad(loss, list(theta.values())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_linear_regression_closed_form():
    """checks one inner step on y = w·x (MSE) against the closed form, and the order gap.

    ℒ(w) = mean((w x − y)²): φ = w − α·2·mean(x(wx − y)); the second-order meta-gradient of
    the query loss is (1 − 2α·mean(x²)) times the first-order one.
    """
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    theta = parameters_of(model)
    x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [3.0]])
    xq, yq = torch.tensor([[3.0]]), torch.tensor([[4.0]])
    alpha = 0.05
    phi = inner_loop(model, theta, x, y, alpha, 1, False, F.mse_loss)
    w = 0.5
    expected_phi = w - alpha * 2 * ((x * (w * x - y)).mean())
    torch.testing.assert_close(phi["weight"].reshape(()), expected_phi)
    g2 = torch.autograd.grad(task_loss(model, phi, xq, yq, F.mse_loss), theta["weight"])[0]
    phi1 = inner_loop(model, theta, x, y, alpha, 1, True, F.mse_loss)
    g1 = torch.autograd.grad(task_loss(model, phi1, xq, yq, F.mse_loss), theta["weight"])[0]
    torch.testing.assert_close(g2, g1 * (1 - 2 * alpha * (x ** 2).mean()))


def test_per_parameter_alpha_and_zero_steps():
    """checks that a dict α scales each parameter's step, and 0 steps returns θ itself."""
    torch.manual_seed(0)
    model = MLP(1, (4,), 1)
    theta = parameters_of(model)
    x, y = torch.randn(5, 1), torch.randn(5, 1)
    assert inner_loop(model, theta, x, y, 0.1, 0) is theta
    alpha = {n: torch.zeros_like(p) for n, p in theta.items()}
    alpha["head.bias"] = torch.ones_like(theta["head.bias"])
    phi = inner_loop(model, theta, x, y, alpha, 1, True, F.mse_loss)
    for n in theta:
        changed = not torch.equal(phi[n], theta[n])
        assert changed == (n == "head.bias"), n


def test_inner_step_lowers_support_loss_on_convnet():
    """checks that one inner step with a small α lowers 𝒟ᵗʳ's loss (batch-statistics BN)."""
    torch.manual_seed(0)
    model = ConvNet(5, width=8, batch_stats=True)
    theta = parameters_of(model)
    x, y = torch.rand(10, 1, 28, 28), torch.arange(5).repeat(2)
    before = task_loss(model, theta, x, y).item()
    after = task_loss(model, inner_loop(model, theta, x, y, 0.1, 1), x, y).item()
    assert after < before


def test_bad_input_is_named():
    """checks the error for mismatched support sizes and negative steps."""
    model = MLP(1, (4,), 1)
    with pytest.raises(ValueError, match="support_y"):
        inner_loop(model, parameters_of(model), torch.randn(5, 1), torch.randn(4, 1), 0.1)
    with pytest.raises(ValueError, match="steps"):
        inner_loop(model, parameters_of(model), torch.randn(5, 1), torch.randn(5, 1), 0.1, -1)


def test_sinusoid_sampler():
    """checks shapes, ranges, y = A sin(x − φ) and determinism under the seed."""
    e = SinusoidSampler(shots=10, queries=7, seed=3).sample()
    assert e.support_x.shape == (10, 1) and e.query_x.shape == (7, 1)
    A, phase = e.classes
    assert 0.1 <= A <= 5 and 0 <= phase <= torch.pi
    assert e.support_x.abs().max() <= 5
    torch.testing.assert_close(e.support_y, sinusoid(e.classes, e.support_x))
    again = SinusoidSampler(shots=10, queries=7, seed=3).sample()
    assert torch.equal(e.support_x, again.support_x)
    with pytest.raises(ValueError):
        SinusoidSampler(shots=0)


@pytest.mark.slow
def test_maml_meta_training_improves_adaptation():
    """checks that 300 MAML steps on sinusoids lower the post-adaptation query MSE (≈0.6× here)."""
    torch.manual_seed(0)
    model = MLP(1, (40, 40), 1)
    sampler = SinusoidSampler(seed=0)
    test = SinusoidSampler(seed=99).batch(50)
    before = adaptation_curve(model, parameters_of(model), test, 0.01, 1)[1][0]
    history, alpha = meta_train(model, sampler, 300, alpha=0.01, beta=1e-3, meta_batch=10,
                                loss_fn=F.mse_loss, progress=False)
    after = adaptation_curve(model, parameters_of(model), test, alpha, 1)[1][0]
    assert after < 0.7 * before
    assert len(history.loss) == 300


def test_meta_sgd_learns_alpha():
    """checks that learn_alpha returns a per-parameter α that moved from its start."""
    torch.manual_seed(0)
    model = MLP(1, (8,), 1)
    _, alpha = meta_train(model, SinusoidSampler(seed=0), 5, alpha=0.01, meta_batch=4,
                          learn_alpha=True, loss_fn=F.mse_loss, progress=False)
    assert set(alpha) == set(parameters_of(model))
    assert any(not torch.allclose(a, torch.full_like(a, 0.01)) for a in alpha.values())
    assert all(not a.requires_grad for a in alpha.values())


def test_meta_loss_is_mean_over_tasks():
    """checks meta_loss against the average of per-task query losses."""
    torch.manual_seed(0)
    model = MLP(1, (4,), 1)
    theta = parameters_of(model)
    episodes = SinusoidSampler(seed=1).batch(3)
    each = [task_loss(model, inner_loop(model, theta, e.support_x, e.support_y, 0.01, 1,
                                        loss_fn=F.mse_loss), e.query_x, e.query_y, F.mse_loss)
            for e in episodes]
    torch.testing.assert_close(meta_loss(model, theta, episodes, 0.01, 1, loss_fn=F.mse_loss),
                               torch.stack(each).mean())


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("net", ["convnet", "mlp"])
def test_batched_meta_loss_equals_the_task_loop(first_order, net):
    """checks that meta_loss_batched (all tasks in one call) gives meta_loss's value and ∇θ."""
    torch.manual_seed(0)
    if net == "convnet":
        model = ConvNet(3, width=4, batch_stats=True)
        episodes = [Episode(torch.randn(3, 1, 28, 28), torch.arange(3), torch.randn(6, 1, 28, 28),
                            torch.arange(3).repeat(2), torch.arange(3)) for _ in range(4)]
        loss_fn, alpha = F.cross_entropy, 0.4
    else:
        model = MLP(1, (8, 8), 1)
        episodes = SinusoidSampler(shots=5, queries=7, seed=0).batch(4)
        loss_fn = F.mse_loss
        alpha = {n: torch.rand_like(p) / 50 for n, p in model.named_parameters()}  # Meta-SGD
    theta = parameters_of(model)
    results = []
    for fn in (meta_loss, meta_loss_batched):
        loss = fn(model, theta, episodes, alpha, 2, first_order, loss_fn)
        results.append((loss, torch.autograd.grad(loss, list(theta.values()))))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_task_batch_rejects_running_statistics_and_ragged_batches():
    """checks the errors for a ConvNet with running BN statistics and unequal episodes."""
    with pytest.raises(ValueError, match="batch_stats=True"):
        TaskBatch(ConvNet(3, width=4))
    episodes = SinusoidSampler(shots=5, queries=5, seed=0).batch(1)
    episodes += SinusoidSampler(shots=4, queries=5, seed=0).batch(1)
    with pytest.raises(ValueError, match="one size"):
        stack_episodes(episodes)


def tiny_images(classes: int = 8, per_class: int = 4, seed: int = 0):
    from course_lib.data import ImageSet
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(per_class)
    return ImageSet(torch.randn(len(y), 1, 28, 28, generator=g), y, classes, "tiny")


def test_omniglot_setting_trains_once_and_checks_its_settings(tmp_data):
    """checks that maml.omniglot trains, caches (a second call loads), and names bad settings."""
    from dataclasses import replace

    from course_lib.budget import get_budget

    budget = replace(get_budget("quick"), width=4)
    net, history, setting = maml.omniglot(tiny_images(), budget, steps=3, progress=False,
                                          meta_batch=2)
    assert len(history.loss) == 3 and setting["alpha"] == maml.OMNIGLOT["alpha"]
    again, loaded, _ = maml.omniglot(tiny_images(), budget, steps=3, progress=False, meta_batch=2)
    assert loaded.seconds == history.seconds
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(TypeError, match="alhpa"):
        maml.omniglot(tiny_images(), budget, steps=1, alhpa=0.1)


def test_accuracy_by_steps_equals_one_evaluation_per_step_count():
    """checks that adapting each episode once, step by step, gives exactly the accuracies of
    one maml.evaluate per number of inner steps on the same episodes."""
    from course_lib.episodes import EpisodeSampler
    from course_lib.maml import accuracy_by_steps, evaluate

    torch.manual_seed(0)
    net, images = ConvNet(3, width=4, batch_stats=True), tiny_images()
    sampler = lambda: EpisodeSampler(images, ways=3, shots=1, queries=2, seed=5)
    steps = [0, 1, 3]
    assert accuracy_by_steps(net, sampler(), 6, 0.4, steps) == [evaluate(net, sampler(), 6, 0.4, k) for k in steps]
    with pytest.raises(ValueError, match="≥ 0"):
        accuracy_by_steps(net, sampler(), 1, 0.4, [-1])


def test_learner_adapts_as_the_inner_loop_does():
    """checks that the test-time learner (weights copied channels-last for speed) predicts
    what the plain inner loop on θ gives: the same φ up to float rounding, NHWC weights."""
    from course_lib.episodes import EpisodeSampler

    torch.manual_seed(0)
    net = ConvNet(3, width=8, batch_stats=True)
    episode = EpisodeSampler(tiny_images(), ways=3, shots=2, queries=2, seed=1).sample()
    theta = {n: p.detach() for n, p in parameters_of(net).items()}
    phi = inner_loop(net, theta, episode.support_x, episode.support_y, 0.4, 3, first_order=True)
    with torch.no_grad():
        expected = functional_call(net, phi, (episode.query_x,))
    predicted = maml.learner(net, 0.4, steps=3)(episode.support_x, episode.support_y,
                                                 episode.query_x)
    assert torch.equal(predicted, expected.argmax(1))
    fast = maml._test_step(net, maml._test_layout(theta), episode.support_x, episode.support_y, 0.4)
    assert all(t.stride() == torch.empty(t.shape, memory_format=torch.channels_last).stride()
               for t in fast.values() if t.dim() == 4)
    slow = inner_loop(net, theta, episode.support_x, episode.support_y, 0.4, 1, first_order=True)
    assert all(torch.allclose(fast[n], slow[n], atol=1e-5) for n in slow)
