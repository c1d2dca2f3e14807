"""Continual learning: streams, reservoir memory, Fisher and EWC, metrics of R, La-MAML,
progressive networks and the sequential training loop."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import continual as cl
from toys import fake_images


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


# ---------------------------------------------------------------------------- streams
def test_permuted_mnist_task_0_is_the_identity_and_each_task_has_its_own_permutation():
    """checks that task 0 is unpermuted, and that task i moves class k's bright pixels by its own
    πᵢ, identically in training and test images."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.permuted_mnist(train, test, tasks=3, per_task=100, val_per_task=20,
                               test_per_task=50)
    assert stream.scenario == "domain" and len(stream) == 3
    assert torch.equal(stream.tasks[0].train_x.argmax(1) // 20, stream.tasks[0].train_y)
    bright = []
    for t in stream.tasks:
        assert t.train_x.shape == (100, 784) and t.val_x.shape == (20, 784)
        assert t.test_x.shape == (50, 784) and t.classes == tuple(range(10))
        pixels = {}
        for x, y in [(t.train_x, t.train_y), (t.test_x, t.test_y)]:
            for xi, yi in zip(x, y):  # the set of bright pixels of a class is the same everywhere
                where = frozenset((xi > 0.5).nonzero().flatten().tolist())
                assert pixels.setdefault(yi.item(), where) == where
        bright.append(pixels)
    assert bright[1] != bright[0] and bright[2] != bright[1]


def test_split_mnist_has_five_two_digit_tasks_and_task_masks_only_when_task_incremental():
    """checks the tasks' digits, and that only the task-incremental stream masks logits."""
    train, test = fake_images(), fake_images(20, seed=1)
    task_inc = cl.split_mnist(train, test, "task", per_class=30, val_per_class=5, test_per_class=10)
    class_inc = cl.split_mnist(train, test, "class", per_class=30, val_per_class=5,
                               test_per_class=10)
    assert [t.classes for t in task_inc.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for i, t in enumerate(task_inc.tasks):
        assert t.train_x.shape == (60, 784) and sorted(t.train_y.unique().tolist()) == [2 * i, 2 * i + 1]
    masks = task_inc.masks()
    assert masks.sum(1).tolist() == [2] * 5 and masks[2, 4] and masks[2, 5] and not masks[2, 6]
    assert class_inc.masks().all()
    logits = torch.randn(3, 10)
    assert torch.equal(class_inc.mask(logits, 2), logits)
    masked = task_inc.mask(logits, 2)
    assert torch.isinf(masked[:, [0, 1, 2, 3, 6, 7, 8, 9]]).all()
    # the masked cross-entropy is the cross-entropy of the task's two logits
    y = torch.tensor([4, 5, 5])
    assert torch.allclose(task_inc.loss(logits, y, 2), F.cross_entropy(logits[:, 4:6], y - 4))
    # per-example task ids
    ids = torch.tensor([0, 2, 4])
    m = task_inc.mask(logits, ids)
    assert torch.isfinite(m[0, :2]).all() and torch.isfinite(m[2, 8:]).all() and torch.isinf(m[1, 0])


def test_streams_reject_bad_arguments():
    """checks the errors for an unknown scenario, too many images and no tasks."""
    train, test = fake_images(), fake_images(20, seed=1)
    with pytest.raises(ValueError, match="task'- or 'class'-incremental"):
        cl.split_mnist(train, test, "domain")
    with pytest.raises(ValueError, match="asked for 82 images of fake but only 80"):
        cl.split_mnist(train, test, "task", per_class=41, val_per_class=0, test_per_class=5)
    with pytest.raises(ValueError, match="scenario must be one of"):
        cl.Stream([], "online")
    with pytest.raises(ValueError, match="tasks must be ≥ 1"):
        cl.permuted_mnist(train, test, tasks=0)


# ---------------------------------------------------------------------------- reservoir
def inclusion_counts(capacity: int, n: int, runs: int, keep_last: bool = False) -> torch.Tensor:
    """How often each of n stream items ends in the memory, over ``runs`` seeded runs."""
    counts = torch.zeros(n)
    items = torch.arange(n)
    for seed in range(runs):
        if keep_last:  # a broken memory (FIFO) to check that the test can fail
            counts[items[-capacity:]] += 1
            continue
        memory = cl.ReservoirBuffer(capacity, seed=seed)
        memory.add(items[:, None].float(), items)
        counts[memory.y] += 1
    return counts


def chi_square(counts: torch.Tensor, p: float, runs: int) -> float:
    expected = runs * p
    return ((counts - expected) ** 2 / (expected * (1 - p))).sum().item()


def test_reservoir_keeps_every_item_with_probability_capacity_over_n():
    """checks uniform inclusion (capacity/n) by a chi-square bound over 400 seeded runs, and
    that a FIFO memory fails the same bound."""
    capacity, n, runs = 10, 40, 400
    counts = inclusion_counts(capacity, n, runs)
    assert counts.sum() == capacity * runs
    # Σ (cᵢ − runs·p)² / (runs·p(1−p)) is about χ² with ≈ n − 1 = 39 degrees of freedom; P(χ²₃₉ > 85) < 1e-4
    assert chi_square(counts, capacity / n, runs) < 85
    sigma = (runs * 0.25 * 0.75) ** 0.5
    assert (counts - runs * 0.25).abs().max() < 5 * sigma
    assert chi_square(inclusion_counts(capacity, n, runs, keep_last=True), capacity / n, runs) > 85


def test_reservoir_fills_in_order_then_stays_full_and_samples_with_task_ids():
    """checks that the first `capacity` items are stored as they come, the size stays at the
    capacity, samples carry shapes and task ids, and the per-task counts add up."""
    memory = cl.ReservoirBuffer(5, seed=0)
    memory.add(torch.arange(3.0)[:, None], torch.arange(3), task=0)
    assert len(memory) == 3 and memory.y[:3].tolist() == [0, 1, 2]
    memory.add(torch.arange(3.0, 20.0)[:, None], torch.arange(3, 20), task=torch.ones(17, dtype=torch.long))
    assert len(memory) == 5 and memory.seen == 20
    assert torch.equal(memory.x[:, 0].long(), memory.y)  # x and y stay together
    x, y, task = memory.sample(7)
    assert x.shape == (7, 1) and y.shape == (7,) and task.shape == (7,)
    assert torch.equal(task, (y >= 3).long())
    assert sum(memory.counts(2)) == 5


def test_reservoir_errors():
    """checks the errors for no capacity, an empty memory and mismatched x and y."""
    with pytest.raises(ValueError, match="capacity must be ≥ 1"):
        cl.ReservoirBuffer(0)
    memory = cl.ReservoirBuffer(3)
    with pytest.raises(ValueError, match="memory is empty"):
        memory.sample(1)
    with pytest.raises(ValueError, match="x has 2 items but y has 3"):
        memory.add(torch.zeros(2, 1), torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------------------- Fisher and EWC
def hand_fisher(model: nn.Module, x, y, mask=None) -> dict:
    """(1/n) Σₙ (∂ log p(yₙ|xₙ) / ∂θ)², one autograd call per example."""
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for xi, yi in zip(x, y):
        logits = model(xi[None])[0]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        log_p = torch.log_softmax(logits, 0)[yi]
        grads = torch.autograd.grad(log_p, list(model.parameters()))
        for (n, _), g in zip(model.named_parameters(), grads):
            out[n] += g ** 2 / len(x)
    return out


def test_empirical_fisher_matches_per_example_autograd():
    """checks F_k against squared per-example gradients computed one example at a time."""
    model = tiny_model()
    x, y = torch.randn(7, 4), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    fisher = cl.diagonal_fisher(model, x, y, batch_size=3)
    hand = hand_fisher(model, x, y)
    assert set(fisher) == set(hand)
    for n in hand:
        assert torch.allclose(fisher[n], hand[n], atol=1e-6)
    # not the square of the mean gradient
    assert not torch.allclose(fisher["2.bias"], torch.autograd.grad(
        torch.log_softmax(model(x), 1)[torch.arange(7), y].mean(), model[2].bias)[0] ** 2)


def test_sampled_and_masked_fisher_match_autograd():
    """checks the sampled-label Fisher (labels drawn from p(y|x; θ) with the same generator)
    and the Fisher of a head mask against the hand computation."""
    model = tiny_model()
    x = torch.randn(6, 4)
    fisher = cl.diagonal_fisher(model, x, None, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = torch.multinomial(model(x).softmax(1), 1,
                              generator=torch.Generator().manual_seed(3))[:, 0]
    hand = hand_fisher(model, x, y)
    assert all(torch.allclose(fisher[n], hand[n], atol=1e-6) for n in hand)
    mask = torch.tensor([True, False, True])
    y = torch.tensor([0, 2, 2, 0, 0, 2])
    masked = cl.diagonal_fisher(model, x, y, mask)
    hand = hand_fisher(model, x, y, mask)
    assert all(torch.allclose(masked[n], hand[n], atol=1e-6) for n in hand)
    assert masked["2.weight"][1].abs().sum() == 0  # a masked logit's weights do not matter


def test_fisher_skips_frozen_parameters_and_checks_sizes():
    """checks that frozen parameters get no F entry and that x and y must match."""
    model = tiny_model()
    model[0].weight.requires_grad_(False)
    assert "0.weight" not in cl.diagonal_fisher(model, torch.randn(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="x has 3 examples but y has 2"):
        cl.diagonal_fisher(model, torch.randn(3, 4), torch.zeros(2, dtype=torch.long))


def test_ewc_penalty_closed_form_zero_at_theta_star_and_gradient():
    """checks (λ/2) Σ F (θ − θ*)² on numbers, zero at θ*, its gradient λ F (θ − θ*), and L2 = EWC
    with F = 1."""
    theta = {"w": torch.tensor([1.0, 2.0], requires_grad=True), "b": torch.tensor([0.5])}
    star = {"w": torch.zeros(2), "b": torch.tensor([1.5])}
    fisher = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([2.0])}
    value = cl.ewc_penalty(theta, star, fisher, lam=2.0)
    assert value.item() == pytest.approx(3 * 1 + 4 * 4 + 2 * 1)  # (2/2)·(3·1² + 4·2² + 2·1²)
    value.backward()
    assert torch.allclose(theta["w"].grad, 2.0 * fisher["w"] * theta["w"].detach())
    assert cl.ewc_penalty(star, star, fisher, lam=5.0).item() == 0
    assert cl.l2_penalty(theta, star, lam=2.0).item() == pytest.approx(1 + 4 + 1)


def test_ewc_penalty_errors():
    """checks the errors for mismatched names and shapes."""
    theta = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="must name the same parameters"):
        cl.ewc_penalty(theta, {"w": torch.zeros(2)}, {"v": torch.zeros(2)}, 1.0)
    with pytest.raises(ValueError, match="shape mismatch at 'w'"):
        cl.ewc_penalty(theta, {"w": torch.zeros(3)}, {"w": torch.zeros(3)}, 1.0)


# ---------------------------------------------------------------------------- metrics
R = torch.tensor([[0.9, 0.1, 0.2],
                  [0.6, 0.8, 0.3],
                  [0.5, 0.7, 0.9]])


def test_metrics_on_a_hand_made_accuracy_matrix():
    """checks ACC, BWT, FWT, forgetting and the last-task-only accuracy on a 3×3 R."""
    assert cl.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert cl.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert cl.forward_transfer(R, [0.1, 0.1, 0.1]) == pytest.approx(((0.1 - 0.1) + (0.3 - 0.1)) / 2)
    assert cl.forgetting(R) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert cl.last_task_only(R) == pytest.approx(0.3)
    perfect = torch.eye(3)  # learns each task, forgets it at once
    assert cl.backward_transfer(perfect) == -1 and cl.forgetting(perfect) == 1


def test_metrics_reject_bad_input():
    """checks the errors for a non-square R, a wrong b and a single task."""
    with pytest.raises(ValueError, match="R must be square"):
        cl.average_accuracy(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="R must be square"):
        cl.backward_transfer(torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        cl.forward_transfer(R, [0.1, 0.1])
    with pytest.raises(ValueError, match="at least 2 tasks"):
        cl.backward_transfer([[0.5]])


# ---------------------------------------------------------------------------- gradient alignment
def test_gradient_cosine_signs_and_value():
    """checks cos = 1 for the same loss, −1 for its negation, 0 without a gradient, and the
    value against a hand computation."""
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    a, b = (w * torch.tensor([1.0, 0.0])).sum(), (w * torch.tensor([1.0, 1.0])).sum()
    assert cl.gradient_cosine([w], a, a) == pytest.approx(1.0)
    assert cl.gradient_cosine([w], a, -a) == pytest.approx(-1.0)
    assert cl.gradient_cosine([w], a, b) == pytest.approx(1 / 2 ** 0.5)
    assert cl.gradient_cosine([w], a, torch.zeros(()) * w.sum()) == 0.0


# ---------------------------------------------------------------------------- La-MAML
def test_lamaml_update_clips_alpha_at_zero():
    """checks α ← α − η∇α first, then θ ← θ − max(α, 0)∇θ: parameters whose (new) α ≤ 0 stay."""
    theta = {"w": torch.tensor([1.0, 1.0, 1.0])}
    alpha = {"w": torch.tensor([0.5, -0.1, 0.05])}
    cl.lamaml_update(theta, alpha, {"w": torch.ones(3)}, {"w": torch.tensor([0.2, 0.0, 0.1])},
                     alpha_lr=1.0)
    assert torch.allclose(alpha["w"], torch.tensor([0.3, -0.1, -0.05]))
    assert torch.allclose(theta["w"], torch.tensor([0.7, 1.0, 1.0]))


def test_one_lookahead_step_equals_a_hand_sgd_step_and_reaches_alpha():
    """checks θ₁ = θ − max(α, 0)∇ℒ for one step, two chunked steps by hand, and the gradient in α
    of the meta-loss at the looked-ahead weights against autograd through the hand-written steps
    (second order: the second step's gradient depends on α through the first step)."""
    model = tiny_model()
    theta = dict(model.named_parameters())
    alpha = {n: torch.full_like(p, 0.3).requires_grad_() for n, p in theta.items()}
    alpha["0.bias"] = torch.full_like(theta["0.bias"], -0.2).requires_grad_()
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    phi = cl.lookahead(model, theta, alpha, x, y, 1, F.cross_entropy)
    g = torch.autograd.grad(F.cross_entropy(model(x), y), list(theta.values()))
    for (n, p), gn in zip(theta.items(), g):
        assert torch.allclose(phi[n], p - alpha[n].clamp(min=0) * gn, atol=1e-6)
    assert torch.equal(phi["0.bias"], theta["0.bias"])  # negative α: no move
    # two steps, one per half of the batch
    phi2 = cl.lookahead(model, theta, alpha, x, y, 2, F.cross_entropy)
    hand = {n: p.detach().clone().requires_grad_() for n, p in theta.items()}
    for half in (slice(0, 3), slice(3, 6)):
        loss = F.cross_entropy(torch.func.functional_call(model, hand, (x[half],)), y[half])
        gs = torch.autograd.grad(loss, list(hand.values()))
        hand = {n: (p - alpha[n].detach().clamp(min=0) * gn).detach().requires_grad_()
                for (n, p), gn in zip(hand.items(), gs)}
    assert all(torch.allclose(phi2[n], hand[n], atol=1e-6) for n in hand)
    meta = F.cross_entropy(torch.func.functional_call(model, phi2, (x,)), y)
    g_alpha = torch.autograd.grad(meta, alpha["2.weight"])[0]
    hand = dict(theta)  # the same two steps, kept differentiable in α
    for half in (slice(0, 3), slice(3, 6)):
        loss = F.cross_entropy(torch.func.functional_call(model, hand, (x[half],)), y[half])
        gs = torch.autograd.grad(loss, list(hand.values()), create_graph=True)
        hand = {n: p - alpha[n].clamp(min=0) * gn for (n, p), gn in zip(hand.items(), gs)}
    meta_hand = F.cross_entropy(torch.func.functional_call(model, hand, (x,)), y)
    oracle = torch.autograd.grad(meta_hand, alpha["2.weight"])[0]
    assert oracle.abs().max() > 1e-3 and torch.allclose(g_alpha, oracle, atol=1e-6)
    with pytest.raises(ValueError, match="inner_steps must be in 1…6"):
        cl.lookahead(model, theta, alpha, x, y, 7, F.cross_entropy)


def test_lamaml_method_does_not_move_parameters_with_negative_alpha():
    """checks that a full La-MAML update leaves the weights whose α < 0 untouched and moves
    the others."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.permuted_mnist(train, test, tasks=1, per_task=64, val_per_task=8, test_per_task=8)
    method = cl.LaMAML(hidden=(8,), alpha_init=0.1, inner_steps=2)
    torch.manual_seed(0)
    model = method.make_model(stream)
    method.begin_task(model, 0, stream)
    with torch.no_grad():
        method.alpha["blocks.0.weight"][:4] = -1.0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    t = stream.tasks[0]
    method.update(model, t.train_x[:16], t.train_y[:16], torch.zeros(16, dtype=torch.long), 0, stream)
    w = dict(model.named_parameters())["blocks.0.weight"]
    assert torch.equal(w[:4], before["blocks.0.weight"][:4])
    assert not torch.equal(w[4:], before["blocks.0.weight"][4:])
    assert len(method.memory) == 16


# ---------------------------------------------------------------------------- progressive nets
def test_progressive_columns_are_frozen_and_laterals_connect_them():
    """checks that a new column freezes the old ones, parameters grow, column 1 reads column 0,
    and a bad column index is an error."""
    torch.manual_seed(0)
    net = cl.ProgressiveNet(6, (5, 4), 3)
    n0 = sum(p.numel() for p in net.parameters())
    net.add_column()
    n1 = sum(p.numel() for p in net.parameters())
    assert n1 - n0 == n0 + 5 * 4 + 4 * 3  # a second column plus laterals U₂ (5→4) and U₃ (4→3)
    assert all(not p.requires_grad for p in net.columns[0].parameters())
    assert all(p.requires_grad for p in net.columns[1].parameters())
    x = torch.randn(2, 6)
    out0, out1 = net(x, 0), net(x)
    with torch.no_grad():
        net.columns[0][0].weight.add_(1.0)
    assert not torch.allclose(net(x, 1), out1)  # column 1 reads column 0's features
    assert not torch.allclose(net(x, 0), out0)
    with pytest.raises(ValueError, match="no column 2"):
        net(x, 2)


def test_progressive_training_leaves_old_columns_and_their_accuracy_unchanged():
    """checks that training the second task changes no weight of column 0 (BWT = 0 exactly)."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.split_mnist(train, test, "task", per_class=30, val_per_class=5, test_per_class=10)
    stream.tasks = stream.tasks[:3]
    result = cl.train_sequentially(cl.Progressive(hidden=(16,)), stream, steps=30,
                                   batch_size=16, progress=False)
    assert len(result.model.columns) == 3
    assert result.bwt == 0.0
    assert torch.equal(result.R[:, 0], result.R[0, 0].expand(3))


# ---------------------------------------------------------------------------- the loop
def test_train_sequentially_records_R_b_and_anytime_curves():
    """checks the shapes of R, b, the anytime and alignment records, and joint data growth; the
    last alignment (taken at the final weights) against cos(∇ℒ₂, ∇ℒ_old) written out: 8 val
    images of task 2 against 4 of each old task, one flat gradient each, F.cosine_similarity."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.permuted_mnist(train, test, tasks=3, per_task=60, val_per_task=20, test_per_task=30)
    result = cl.train_sequentially(cl.Naive(hidden=(16,)), stream, steps=20, batch_size=16,
                                   eval_every=10, align=True, probe=8, progress=False)
    assert result.R.shape == (3, 3) and result.b.shape == (3,)
    assert result.anytime_step == [10, 20, 30, 40, 50, 60] and len(result.anytime_acc) == 6
    assert result.align_step == [30, 40, 50, 60] and len(result.align_cos) == 4
    params = list(result.model.parameters())

    def flat_grad(task, n):
        x, y = stream.tasks[task].split("val")
        loss = F.cross_entropy(result.model(x[:n]), y[:n])
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])

    new, old = flat_grad(2, 8), (flat_grad(0, 4) + flat_grad(1, 4)) / 2
    assert result.align_cos[-1] == pytest.approx(F.cosine_similarity(new, old, dim=0).item(),
                                                 abs=1e-5)
    assert result.R[0, 0] > 0.5  # the first task is learned (chance: 0.1)
    assert [len(cl.Joint().training_data(stream, i)[1]) for i in range(3)] == [60, 120, 180]
    with pytest.raises(ValueError, match="steps must be ≥ 1"):
        cl.train_sequentially(cl.Naive(), stream, steps=0)
    with pytest.raises(ValueError, match="optimizer must be"):
        cl.Naive(optimizer="rmsprop")


def test_replay_forgets_less_than_naive_on_a_class_incremental_stream():
    """checks that naive fine-tuning forgets the old classes of a class-incremental stream
    (last-task-only accuracy) while replay keeps them."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.split_mnist(train, test, "class", per_class=30, val_per_class=5, test_per_class=10)
    stream.tasks = stream.tasks[:3]
    kw = dict(steps=40, batch_size=16, progress=False)
    naive = cl.train_sequentially(cl.Naive(hidden=(32,)), stream, **kw)
    replay = cl.train_sequentially(cl.Replay(per_task=20, hidden=(32,)), stream, **kw)
    old_naive, old_replay = naive.R[-1, :-1].mean(), replay.R[-1, :-1].mean()
    assert old_naive < 0.2 and old_replay > 0.8
    assert naive.acc == pytest.approx(cl.last_task_only(naive.R), abs=0.1)
    assert replay.bwt > naive.bwt + 0.5


def test_ewc_and_l2_keep_old_weights_closer_than_naive():
    """checks that the penalties hold θ nearer θ* of the first task than naive fine-tuning does,
    and that L2 keeps a single anchor while EWC keeps one per task."""
    train, test = fake_images(), fake_images(20, seed=1)
    stream = cl.permuted_mnist(train, test, tasks=3, per_task=60, val_per_task=10, test_per_task=10)
    drift = {}
    for method in [cl.Naive(hidden=(16,)), cl.EWC(lam=1e4, fisher_samples=60, hidden=(16,)),
                   cl.L2Tie(lam=10.0, hidden=(16,))]:
        anchor = []
        original_end = method.end_task

        def end_task(model, task, s, original_end=original_end, anchor=anchor):
            if task == 0:
                anchor.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
            original_end(model, task, s)

        method.end_task = end_task
        result = cl.train_sequentially(method, stream, steps=30, batch_size=16, progress=False)
        final = torch.cat([p.detach().flatten() for p in result.model.parameters()])
        drift[method.name] = (final - anchor[0]).norm().item()
        if method.name != "naive":
            assert len(method.anchors) == (3 if method.name == "EWC" else 1)
    assert drift["EWC"] < drift["naive"] and drift["L2"] < drift["naive"]


def test_edge_cases_found_by_the_assignment_review():
    """checks an empty memory's counts, the Fisher of no examples, a detached θ*, and EWC with a
    frozen parameter."""
    assert cl.ReservoirBuffer(5).counts(3) == [0, 0, 0]
    model = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="holds none"):
        cl.diagonal_fisher(model, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    theta = {"w": torch.ones(2, requires_grad=True)}
    star = {"w": torch.zeros(2, requires_grad=True)}
    cl.ewc_penalty(theta, star, {"w": torch.ones(2)}, 1.0).backward()
    assert star["w"].grad is None and torch.equal(theta["w"].grad, torch.ones(2))
    model.weight.requires_grad_(False)
    fisher = cl.diagonal_fisher(model, torch.randn(6, 4), torch.randint(3, (6,)))
    stars = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert set(fisher) == set(stars) == {"bias"}
    cl.ewc_penalty(dict(model.named_parameters()), stars, fisher, 1.0)  # no name mismatch


def test_task_reservoirs_cap_every_task_and_sample_all_of_them():
    """checks the hard cap per task, reservoir uniformity within a task, and sampling from all."""
    memory = cl.TaskReservoirs(per_task=10, seed=0)
    x = torch.arange(300.0)[:, None]
    memory.add(x[:200], torch.zeros(200, dtype=torch.long), 0)
    memory.add(x[200:], torch.ones(100, dtype=torch.long), 1)
    assert memory.counts(3) == [10, 10, 0] and len(memory) == 20 and memory.seen == 300
    _, _, task = memory.sample(2000)
    assert 0.4 < task.float().mean().item() < 0.6  # both tasks' reservoirs are drawn from
    kept = torch.zeros(200)
    for seed in range(300):  # each of task 0's 200 examples is kept with probability 10/200
        m = cl.TaskReservoirs(per_task=10, seed=seed)
        m.add(x[:200], torch.zeros(200, dtype=torch.long), 0)
        kept[m.buffers[0].x[:, 0].long()] += 1
    assert abs(kept.mean().item() - 300 * 10 / 200) < 1e-9
    assert kept.max().item() < 35  # binomial(300, 0.05): mean 15, sd 3.8
    with pytest.raises(ValueError, match="empty"):
        cl.TaskReservoirs(5).sample(1)
