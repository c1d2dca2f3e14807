"""Multi-task learning: task sets, the sharing switches, weighting, gradient surgery, training."""
import pytest
import torch

from course_lib import multitask as mt
from toys import fake_images


def tiny_tasks(tasks: int = 2, per_class: int = 10) -> list[mt.Task]:
    data = (fake_images(30), fake_images(30, seed=1))
    return mt.relabelled_tasks(data, tasks=tasks, per_class=per_class, test_size=100)


# ---------------------------------------------------------------------------- task sets
def test_split_tasks_are_four_5_way_tasks_with_relabelled_classes():
    """checks the four tasks' names, sizes and labels 0…4 on both halves of each data set."""
    data = (fake_images(30), fake_images(30, seed=1))
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
        mt.relabelled_tasks((fake_images(30), fake_images(30)), tasks=1, per_class=31)


def test_ink_task_targets_are_pixel_sums():
    """checks that the regression target is the sum of the pixel values."""
    data = (fake_images(30), fake_images(30, seed=1))
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
    """checks that the weights move towards equal gradient norms — by hand: Adam's first step
    moves each wᵢ by lr against the sign of ∂L_grad/∂wᵢ, so w = (1 − lr, 1 + lr) — and that a
    step long enough to push w₁ below zero is clamped (to 10⁻³) before renormalising to Σ w = T."""
    W = torch.ones(3, requires_grad=True)
    losses = torch.stack([(10 * W).sum(), W.sum()])  # ‖∇_W ℒ₁‖ is ten times ‖∇_W ℒ₂‖
    gradnorm = mt.GradNorm(2)
    gradnorm.update(losses, W)
    w = gradnorm.weights()
    assert w.tolist() == pytest.approx([1 - 0.025, 1 + 0.025], abs=1e-6)
    assert w[0] < w[1]
    long_step = mt.GradNorm(2, lr=5.0)  # w = (1 − 5, 1 + 5) = (−4, 6) before the clamp
    long_step.update(losses, W)
    w = long_step.weights()
    assert w.sum().item() == pytest.approx(2.0) and (w > 0).all()
    assert w.tolist() == pytest.approx([2 * 1e-3 / 6.001, 2 * 6 / 6.001], rel=1e-5)


# ---------------------------------------------------------------------------- step gradients
def step_inputs(tie: float = 0.1):
    """θ, the losses ℒᵢ (3,) of one batch per task, and a soft-sharing penalty (of the heads) of a
    small hard-sharing network whose task gradients conflict."""
    torch.manual_seed(0)
    model = mt.MultiTaskMLP(784, 8, [10, 10, 10])
    losses = mt.batch_losses(model, tiny_tasks(tasks=3), 16, torch.Generator().manual_seed(0))
    return model, list(model.parameters()), losses, tie * mt.soft_tie(model)


def backward_grad(objective: torch.Tensor, theta: list) -> torch.Tensor:
    """∇_θ objective by .backward(), flattened: (P,) — independent of gradients.flat_grad."""
    for p in theta:
        p.grad = None
    objective.backward(retain_graph=True)
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in theta])


def per_task_grads(losses: torch.Tensor, theta: list) -> torch.Tensor:
    """∇_θ ℒᵢ for every task, shape (T, P)."""
    return torch.stack([backward_grad(loss, theta) for loss in losses])


def test_uniform_step_is_the_gradient_of_the_summed_losses():
    """checks ∇_θ (Σᵢ ℒᵢ + penalty) against backward, and wᵢ = 1."""
    _, theta, losses, penalty = step_inputs()
    gradient, weights = mt.uniform_step(losses, theta, penalty)
    assert gradient.shape == (sum(p.numel() for p in theta),)
    assert torch.allclose(gradient, backward_grad(losses.sum() + penalty, theta), atol=1e-6)
    assert torch.equal(weights, torch.ones(3))


def test_fixed_weights_step_is_the_weighted_sum_of_task_gradients():
    """checks Σᵢ wᵢ ∇ℒᵢ + ∇penalty for hand-picked w, including a zero weight."""
    _, theta, losses, penalty = step_inputs()
    w = torch.tensor([2.0, 0.0, 0.5])
    gradient, weights = mt.FixedWeightsStep(w)(losses, theta, penalty)
    expected = w @ per_task_grads(losses, theta) + backward_grad(penalty, theta)
    assert torch.allclose(gradient, expected, atol=1e-6)
    assert torch.equal(weights, w)


def test_uncertainty_step_weights_by_half_exp_minus_s_and_moves_s():
    """checks the gradient ½ exp(−sᵢ) ∇ℒᵢ at s = 0, and that Adam's first step on sᵢ has the
    sign of ∂/∂sᵢ = ½ (1 − ℒᵢ) reversed."""
    _, theta, losses, penalty = step_inputs()
    step = mt.UncertaintyStep(3, lr=0.1)
    gradient, weights = step(losses, theta, penalty)
    assert torch.equal(weights, torch.full((3,), 0.5))
    expected = 0.5 * per_task_grads(losses, theta).sum(0) + backward_grad(penalty, theta)
    assert torch.allclose(gradient, expected, atol=1e-6)
    s = step.weighting.log_var.detach()
    assert torch.allclose(s, 0.1 * torch.sign(losses.detach() - 1), atol=1e-4)


def test_gradnorm_step_updates_the_weights_then_uses_them():
    """checks that the weights move off 1, sum to T, and weight the task gradients."""
    model, theta, losses, penalty = step_inputs()
    step = mt.GradNormStep(3, model.last_shared_weight())
    gradient, weights = step(losses, theta, penalty)
    assert not torch.equal(weights, torch.ones(3)) and weights.sum().item() == pytest.approx(3.0)
    assert torch.equal(weights, step.gradnorm.weights())
    expected = weights @ per_task_grads(losses, theta) + backward_grad(penalty, theta)
    assert torch.allclose(gradient, expected, atol=1e-6)


@pytest.mark.parametrize("tie", [0.0, 0.1])
def test_pcgrad_step_is_pcgrad_of_the_task_gradients(tie):
    """checks pcgrad(∇ℒ₁…∇ℒ_T) + ∇penalty with the same task order, with and without a penalty,
    on task gradients that conflict (so surgery changes their sum)."""
    _, theta, losses, penalty = step_inputs(tie)
    gradient, weights = mt.PCGradStep(torch.Generator().manual_seed(4))(losses, theta, penalty)
    grads = per_task_grads(losses, theta)
    assert (grads @ grads.T < 0).any()
    expected = mt.pcgrad(grads, torch.Generator().manual_seed(4))
    assert not torch.allclose(expected, grads.sum(0), atol=1e-4)
    if tie:
        expected = expected + backward_grad(penalty, theta)
    assert torch.allclose(gradient, expected, atol=1e-6)
    assert torch.equal(weights, torch.ones(3))


def test_min_norm_weights_by_hand():
    """checks MGDA's α on two tasks worked by hand: orthogonal unit gradients weigh equally;
    ‖g₁‖ = 2, ‖g₂‖ = 1 orthogonal: min 4a² + (1 − a)² at a = 0.2; a gradient that is a multiple
    of the other gets all the weight if it is the shorter one."""
    assert torch.allclose(mt.min_norm_weights(torch.eye(2)), torch.tensor([0.5, 0.5]))
    assert torch.allclose(mt.min_norm_weights(torch.tensor([[2.0, 0.0], [0.0, 1.0]])),
                          torch.tensor([0.2, 0.8]), atol=1e-6)
    assert torch.allclose(mt.min_norm_weights(torch.tensor([[1.0, 1.0], [3.0, 3.0]])),
                          torch.tensor([1.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match="flattened"):
        mt.min_norm_weights(torch.randn(6))


def test_min_norm_point_satisfies_its_optimality_conditions():
    """checks on random gradients (T = 5) that d = Σ αᵢ gᵢ is the min-norm point of the hull:
    α on the simplex, d·gᵢ ≥ ‖d‖² for every task, with equality where αᵢ is not ~0; and no random
    point of the simplex is shorter."""
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(5, 20, generator=g, dtype=torch.float64) + 0.5
    alpha = mt.min_norm_weights(grads, iters=2000)
    d = alpha @ grads
    assert (alpha >= 0).all() and alpha.sum().item() == pytest.approx(1.0)
    assert (grads @ d >= d @ d - 1e-3 * (d @ d)).all()
    assert torch.allclose((grads @ d)[alpha > 1e-2], d @ d, rtol=1e-2)   # Frank–Wolfe leaves ~0.002 behind
    others = torch.distributions.Dirichlet(torch.ones(5, dtype=torch.float64)).sample((500,))
    assert ((others @ grads).norm(dim=1) >= d.norm() * (1 - 1e-6)).all()


@pytest.mark.parametrize("tie", [0.0, 0.1])
def test_mgda_step_combines_the_task_gradients_with_min_norm_weights(tie):
    """checks MGDAStep: w = T·min_norm_weights(∇ℒ₁…∇ℒ_T), gradient Σ wᵢ∇ℒᵢ + ∇penalty."""
    _, theta, losses, penalty = step_inputs(tie)
    gradient, weights = mt.MGDAStep()(losses, theta, penalty)
    grads = per_task_grads(losses, theta)
    assert torch.allclose(weights, 3 * mt.min_norm_weights(grads), atol=1e-6)
    assert weights.sum().item() == pytest.approx(3.0)
    expected = weights @ grads + (backward_grad(penalty, theta) if tie else 0)
    assert torch.allclose(gradient, expected, atol=1e-6)


def test_weighting_method_maps_every_public_value():
    """checks the method behind each weighting= value, and the error for anything else."""
    model, *_ = step_inputs()
    g = torch.Generator()
    assert mt.weighting_method("uniform", model, 3) is mt.uniform_step
    fixed = mt.weighting_method(torch.tensor([1, 2, 3]), model, 3)
    assert isinstance(fixed, mt.FixedWeightsStep) and fixed.weights.dtype == torch.float32
    assert isinstance(mt.weighting_method("uncertainty", model, 3), mt.UncertaintyStep)
    assert isinstance(mt.weighting_method("gradnorm", model, 3), mt.GradNormStep)
    assert mt.weighting_method("pcgrad", model, 3, g).generator is g
    assert isinstance(mt.weighting_method("mgda", model, 3), mt.MGDAStep)
    for bad in ("pc-grad", [1.0, 1.0, 1.0], None):
        with pytest.raises(ValueError, match="weighting must be"):
            mt.weighting_method(bad, model, 3)


def test_one_training_step_follows_the_step_gradient():
    """checks that train_multitask hands the method's gradient to Adam: its first step moves each
    parameter by −lr · sign(g) where g is not tiny."""
    tasks = tiny_tasks()
    torch.manual_seed(0)
    model = mt.MultiTaskMLP(784, 8, [10, 10])
    theta = list(model.parameters())
    before = torch.cat([p.detach().flatten() for p in theta])
    losses = mt.batch_losses(model, tasks, 32, torch.Generator().manual_seed(0))
    gradient, _ = mt.uniform_step(losses, theta, torch.zeros(()))
    mt.train_multitask(model, tasks, 1, lr=1e-3, progress=False)
    moved = torch.cat([p.detach().flatten() for p in theta]) - before
    big = gradient.abs() > 1e-4
    assert big.sum() > 100
    assert torch.allclose(moved[big], -1e-3 * gradient[big].sign(), rtol=1e-2)


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
