"""Prototypical networks: prototypes, distances, the episode loss, training and the learner."""
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data import ImageSet
from course_lib.episodes import Episode, EpisodeSampler
from course_lib.models import ConvNet
from course_lib import protonets, training
from course_lib.protonets import (accuracy_by_shots, episode_logits, episode_loss, meta_train,
                                  proto_logits, prototypes, squared_distances)
from course_lib.training import evaluate_episodes


def blob_images(classes: int = 6, per_class: int = 20, noise: float = 0.05,
                seed: int = 0) -> ImageSet:
    """28×28 images: class k is one bright 7×7 square at its own place, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    x = noise * torch.rand(classes * per_class, 1, 28, 28, generator=g)
    y = torch.arange(classes).repeat_interleave(per_class)
    for k in range(classes):
        row, col = divmod(k, 4)
        x[y == k, :, 7 * row: 7 * row + 7, 7 * col: 7 * col + 7] += 1.0
    return ImageSet(x, y, classes, "blobs")


class Flat(nn.Module):
    """The identity embedding f(x) = x flattened: prototypes become mean images."""

    def forward(self, x):
        return x.flatten(1)

    def features(self, x):
        return x.flatten(1)


# ---------------------------------------------------------------------------- pure pieces
def test_prototypes_by_hand():
    """checks c_k against class means computed by hand, with labels in any order."""
    z = torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0], [5.0, -1.0], [3.0, 3.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    c = prototypes(z, y, ways=2)
    expected = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    assert torch.allclose(c, expected)
    perm = torch.tensor([4, 1, 3, 0, 2])  # order of the support set does not matter
    assert torch.allclose(prototypes(z[perm], y[perm], ways=2), expected)


def test_prototypes_gradient_is_a_mean():
    """checks ∂c_k/∂z_i = 1/|𝒟ᵗʳ_k| for i in class k (autograd), so every shot counts equally."""
    z = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    prototypes(z, y, 3).sum().backward()
    assert torch.allclose(z.grad[:, 0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2, 1.0]))


def test_squared_distances_by_hand():
    """checks ‖z − c‖² on 3-4-5 triangles, against torch.cdist² on random points, and far from
    the origin, where the expansion ‖z‖² − 2zᵀc + ‖c‖² cancels (and can go negative): exactly 0
    at a prototype, never negative, and as accurate as a float64 oracle near one."""
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    c = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert torch.equal(squared_distances(z, c), torch.tensor([[0.0, 9.0, 16.0], [25.0, 16.0, 9.0]]))
    assert torch.equal(proto_logits(z, c), -squared_distances(z, c))
    g = torch.Generator().manual_seed(0)
    z, c = torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)
    assert torch.allclose(squared_distances(z, c), torch.cdist(z, c) ** 2, atol=1e-5)
    c = 100.0 + torch.randn(4, 5, generator=g)
    z = torch.cat([c, c + 1e-3 * torch.randn(4, 5, generator=g)])  # at, then next to, c_k
    d = squared_distances(z, c)
    assert torch.equal(d[:4].diagonal(), torch.zeros(4)) and (d >= 0).all()
    exact = (z.double()[:, None, :] - c.double()[None, :, :]).pow(2).sum(-1)
    assert torch.allclose(d.double(), exact, rtol=1e-4, atol=1e-5)


def test_nearest_prototype_wins():
    """checks that the arg-max logit is the nearest prototype (a query at c_k is classified k)."""
    c = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = c + 0.1 * torch.randn(3, 2)
    assert torch.equal(proto_logits(z, c).argmax(1), torch.arange(3))


def test_episode_loss_is_cross_entropy_over_negative_distances():
    """checks ℒ against an oracle written out: cross-entropy of −‖f(x) − mean_k f(x')‖²."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    ways, shots, queries = 3, 2, 4
    episode = Episode(torch.randn(ways * shots, 4), torch.arange(ways).repeat_interleave(shots),
                      torch.randn(ways * queries, 4), torch.arange(ways).repeat_interleave(queries),
                      torch.arange(ways))
    loss, acc = episode_loss(model, episode)
    # oracle: explicit loops, log-softmax written by hand
    with torch.no_grad():
        zs, zq = model(episode.support_x), model(episode.query_x)
        c = torch.stack([zs[episode.support_y == k].mean(0) for k in range(ways)])
        d = torch.tensor([[((q - ck) ** 2).sum().item() for ck in c] for q in zq])
        log_p = -d - torch.logsumexp(-d, dim=1, keepdim=True)
        oracle = -log_p[torch.arange(len(zq)), episode.query_y].mean()
        oracle_acc = ((-d).argmax(1) == episode.query_y).float().mean().item()
    assert loss.item() == pytest.approx(oracle.item(), rel=1e-5)
    assert acc == pytest.approx(oracle_acc)
    assert loss.item() == pytest.approx(F.cross_entropy(-d, episode.query_y).item(), rel=1e-5)


def test_gradients_reach_theta():
    """checks that the episode loss sends a gradient to every parameter of f_θ."""
    model = ConvNet(0, width=4)
    episode = EpisodeSampler(blob_images(), ways=3, shots=2, queries=3).sample()
    model.train()
    episode_loss(model, episode)[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ---------------------------------------------------------------------------- learner
def test_learner_solves_separable_episodes():
    """checks 100% query accuracy on well-separated classes with the identity embedding."""
    sampler = EpisodeSampler(blob_images(), ways=5, shots=1, queries=5, seed=1)
    mean, _ = evaluate_episodes(protonets.learner(Flat()), sampler, episodes=20, progress=False)
    assert mean == 1.0


def test_learner_predicts_each_query_on_its_own():
    """checks that a query's prediction depends on 𝒟ᵗʳ and itself only (eval-mode batch norm)."""
    torch.manual_seed(0)
    model = ConvNet(0, width=4)
    episode = EpisodeSampler(blob_images(), ways=3, shots=2, queries=4).sample()
    predict = protonets.learner(model)
    together = predict(episode.support_x, episode.support_y, episode.query_x)
    alone = torch.cat([predict(episode.support_x, episode.support_y, q[None])
                       for q in episode.query_x])
    assert torch.equal(together, alone)


def test_meta_train_learns_and_records(monkeypatch):
    """checks that a few episodes of meta-training lower the loss and fill the history, and that
    ``seconds`` times the episodes but not the validation (sleeps injected into both)."""
    torch.manual_seed(0)
    data = blob_images(noise=0.5)
    model = ConvNet(0, width=8)
    sampler = EpisodeSampler(data, ways=3, shots=1, queries=5, seed=0)
    val = EpisodeSampler(data, ways=3, shots=1, queries=5, seed=1)
    real_loss, real_evaluate = protonets.episode_loss, protonets.evaluate

    def slow_loss(*args, **kwargs):  # 30 episodes: at least 0.15 s of training
        time.sleep(0.005)
        return real_loss(*args, **kwargs)

    def slow_evaluate(*args, **kwargs):  # 2 validations: 0.2 s that must not be counted
        time.sleep(0.1)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(protonets, "episode_loss", slow_loss)
    monkeypatch.setattr(protonets, "evaluate", slow_evaluate)
    start = time.perf_counter()
    history = meta_train(model, sampler, steps=30, beta=1e-2, val_sampler=val, val_episodes=5,
                         val_every=15, progress=False)
    wall = time.perf_counter() - start
    assert len(history.loss) == len(history.accuracy) == 30
    assert history.val_step == [15, 30] and len(history.val_acc) == 2
    assert sum(history.loss[-5:]) / 5 < sum(history.loss[:5]) / 5
    assert 30 * 0.005 <= history.seconds <= wall - 2 * 0.1 and not model.training


def test_meta_trained_is_meta_train_once_then_the_cache(tmp_data, monkeypatch):
    """checks that protonets.meta_trained gives the f_θ that seeding and meta_train by hand
    give, and that a second call loads it (same weights and seconds) without training."""
    import dataclasses

    from course_lib.budget import get_budget
    from course_lib.seeding import seed_everything

    data, budget = blob_images(noise=0.5), dataclasses.replace(get_budget("quick"), width=8)
    model, history = protonets.meta_trained(data, budget, ways=3, shots=1, queries=2, steps=10,
                                            beta=1e-2, seed=4, progress=False)
    seed_everything(4)
    sampler = EpisodeSampler(data, ways=3, shots=1, queries=2, seed=4)
    by_hand = ConvNet(0, width=8)
    meta_train(by_hand, sampler, 10, beta=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 by_hand.state_dict().values()))
    # no episode may be drawn: patching a function the training reaches would change the
    # code fingerprint of the cache entry, and so the entry
    monkeypatch.setattr(EpisodeSampler, "sample", lambda self: pytest.fail("trained again"))
    again, loaded = protonets.meta_trained(data, budget, ways=3, shots=1, queries=2, steps=10,
                                           beta=1e-2, seed=4, progress=False)
    assert loaded.seconds == history.seconds and not again.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))


def test_channels_last_keeps_the_function():
    """checks that storing f_θ's weights channels-last (as meta_train does) changes no output."""
    torch.manual_seed(0)
    model = ConvNet(0, width=8).eval()
    x = torch.rand(5, 1, 28, 28)
    before = model(x)
    model.to(memory_format=torch.channels_last)
    assert torch.allclose(model(x), before, atol=1e-5)


def test_learning_rate_halves():
    """checks decay_every=1: the same first step as a constant β, then exactly half the second.

    Adam's update is β·m̂/(√v̂ + ε) and m̂, v̂ do not depend on β, so after an identical first
    step the second displacement scales with β alone.
    """
    def weights_after(steps, decay_every):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
        sampler = EpisodeSampler(blob_images(), ways=2, shots=1, queries=2)
        meta_train(model, sampler, steps, beta=0.1, decay_every=decay_every, progress=False)
        return model[1].weight.detach()

    first = weights_after(1, 0)
    assert torch.equal(weights_after(1, 1), first)
    constant, halved = weights_after(2, 0) - first, weights_after(2, 1) - first
    assert constant.abs().max() > 0.01
    assert torch.allclose(halved, constant / 2, atol=1e-6)


def test_accuracy_by_shots_matches_the_learner():
    """checks that k = all shots reproduces the learner on the same episodes, and the k-subsets."""
    torch.manual_seed(0)
    model = ConvNet(0, width=4).eval()
    data = blob_images(noise=1.0)
    curve = accuracy_by_shots(model, EpisodeSampler(data, ways=3, shots=4, queries=5, seed=3),
                              shots=[1, 4], episodes=6, progress=False)
    full = protonets.evaluate(model, EpisodeSampler(data, ways=3, shots=4, queries=5, seed=3), 6)
    assert curve[1] == pytest.approx(full)
    # k = 1: the learner given only the first support example of each class
    sampler = EpisodeSampler(data, ways=3, shots=4, queries=5, seed=3)
    accs = []
    for _ in range(6):
        e = sampler.sample()
        first = torch.arange(3) * 4
        predicted = protonets.learner(model)(e.support_x[first], e.support_y[first], e.query_x)
        accs.append((predicted == e.query_y).float().mean().item())
    assert curve[0][0] == pytest.approx(sum(accs) / 6)
    with pytest.raises(ValueError):
        accuracy_by_shots(model, sampler, shots=[5], episodes=1)


def test_any_learner_by_shots_gives_the_protonet_shortcut_s_numbers():
    """checks training.accuracy_by_shots (any learner, given the first k support examples of each
    class) against protonets.accuracy_by_shots (embeds each episode once) on the same episodes:
    the same accuracies and intervals at every k, and a k the sampler lacks refused."""
    torch.manual_seed(0)
    model = ConvNet(0, width=4).eval()
    data = blob_images(noise=1.0)
    sampler = lambda: EpisodeSampler(data, ways=3, shots=4, queries=5, seed=3)
    shortcut = accuracy_by_shots(model, sampler(), shots=[1, 2, 4], episodes=6, progress=False)
    generic = training.accuracy_by_shots(protonets.learner(model), sampler(), [1, 2, 4], 6,
                                         progress=False)
    assert [v for e in generic for v in e] == pytest.approx([v for e in shortcut for v in e])
    assert generic[0].samples == pytest.approx(shortcut[0].samples)
    with pytest.raises(ValueError, match="4 shots"):
        training.accuracy_by_shots(protonets.learner(model), sampler(), [5], 1)


def test_episode_logits_shape():
    """checks (m, ways) logits for an episode whose support has 4 classes."""
    model = Flat()
    logits = episode_logits(model, torch.rand(8, 1, 28, 28), torch.arange(4).repeat_interleave(2),
                            torch.rand(5, 1, 28, 28))
    assert logits.shape == (5, 4)


@pytest.mark.slow
def test_meta_training_on_omniglot_beats_chance(omniglot_background, omniglot_evaluation):
    """checks that 150 episodes of 20-way meta-training give > 70% on 5-way 1-shot unseen characters."""
    torch.manual_seed(0)
    train = EpisodeSampler(omniglot_background, torch.arange(200), ways=20, shots=1, queries=2)
    test = EpisodeSampler(omniglot_evaluation, ways=5, shots=1, queries=5, seed=1)
    model = ConvNet(0, width=16)
    meta_train(model, train, steps=150, beta=5e-3, progress=False)
    mean, _ = protonets.evaluate(model, test, episodes=50)
    assert mean > 0.7  # chance: 0.2


def test_prototypes_name_bad_input():
    """checks the errors for a missing class, a label out of range and mismatched shapes."""
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"no example of class\(es\) \[2\]"):
        prototypes(z, torch.tensor([0, 1, 1, 0]), ways=3)
    with pytest.raises(ValueError, match="0…1"):
        prototypes(z, torch.tensor([0, 1, 2, 0]), ways=2)
    with pytest.raises(ValueError, match="labels"):
        prototypes(z, torch.tensor([0, 1]), ways=2)
