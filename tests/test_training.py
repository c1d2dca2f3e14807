"""Training and evaluation loops: fit, accuracy, mean ± 95% CI, episode evaluation, frozen BN."""
import functools
import math
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from course_lib.data import ImageSet
from course_lib.episodes import EpisodeSampler
from course_lib.finetuning import set_trainable
from course_lib.models import MLP, ConvNet
from course_lib.training import (MetaHistory, accuracy, adam, cached, evaluate_episodes,
                                 fingerprint, fit, mean_ci, meta_fit, predict)


def blobs(n: int = 200, seed: int = 0):
    """Two well-separated Gaussian blobs in 2-D: class 0 around (−2, −2), class 1 around (2, 2)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5 + (4.0 * y[:, None] - 2.0)
    return x, y


def bn_state(model: nn.Module) -> dict:
    """Copies of every batch-norm buffer (running mean, variance, batches tracked)."""
    return {k: v.clone() for k, v in model.named_buffers()}


# ---------------------------------------------------------------------------- fit
def _adam_run(make_optimizer, model: nn.Module, x, y, steps: int) -> list[torch.Tensor]:
    model = model.train()
    optimizer = make_optimizer(model)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(len(x), (16,), generator=g)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("net", ["mlp", "convnet"])
def test_the_course_adam_computes_torchs_default_adam_bit_for_bit(net):
    """Checks that :func:`adam` (the multi-tensor update) leaves every parameter equal, bit for
    bit, to a plain ``torch.optim.Adam`` (a student's), with two groups at their own rates, over
    1,500 steps (the bias corrections of some steps, e.g. 1,270, have a square root that
    differs in its last bit by another route) and over 60 of a channels-last conv net."""
    torch.manual_seed(0)
    if net == "mlp":
        x, y, steps = torch.randn(256, 4), torch.randint(0, 3, (256,)), 1500
        make = lambda: MLP(4, (16, 16), 3)
    else:
        x, y, steps = torch.randn(64, 1, 28, 28), torch.randint(0, 5, (64,)), 60
        make = lambda: ConvNet(5, width=8)
    start = make().state_dict()
    groups = lambda m: [{"params": list(m.blocks.parameters())},
                        {"params": list(m.head.parameters()), "lr": 3e-3}]
    runs = []
    for optimizer in (lambda m: torch.optim.Adam(groups(m), lr=1e-2),
                      lambda m: adam(groups(m), lr=1e-2)):
        model = make()
        model.load_state_dict(start)
        runs.append(_adam_run(optimizer, model, x, y, steps))
    assert any(not torch.equal(a, b) for a, b in zip(start.values(), runs[0]))   # it trained
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_fit_lowers_the_loss():
    """checks that fit drives the loss down and separates a separable problem."""
    torch.manual_seed(0)
    x, y = blobs()
    model = MLP(2, hidden=(16,), outputs=2)
    history = fit(model, x, y, steps=100, lr=1e-2, batch_size=32, progress=False)
    assert len(history.loss) == 100
    first, last = sum(history.loss[:10]) / 10, sum(history.loss[-10:]) / 10
    assert last < 0.2 * first
    assert accuracy(model, x, y) == 1.0
    assert not model.training  # fit leaves the model in eval mode


def test_fit_records_validation():
    """checks that val accuracy is recorded every eval_every steps and at the last step, and that
    each record is the accuracy of the weights at that step (oracle: the same seeded run stopped
    there, scored by accuracy())."""
    x, y = blobs()

    def run(steps, **kw):
        torch.manual_seed(0)
        model = MLP(2, hidden=(8,), outputs=2)
        return model, fit(model, x, y, steps=steps, progress=False, **kw)

    _, history = run(25, val=(x, y), eval_every=10)
    assert history.val_step == [10, 20, 25]
    assert history.val_acc == [accuracy(run(steps)[0], x, y) for steps in (10, 20, 25)]
    assert len(set(history.val_acc)) > 1  # the weights moved between the records


def test_fit_is_seeded():
    """checks that the same model init and seed give identical weights (minibatch order fixed)."""
    x, y = blobs()
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = MLP(2, hidden=(8,), outputs=2)
        fit(model, x, y, steps=20, batch_size=16, seed=5, progress=False)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(*weights)


def test_fit_updates_only_trainable_parameters():
    """checks that frozen parameters do not move."""
    x, y = blobs()
    model = MLP(2, hidden=(8,), outputs=2)
    set_trainable(model, ("head",))
    body = [p.clone() for p in model.blocks.parameters()]
    head = model.head.weight.clone()
    fit(model, x, y, steps=10, lr=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(body, model.blocks.parameters()))
    assert not torch.equal(head, model.head.weight)


def test_a_linear_probe_embeds_the_images_once(monkeypatch):
    """checks fit's fast path for a head-only fit: f_θ's body runs once over x (not once per
    step), and the head, the losses and the running statistics end as on the per-step path;
    a fit that trains a block, or whose steps would not show the body every image, or whose
    body normalises with batch statistics, runs the body every step."""
    import course_lib.training as training
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 4

    def probe(fast: bool, prefixes=("head",), steps=15, batch_stats=False):
        torch.manual_seed(3)
        model = ConvNet(4, width=8, batch_stats=batch_stats)
        set_trainable(model, prefixes)
        calls = []
        body = model.blocks.forward
        model.blocks.forward = lambda t: calls.append(len(t)) or body(t)
        if not fast:
            monkeypatch.setattr(training, "_fixed_body", lambda *a: False)
        history = fit(model, x, y, steps=steps, lr=1e-2, batch_size=16, seed=2, progress=False)
        monkeypatch.undo()
        return model, history.loss, calls

    (fast, fast_loss, fast_calls), (slow, slow_loss, slow_calls) = probe(True), probe(False)
    assert fast_calls == [40] and slow_calls == [16] * 15
    assert torch.allclose(fast.head.weight, slow.head.weight, atol=1e-5)
    assert fast_loss == pytest.approx(slow_loss, abs=1e-5) and fast_loss[-1] < fast_loss[0]
    assert all(torch.equal(a, b) for a, b in zip(bn_state(fast).values(), bn_state(slow).values()))
    assert torch.equal(predict(fast, x).argmax(1), predict(slow, x).argmax(1))
    assert probe(True, prefixes=("head", "blocks.3"))[2] == [16] * 15   # a block trains
    assert probe(True, steps=2)[2] == [16] * 2                          # 32 images seen < 40
    assert probe(True, batch_stats=True)[2] == [16] * 15                # MAML's batch norm

    class Scaled(ConvNet):   # a forward that is not head(features(x))
        def forward(self, t):
            return 2 * super().forward(t)

    model = Scaled(4, width=8)
    set_trainable(model, ("head",))
    assert not training._fixed_body(model, None)

    # parameters given as a generator (model.parameters()) are read once and still trained
    torch.manual_seed(3)
    model = ConvNet(4, width=8)
    set_trainable(model, ("head",))
    before = model.head.weight.clone()
    fit(model, x, y, steps=15, lr=1e-2, batch_size=16, params=model.head.parameters(), seed=2,
        progress=False)
    assert torch.allclose(model.head.weight, fast.head.weight, atol=1e-5)
    assert not torch.equal(model.head.weight, before)


def test_fit_with_weights_matches_unweighted_when_uniform():
    """checks the importance-weighted loss: weights of 1 give exactly the plain loss path."""
    x, y = blobs()
    runs = []
    for weights in (None, torch.ones(len(y))):
        torch.manual_seed(0)
        model = MLP(2, hidden=(8,), outputs=2)
        runs.append(fit(model, x, y, steps=5, weights=weights, progress=False).loss)
    assert runs[0] == pytest.approx(runs[1], rel=1e-6)


def test_fit_with_zero_weight_class_ignores_it():
    """checks that examples with weight 0 contribute nothing: only class 1 is learnt."""
    x, y = blobs()
    torch.manual_seed(0)
    model = MLP(2, hidden=(8,), outputs=2)
    fit(model, x, y, steps=100, lr=1e-2, weights=(y == 1).float(), progress=False)
    assert (predict(model, x).argmax(1) == 1).all()


# ---------------------------------------------------------------------------- accuracy
def test_accuracy_against_hand_computed():
    """checks accuracy with a hand-set linear model: logits = x, so the prediction is argmax x."""
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0], [0, 5, 0]])
    y = torch.tensor([0, 1, 2, 2, 2])  # the first three are right, the last two wrong
    assert accuracy(model, x, y) == pytest.approx(3 / 5)
    assert predict(model, x, batch_size=2).shape == (5, 3)  # batched like the whole set
    assert torch.equal(predict(model, x, batch_size=2), predict(model, x))


# ---------------------------------------------------------------------------- mean_ci
def test_mean_ci_closed_form():
    """checks mean and 1.96 · s / √n, with s the sample (n − 1) standard deviation."""
    values = [1.0, 2.0, 3.0, 4.0]
    mean, half = mean_ci(values)
    s = math.sqrt(sum((v - 2.5) ** 2 for v in values) / 3)  # = √(5/3)
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(1.96 * s / 2)
    assert half == pytest.approx(1.2651746, rel=1e-6)  # the number itself


def test_mean_ci_edge_cases():
    """checks a constant sample (half-width 0), a single value (NaN) and generator input."""
    assert mean_ci([0.7] * 10) == (pytest.approx(0.7), pytest.approx(0.0, abs=1e-12))
    mean, half = mean_ci([0.3])
    assert mean == pytest.approx(0.3) and math.isnan(half)
    assert mean_ci(v for v in (0.0, 1.0))[0] == pytest.approx(0.5)


def test_mean_ci_shrinks_like_root_n():
    """checks that repeating a sample k times shrinks the half-width by about √k."""
    base = [0.2, 0.5, 0.9, 0.4]
    _, h1 = mean_ci(base)
    _, h4 = mean_ci(base * 16)
    s1 = math.sqrt(sum((v - 0.5) ** 2 for v in base) / 3)
    s16 = math.sqrt(16 * sum((v - 0.5) ** 2 for v in base) / 63)
    assert h4 / h1 == pytest.approx((s16 / 8) / (s1 / 2))


# ---------------------------------------------------------------------------- evaluate_episodes
def constant_images(classes: int = 10, per_class: int = 20) -> ImageSet:
    """Every image of class c is the constant c / classes: a 1-shot task is trivially solvable."""
    y = torch.arange(classes).repeat_interleave(per_class)
    x = (y.float() / classes).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone()
    return ImageSet(x, y, classes, "constant")


def nearest_neighbour(support_x, support_y, query_x):
    """A learner that uses only the support set and query inputs."""
    dist = torch.cdist(query_x.flatten(1), support_x.flatten(1))
    return support_y[dist.argmin(1)]


def test_evaluate_perfect_learner():
    """checks mean 1 and CI 0 for a learner that is always right."""
    sampler = EpisodeSampler(constant_images(), ways=5, shots=1, queries=5)
    mean, half = evaluate_episodes(nearest_neighbour, sampler, episodes=20, progress=False)
    assert mean == 1.0 and half == 0.0


def test_evaluate_random_learner():
    """checks that a guessing learner scores about 1 / ways, inside a few CIs."""
    sampler = EpisodeSampler(constant_images(), ways=5, shots=1, queries=10)
    g = torch.Generator().manual_seed(0)

    def guess(support_x, support_y, query_x):
        return torch.randint(int(support_y.max()) + 1, (len(query_x),), generator=g)

    mean, half = evaluate_episodes(guess, sampler, episodes=200, progress=False)
    assert abs(mean - 0.2) < max(3 * half, 0.02)
    assert 0 < half < 0.05  # 1.96 · √(0.2·0.8/10) / √200 ≈ 0.017


def test_evaluate_episodes_with_a_learner_of_many_episodes():
    """checks that ``learner.many`` is given stacked chunks of the same seeded episodes and
    gives the per-episode accuracies, in order, that one call per episode gives."""
    calls = []

    def noisy(support_x, support_y, query_x):   # right on the first 3 queries of each class
        predicted = nearest_neighbour(support_x, support_y, query_x)
        return torch.where(torch.arange(len(query_x)) % 5 < 3, predicted, (predicted + 1) % 5)

    def many(support_x, support_y, query_x):
        calls.append(len(support_x))
        return torch.stack([noisy(*e) for e in zip(support_x, support_y, query_x)])

    with_many = lambda *episode: noisy(*episode)
    with_many.many = many
    sampler = lambda: EpisodeSampler(constant_images(), ways=5, shots=1, queries=5, seed=3)
    one_by_one = evaluate_episodes(noisy, sampler(), episodes=10, progress=False)
    stacked = evaluate_episodes(with_many, sampler(), episodes=10, progress=False, chunk=4)
    assert calls == [4, 4, 2]
    assert stacked.samples == one_by_one.samples and stacked == one_by_one


def test_evaluate_one_episode_per_call():
    """checks that evaluate_episodes consumes exactly `episodes` episodes of the stream."""
    calls = []
    sampler = EpisodeSampler(constant_images(), ways=2, shots=1, queries=1)
    evaluate_episodes(lambda sx, sy, qx: calls.append(qx) or torch.zeros(len(qx)), sampler,
                      episodes=7, progress=False)
    assert len(calls) == 7


# ---------------------------------------------------------------------------- frozen batch norm
def test_frozen_body_batchnorm_stats_do_not_change():
    """checks the frozen-BN rule: a linear probe leaves the body's running statistics alone."""
    torch.manual_seed(0)
    model = ConvNet(3, width=8)
    x, y = torch.rand(30, 1, 28, 28), torch.arange(30) % 3
    set_trainable(model, ("head",))
    before = bn_state(model)
    fit(model, x, y, steps=5, progress=False)
    after = bn_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen BN layer drifted"


def test_trainable_body_batchnorm_stats_do_change():
    """checks the control: when the body trains, its running statistics are updated."""
    torch.manual_seed(0)
    model = ConvNet(3, width=8)
    x, y = torch.rand(30, 1, 28, 28), torch.arange(30) % 3
    before = bn_state(model)
    fit(model, x, y, steps=5, progress=False)
    after = bn_state(model)
    assert all(not torch.equal(before[k], after[k]) for k in before)


def test_partly_frozen_body():
    """checks that only the frozen blocks keep their statistics (surgical fine-tuning)."""
    torch.manual_seed(0)
    model = ConvNet(3, width=8)
    x, y = torch.rand(30, 1, 28, 28), torch.arange(30) % 3
    set_trainable(model, ("blocks.3", "head"))
    before = bn_state(model)
    fit(model, x, y, steps=3, progress=False)
    after = bn_state(model)
    for k in before:
        assert torch.equal(before[k], after[k]) == (not k.startswith("blocks.3")), k


# ---------------------------------------------------------------------------- meta_fit, cached
def test_meta_fit_records_every_step_and_validates_on_schedule():
    """checks losses per step, accuracy when reported, validation steps, β halving, and that
    ``seconds`` counts the steps but not the validation (sleeps injected into both)."""
    w = nn.Parameter(torch.tensor([3.0]))
    optimizer = torch.optim.SGD([w], lr=0.1)
    calls = []

    def step_loss():
        time.sleep(0.01)  # 10 steps: at least 0.1 s of training
        return (w ** 2).sum(), 0.5

    def validate():
        time.sleep(0.1)  # 3 validations: 0.3 s that must not be counted
        calls.append(1)
        return 0.75

    start = time.perf_counter()
    history = meta_fit(step_loss, optimizer, steps=10, decay_every=4, validate=validate,
                       val_every=3, progress=False)
    wall = time.perf_counter() - start
    assert len(history.loss) == 10 and history.accuracy == [0.5] * 10
    assert history.loss[-1] < history.loss[0]
    assert history.val_step == [3, 6, 9] and history.val_acc == [0.75] * 3 and len(calls) == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 4)  # halved at 4 and 8
    assert 10 * 0.01 <= history.seconds <= wall - 3 * 0.1
    no_acc = meta_fit(lambda: ((w ** 2).sum(), None), optimizer, steps=2, progress=False)
    assert no_acc.accuracy == [] and no_acc.val_step == []


def test_cached_trains_once_then_loads(tmp_data):
    """checks that cached() trains on a miss, loads weights and history on a hit, and retrains."""
    calls = []

    def train_fn(model):
        def train():
            calls.append(model)
            with torch.no_grad():
                model.weight.add_(1.0)
            return MetaHistory(loss=[1.0, 0.5], seconds=2.5)
        return train

    first = nn.Linear(2, 1)
    history = cached(first, "unit", train_fn(first))
    second = nn.Linear(2, 1)
    loaded = cached(second, "unit", train_fn(second))
    assert calls == [first], "a cache hit must not train"
    assert torch.equal(second.weight, first.weight)
    assert loaded.loss == history.loss and loaded.seconds == 2.5
    third = nn.Linear(2, 1)
    cached(third, "unit", train_fn(third), retrain=True)
    fourth = nn.Linear(2, 1)
    cached(fourth, "unit", train_fn(fourth))
    assert calls == [first, third] and torch.equal(fourth.weight, third.weight)


def test_cached_trains_again_when_the_training_code_changes(tmp_data):
    """checks that the cache key carries the code: the same key trained by a function whose
    source differs (or that calls a course function whose source differs) trains again, and
    the same code loads."""
    def module(helper_body: str) -> dict:
        namespace = {"__name__": "course_lib._fingerprint_test", "MetaHistory": MetaHistory}
        exec(f"def helper(model):\n    {helper_body}\n\n"
             "def train(model):\n    helper(model)\n    return MetaHistory(loss=[0.0])\n",
             namespace)
        return namespace

    one, same, other = (module("model.weight.data.add_(1.0)"),
                        module("model.weight.data.add_(1.0)"),
                        module("model.weight.data.add_(2.0)"))
    assert fingerprint(one["train"]) == fingerprint(same["train"])
    assert fingerprint(one["train"]) != fingerprint(other["train"])
    assert fingerprint(one["train"], ConvNet(5)) != fingerprint(one["train"], nn.Linear(2, 1))
    first, second, third = nn.Linear(2, 1), nn.Linear(2, 1), nn.Linear(2, 1)
    for model, start in ((first, 0.0), (second, 0.0), (third, 5.0)):
        nn.init.constant_(model.weight, start)
    cached(first, "code", functools.partial(one["train"], first))
    cached(second, "code", functools.partial(other["train"], second))
    assert torch.all(second.weight == 2.0), "another helper's code must train again"
    cached(third, "code", functools.partial(same["train"], third))
    assert torch.all(third.weight == 1.0), "the first code's entry must load (5 + 1: trained)"
    assert len(list((tmp_data / "cache" / "models").glob("code_*.pt"))) == 2


def test_cached_waits_for_another_process_training_the_same_entry(tmp_data):
    """checks that while one process trains an entry, another asking for it waits and loads
    it (trains nothing) — two notebooks running in parallel share one trained model."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    started, model = context.Event(), nn.Linear(2, 1)
    trainer = context.Process(target=_train_slowly, args=(started,))
    trainer.start()
    assert started.wait(30)
    history = cached(model, "shared", _slow_training(model, None))
    trainer.join(30)
    assert trainer.exitcode == 0
    assert history.loss == [0.25] and torch.all(model.weight == 7.0)


def _slow_training(model, started):
    """Training that takes a second (weights set to 7); with ``started`` None it must not run
    (the other process is training the entry)."""
    def train():
        if started is None:
            raise AssertionError("the other process is training it")
        started.set()
        time.sleep(1.0)
        with torch.no_grad():
            model.weight.fill_(7.0)
        return MetaHistory(loss=[0.25])
    return train


def _train_slowly(started):
    """In a child process: train the entry "shared"."""
    model = nn.Linear(2, 1)
    cached(model, "shared", _slow_training(model, started))


def test_the_fingerprint_does_not_depend_on_the_hash_seed():
    """checks that the code fingerprint of the Baseline's training is the same in processes with
    different PYTHONHASHSEED (its training reaches several dataclass-generated __repr__s that
    share one name; keeping whichever the set of names gave first made seeds 0 and 2 differ),
    so that one notebook finds the model another one trained."""
    script = textwrap.dedent("""
        import torch
        from course_lib import baselines, get_budget, training
        from course_lib.data import ImageSet
        def record(model, key, train, retrain=False):
            print(training.fingerprint(train, model))
            return training.MetaHistory(loss=[], seconds=0.0)
        baselines.cached = record
        baselines.pretrain_classifier(ImageSet(torch.zeros(4, 1, 28, 28), torch.arange(4), 4, "toy"),
                                      get_budget("quick"), steps=1)
        """)
    prints = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
              for seed in (0, 2)}
    assert len(prints) == 1 and len(prints.pop().strip()) == 12


def _embedded(method: str, data):
    """A learner of ``method`` on a small f_θ (width 8) that tells ``data``'s classes apart at
    least in part, that f_θ, and the black box's reader (``None`` for the others)."""
    from course_lib import baselines, blackbox, matching, protonets, relation

    torch.manual_seed(0)
    f = ConvNet(0, width=8)
    if method == "relation":   # g_φ untrained scores every class alike: 30 episodes first
        net = relation.RelationNet(f, features=8)
        relation.meta_train(net, EpisodeSampler(data, ways=5, shots=1, queries=3, seed=1), 30,
                            beta=1e-2, progress=False)
        return relation.learner(net), f, None
    if method == "blackbox":   # an untrained reader predicts one label: its logits are compared
        reader = blackbox.AttentionReader(8, 5)
        return blackbox.learner(blackbox.BlackBox(f, reader), 5), f, reader
    make = {"protonets": lambda: protonets.learner(f),
            "matching": lambda: matching.learner(f),
            "baselines": lambda: baselines.learner(f, steps=50, lr=0.1)}
    return make[method](), f, None


@pytest.mark.parametrize("method", ["protonets", "matching", "relation", "baselines", "blackbox"])
def test_evaluate_episodes_embeds_each_test_image_once_with_the_same_accuracies(method):
    """checks that an embedded learner (every metric learner, the baselines, the black box) is
    evaluated on features, f_θ seeing each image of the test set once instead of once per
    episode that draws it, and that its accuracy is the same, episode by episode, as when
    every episode is embedded on its own (for the black box, whose untrained reader predicts
    one label, its logits too); a short evaluation embeds its episodes only."""
    from course_lib.training import on_features
    from toys import fake_images

    data = fake_images(n_per_class=20)
    scores, seen, logits = {}, {}, {}
    for way in ("per episode", "on features"):
        learner, f, reader = _embedded(method, data)
        if way == "per episode":   # the same learner without the features path
            learner = functools.partial(learner)
            if hasattr(learner.func, "many"):
                learner.many = learner.func.many
        images, logits[way] = [], []
        f.blocks.register_forward_hook(lambda module, inputs, out: images.append(len(inputs[0])))
        if reader is not None:
            reader.register_forward_hook(lambda module, inputs, out: logits[way].append(out))
        torch.manual_seed(1)   # the baselines' heads start from random weights
        sampler = EpisodeSampler(data, ways=5, shots=2, queries=10, seed=3)
        scores[way] = evaluate_episodes(learner, sampler, 40, progress=False).samples
        seen[way] = sum(images)
    assert scores["on features"] == scores["per episode"]
    assert seen == {"per episode": 40 * 5 * 12, "on features": len(data)}
    if method == "blackbox":
        assert len(logits["per episode"]) == 40 and all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip(*logits.values()))
    else:   # the accuracies vary from episode to episode: their equality says something
        assert len(set(scores["per episode"])) > 1
    learner, _, _ = _embedded(method, data)
    sampler = EpisodeSampler(data, ways=5, shots=2, queries=10, seed=3)
    assert on_features(learner, sampler, episodes=3) == (learner, sampler)   # 180 < 200 images


def test_a_sampler_over_features_draws_the_same_episodes():
    """checks that EpisodeSampler.over continues the same stream of episodes over other inputs
    (row i for example i), and refuses inputs of another length."""
    from toys import fake_images

    data = fake_images(n_per_class=20)
    ids = torch.arange(len(data), dtype=torch.float32)[:, None]   # each example's row number
    alone, shared = (EpisodeSampler(data, ways=5, shots=1, queries=3, seed=9) for _ in range(2))
    twin = shared.over(ids)
    drawn = [shared.sample(), twin.sample(), shared.sample()]   # one stream, shared generator
    for i, expected in enumerate(alone.sample() for _ in range(3)):
        support_x, query_x = ((data.x[t[:, 0].long()] if i == 1 else t)
                              for t in (drawn[i].support_x, drawn[i].query_x))
        assert torch.equal(support_x, expected.support_x) and torch.equal(query_x, expected.query_x)
        assert torch.equal(drawn[i].query_y, expected.query_y)
    with pytest.raises(ValueError, match="rows"):
        shared.over(ids[:-1])
