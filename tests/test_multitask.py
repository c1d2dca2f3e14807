"""Multi-task learning: task sets, the sharing switches, weighting, gradient surgery, training."""
import pytest
import torch

from course_lib import multitask as mt
from course_lib.data import ImageSet


def fake_images(n_per_class: int = 30, seed: int = 0) -> ImageSet:
    """10 classes of random 28×28 images; class k has its pixels 20k … 20k + 19 bright."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(10).repeat_interleave(n_per_class)
    x = 0.1 * torch.rand(len(y), 1, 28, 28, generator=g)
    for k in range(10):
        x.view(len(y), -1)[y == k, 20 * k: 20 * k + 20] = 1.0
    return ImageSet(x, y, 10, "fake")


def tiny_tasks(tasks: int = 2, per_class: int = 10) -> list[mt.Task]:
    data = (fake_images(), fake_images(seed=1))
    return mt.relabelled_tasks(data, tasks=tasks, per_class=per_class, test_size=100)


# ---------------------------------------------------------------------------- task sets
def test_split_tasks_are_four_5_way_tasks_with_relabelled_classes():
    """checks the four tasks' names, sizes and labels 0…4 on both halves of each data set."""
    data = (fake_images(), fake_images(seed=1))
    tasks = mt.split_tasks(data, data, per_class=7, test_per_class=5)
    assert [t.name for t in tasks] == ["digits 0-4", "digits 5-9", "clothes 0-4", "clothes 5-9"]
    for t in tasks:
        assert t.train_x.shape == (35, 784) and t.test_x.shape == (25, 784)
        assert sorted(t.train_y.unique().tolist()) == [0, 1, 2, 3, 4]
    # label k of "digits 5-9" is the digit 5 + k: its bright pixel sits at (5 + k) · 20
    t = tasks[1]
    assert torch.equal(t.train_x.argmax(1), (t.train_y + 5) * 20)


def test_relabelled_tasks_share_inputs_and_permute_labels():
    """checks that each task's labels are a permutation πᵢ of the digit, consistent on test data."""
    tasks = tiny_tasks(tasks=3)
    codes = []
    for t in tasks:
        digit = t.train_x.argmax(1) // 20
        pi = torch.full((10,), -1)
        pi[digit] = t.train_y
        assert sorted(pi.tolist()) == list(range(10))           # a permutation
        assert torch.equal(pi[t.test_x.argmax(1) // 20], t.test_y)  # the same code on test data
        codes.append(pi)
    assert not torch.equal(codes[0], codes[1])


def test_too_many_images_per_class_is_a_clear_error():
    """checks that asking for more images than a class has names the class and the count."""
    with pytest.raises(ValueError, match="has only 30 images"):
        mt.relabelled_tasks((fake_images(), fake_images()), tasks=1, per_class=31)


def test_ink_task_targets_are_pixel_sums():
    """checks that the regression target is the sum of the pixel values."""
    data = (fake_images(), fake_images(seed=1))
    t = mt.ink_task(data, size=50, test_size=20)
    assert t.kind == "regression" and t.train_y.shape == (50, 1)
    assert torch.allclose(t.train_y[:, 0], t.train_x.sum(1))


# ---------------------------------------------------------------------------- the network
@pytest.mark.parametrize("shared,condition", [((True, True, False), None),
                                              ((False, False, False), None),
                                              ((False, True, False), None),
                                              ((True, True, True), "concat"),
                                              ((True, True, True), "gating")])
def test_network_shapes_and_which_parameters_a_task_reaches(shared, condition):
    """checks output shapes, and that task 0's loss reaches the shared layers and no private
    layer of task 1."""
    torch.manual_seed(0)
    model = mt.MultiTaskMLP(784, 16, [5, 5], shared, condition)
    x = torch.rand(4, 784)
    assert model(x, 0).shape == (4, 5) and model(x, 1).shape == (4, 5)
    model(x, 0).sum().backward()
    for l, layer in enumerate(model.layers):
        if shared[l]:
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
        else:
            assert layer[0].weight.grad.abs().sum() > 0
            assert layer[1].weight.grad is None


@pytest.mark.parametrize("condition", ["concat", "gating"])
def test_conditioning_on_z_changes_the_output(condition):
    """checks that a fully shared network with conditioning answers differently per task."""
    torch.manual_seed(0)
    model = mt.MultiTaskMLP(784, 16, [5, 5, 5], (True, True, True), condition)
    x = torch.rand(3, 784)
    assert not torch.allclose(model(x, 0), model(x, 2))


def test_network_rejects_bad_configurations():
    """checks the errors for an unknown condition, a wrong shared tuple and unequal shared heads."""
    with pytest.raises(ValueError, match="condition"):
        mt.MultiTaskMLP(784, 8, [5, 5], condition="add")
    with pytest.raises(ValueError, match="one flag per layer"):
        mt.MultiTaskMLP(784, 8, [5, 5], shared=(True, False))
    with pytest.raises(ValueError, match="same number of classes"):
        mt.MultiTaskMLP(784, 8, [5, 10], shared=(True, True, True))
    with pytest.raises(ValueError, match="shares no layer"):
        mt.MultiTaskMLP(784, 8, [5, 5], shared=(False, False, False)).last_shared_weight()


def test_soft_tie_is_the_spread_of_the_copies():
    """checks Σᵢ ‖θᵢ − θ̄‖²: zero for identical copies, the hand value for two copies."""
    model = mt.MultiTaskMLP(3, 2, [2, 2], shared=(False, False, False))
    with torch.no_grad():
        for layer in model.layers:
            for p0, p1 in zip(layer[0].parameters(), layer[1].parameters()):
                p1.copy_(p0)
    assert mt.soft_tie(model).item() == pytest.approx(0.0)
    with torch.no_grad():
        model.layers[0][1].bias += torch.tensor([2.0, 0.0])  # copies differ by 2 in one entry
    # θ̄ sits halfway: two deviations of 1, squared and summed
    assert mt.soft_tie(model).item() == pytest.approx(2.0)


# ---------------------------------------------------------------------------- weighting
def test_weighted_loss_and_its_shape_check():
    """checks Σᵢ wᵢ ℒᵢ by hand and the error for a weight vector of the wrong length."""
    losses = torch.tensor([1.0, 2.0, 3.0])
    assert mt.weighted_loss(losses, torch.tensor([1.0, 0.5, 0.0])).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="one weight per task"):
        mt.weighted_loss(losses, torch.ones(2))


def test_uncertainty_weighting_value_and_minimiser():
    """checks the objective against its closed form and that sᵢ converges to log ℒᵢ."""
    weighting = mt.UncertaintyWeighting(2)
    with torch.no_grad():
        weighting.log_var.copy_(torch.tensor([0.0, 1.0]))
    losses = torch.tensor([4.0, 0.5])
    expected = 0.5 * 4.0 + 0.0 + 0.5 * torch.exp(torch.tensor(-1.0)) * 0.5 + 0.5
    assert weighting(losses).item() == pytest.approx(expected.item())
    optimizer = torch.optim.Adam(weighting.parameters(), lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        weighting(losses).backward()
        optimizer.step()
    assert torch.allclose(weighting.log_var.detach(), losses.log(), atol=1e-2)
    assert torch.allclose(weighting.weights(), 0.5 / losses, rtol=1e-2)


def test_pcgrad_by_hand():
    """checks a conflicting 2-d pair projected by hand, and a non-conflicting pair left alone."""
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # g₁·g₂ = −1 < 0
    # g₁ − (−1/2) g₂ = (0.5, 0.5); g₂ − (−1/1) g₁ = (0, 1)
    assert torch.allclose(mt.pcgrad(g), torch.tensor([0.5, 1.5]))
    agree = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(mt.pcgrad(agree), agree.sum(0))


def test_pcgrad_removes_conflicts_between_two_tasks():
    """checks that for T = 2 each projected gradient no longer conflicts with the other's original."""
    torch.manual_seed(0)
    for _ in range(20):
        g = torch.randn(2, 6)
        total = mt.pcgrad(g)
        g1 = g[0] - min(0.0, (g[0] @ g[1]).item()) / g[1].pow(2).sum() * g[1]
        assert g1 @ g[1] >= -1e-5
        assert torch.allclose(total - g1, g[1] - min(0.0, (g[1] @ g[0]).item()) / g[0].pow(2).sum() * g[0],
                              atol=1e-5)
    with pytest.raises(ValueError, match="flattened"):
        mt.pcgrad(torch.randn(6))


def test_gradnorm_lowers_the_weight_of_the_task_with_the_larger_gradient():
    """checks that weights stay positive, sum to T, and move towards equal gradient norms."""
    W = torch.ones(3, requires_grad=True)
    losses = torch.stack([(10 * W).sum(), W.sum()])  # ‖∇_W ℒ₁‖ is ten times ‖∇_W ℒ₂‖
    gradnorm = mt.GradNorm(2)
    gradnorm.update(losses, W)
    w = gradnorm.weights()
    assert w.sum().item() == pytest.approx(2.0) and (w > 0).all()
    assert w[0] < w[1]


# ---------------------------------------------------------------------------- training
def test_training_is_deterministic_and_learns():
    """checks that a seeded run repeats exactly and beats chance on the easy fake tasks."""
    tasks = tiny_tasks()
    a = mt.run(tasks, 16, 60)[1]
    b = mt.run(tasks, 16, 60)[1]
    assert a.loss == b.loss and a.score == b.score
    assert mt.mean_accuracy(a, tasks) > 0.5
    assert sum(a.loss[-1]) < sum(a.loss[0])


def test_pcgrad_with_one_task_is_plain_training():
    """checks that with a single task gradient surgery changes nothing (no other task)."""
    tasks = tiny_tasks(tasks=1)
    plain = mt.run(tasks, 8, 20)[1]
    surgery = mt.run(tasks, 8, 20, weighting="pcgrad")[1]
    assert torch.allclose(torch.tensor(plain.loss), torch.tensor(surgery.loss), atol=1e-5)


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm", "pcgrad"])
def test_every_weighting_trains(weighting):
    """checks that each weighting records T weights per step and learns the fake tasks."""
    tasks = tiny_tasks()
    history = mt.run(tasks, 16, 60, weighting=weighting, eval_every=20)[1]
    assert history.eval_step == [20, 40, 60] and len(history.weights) == 60
    assert all(len(w) == 2 for w in history.weights)
    assert mt.mean_accuracy(history, tasks) > 0.5


def test_fixed_weights_of_zero_ignore_a_task():
    """checks that a zero weight leaves the ignored task's private head untouched."""
    tasks = tiny_tasks()
    torch.manual_seed(0)
    model = mt.MultiTaskMLP(784, 8, [10, 10])
    before = model.layers[2][1].weight.detach().clone()
    mt.train_multitask(model, tasks, 10, weighting=torch.tensor([1.0, 0.0]), progress=False)
    assert torch.equal(model.layers[2][1].weight, before)


def test_unknown_weighting_is_an_error():
    """checks the message for a misspelt weighting."""
    with pytest.raises(ValueError, match="weighting must be"):
        mt.run(tiny_tasks(), 8, 1, weighting="pc-grad")
