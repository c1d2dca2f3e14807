"""Baseline and Baseline++ ("A closer look at few-shot classification") and the comparison."""
import dataclasses
import math
import time

import pytest
import torch
import torch.nn.functional as F

from course_lib import baselines
from course_lib.baselines import (CosineClassifier, compare_learners,
                                  cosine_logits, new_head, pretrain_classifier)
from course_lib.budget import get_budget
from course_lib.episodes import EpisodeSampler
from course_lib.models import ConvNet
from course_lib.training import evaluate_episodes
from test_protonets import Flat, blob_images


# ---------------------------------------------------------------------------- cosine head
def test_cosine_logits_by_hand():
    """checks s · cos on hand-picked vectors: parallel → s, orthogonal → 0, opposite → −s, 45° → s/√2."""
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-5.0, 0.0]])
    expected = torch.tensor([[1.0, 0.0, -1.0], [1 / math.sqrt(2), 1 / math.sqrt(2), -1 / math.sqrt(2)]])
    assert torch.allclose(cosine_logits(z, w, scale=4.0), 4.0 * expected)


def test_cosine_logits_oracle_and_bounds():
    """checks the logits against F.cosine_similarity (oracle) and that the bounds ±s of [−s, s]
    are reached exactly by inputs along ±w_k, whatever their length."""
    g = torch.Generator().manual_seed(0)
    z, w = torch.randn(6, 5, generator=g), torch.randn(3, 5, generator=g)
    oracle = 7.0 * F.cosine_similarity(z[:, None, :], w[None, :, :], dim=-1)
    logits = cosine_logits(z, w, scale=7.0)
    assert torch.allclose(logits, oracle, atol=1e-6)
    along = cosine_logits(torch.cat([3.0 * w, -0.2 * w]), w, scale=7.0)  # (6, 3)
    assert torch.allclose(along[:3].diagonal(), torch.full((3,), 7.0), atol=1e-5)
    assert torch.allclose(along[3:].diagonal(), torch.full((3,), -7.0), atol=1e-5)


def test_cosine_classifier_is_scale_invariant():
    """checks that scaling any input (or any class weight) by a positive number keeps the logits."""
    torch.manual_seed(0)
    head = CosineClassifier(5, 4, scale=10.0)
    z = torch.randn(6, 5)
    factors = torch.tensor([0.01, 0.5, 1.0, 3.0, 100.0, 1e4])[:, None]  # (6, 1): one per input
    assert torch.allclose(head(factors * z), head(z), atol=1e-5)
    with torch.no_grad():
        head.weight.mul_(torch.tensor([0.1, 2.0, 5.0, 40.0])[:, None])
    assert torch.allclose(head(z), cosine_logits(z, head.weight, 10.0), atol=1e-6)
    # a linear head is not: its logits grow with the input's norm
    linear = new_head(5, 4, cosine=False)
    assert not torch.allclose(linear(3 * z), linear(z))


def test_new_head_kinds_and_parameters():
    """checks the two heads: a biased linear map, and a bias-free cosine head of the same width."""
    assert isinstance(new_head(8, 5, cosine=True), CosineClassifier)
    assert [p.shape for p in new_head(8, 5, cosine=True).parameters()] == [(5, 8)]
    assert [p.shape for p in new_head(8, 5, cosine=False).parameters()] == [(5, 8), (5,)]


# ---------------------------------------------------------------------------- learners
@pytest.mark.parametrize("cosine", [False, True])
def test_learner_solves_separable_episodes(cosine):
    """checks 100% query accuracy on well-separated classes with the identity embedding."""
    torch.manual_seed(0)
    sampler = EpisodeSampler(blob_images(), ways=5, shots=1, queries=5, seed=1)
    predict = baselines.learner(Flat(), cosine=cosine, steps=30)
    mean, _ = evaluate_episodes(predict, sampler, episodes=5, progress=False)
    assert mean == 1.0


def test_learner_keeps_theta_frozen():
    """checks that stage 2 changes neither θ's weights nor its batch-norm statistics."""
    torch.manual_seed(0)
    theta = ConvNet(6, width=4)
    before = {k: v.clone() for k, v in theta.state_dict().items()}
    episode = EpisodeSampler(blob_images(), ways=3, shots=2, queries=3).sample()
    predicted = baselines.learner(theta, steps=5)(episode.support_x, episode.support_y,
                                                  episode.query_x)
    assert predicted.shape == (9,) and 0 <= predicted.min() and predicted.max() < 3
    assert all(torch.equal(v, before[k]) for k, v in theta.state_dict().items())


@pytest.mark.parametrize("cosine", [False, True])
def test_fit_heads_stacked_equal_one_by_one(cosine):
    """checks that fitting E heads at once gives each episode the head it gets alone (the
    same initial weights: one seeded stream), and that a fitted head separates its support set."""
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(3, 10, 6, generator=g), torch.arange(5).repeat(3, 2)
    torch.manual_seed(1)
    together = baselines.fit_heads(z, y, 5, cosine, steps=40, lr=0.05)(z)
    torch.manual_seed(1)
    alone = torch.cat([baselines.fit_heads(z[i:i + 1], y[i:i + 1], 5, cosine, steps=40,
                                           lr=0.05)(z[i:i + 1]) for i in range(3)])
    assert together.shape == (3, 10, 5)
    assert torch.allclose(together, alone, atol=1e-5)
    assert (together.argmax(-1) == y).all()


@pytest.mark.parametrize("cosine", [False, True])
def test_pretrain_classifier(cosine, monkeypatch, tmp_data):
    """checks stage 1: the chosen head over all source classes, a falling loss, eval mode, and
    that the seconds returned time the training (a 0.2 s sleep injected into fit is counted,
    and they fit inside the call's wall time); a second call loads θ from the cache, with the
    same weights and the seconds of the training, and trains nothing."""
    data = blob_images(noise=0.3)
    budget = dataclasses.replace(get_budget("quick"), width=4)
    real_fit, calls = baselines.fit, []

    def slow_fit(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(baselines, "fit", slow_fit)
    start = time.perf_counter()
    theta, seconds = pretrain_classifier(data, budget, cosine=cosine, steps=40, lr=1e-2,
                                         progress=False)
    wall = time.perf_counter() - start
    assert isinstance(theta.head, CosineClassifier) == cosine
    assert theta(data.x[:3]).shape == (3, data.classes)
    assert not theta.training and 0.2 <= seconds <= wall
    assert (theta(data.x).argmax(1) == data.y).float().mean() > 0.5  # chance: 1/6
    again, loaded = pretrain_classifier(data, budget, cosine=cosine, steps=40, lr=1e-2,
                                        progress=False)
    assert calls == [1] and loaded == seconds and not again.training
    assert all(torch.equal(a, b) for a, b in zip(theta.state_dict().values(),
                                                 again.state_dict().values()))


def test_compare_learners_uses_the_same_episodes():
    """checks that every learner sees identical episodes per K, and one result per (name, K)."""
    seen = {}

    def recorder(name):
        def make(shots):
            def learner(support_x, support_y, query_x):
                seen.setdefault((name, shots), []).append(support_x.clone())
                return torch.zeros(len(query_x), dtype=torch.long)
            return learner
        return make

    results = compare_learners({"a": recorder("a"), "b": recorder("b")}, blob_images(),
                               shots=[1, 2], episodes=3, ways=3, queries=2, progress=False)
    assert list(results) == ["a", "b"] and all(len(r) == 2 for r in results.values())
    assert results["a"][0][0] == pytest.approx(1 / 3)  # always "class 0": 1 of 3 classes right
    for k in (1, 2):
        assert all(torch.equal(x, y) for x, y in zip(seen[("a", k)], seen[("b", k)]))
        assert seen[("a", k)][0].shape[0] == 3 * k
