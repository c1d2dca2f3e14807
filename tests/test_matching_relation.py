"""Matching networks and relation networks: attention, label votes, class means, relation scores,
their episode losses, training and learners (the other two rows of Chen et al.'s table)."""
import math

import pytest
import torch
from torch import nn

from course_lib import matching, relation
from course_lib.episodes import Episode, EpisodeSampler
from course_lib.models import ConvNet
from course_lib.training import evaluate_episodes
from test_protonets import Flat, blob_images


# ---------------------------------------------------------------------------- matching networks
def test_cosine_attention_by_hand():
    """checks a(x, x_i) = softmax_i(s · cos) on vectors whose cosines are 1, 0 and −1, and that
    it ignores the embeddings' lengths."""
    z_support = torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    z_query = torch.tensor([[3.0, 0.0]])
    for s in (1.0, 10.0):
        weights = torch.tensor([math.exp(s), 1.0, math.exp(-s)])
        assert torch.allclose(matching.cosine_attention(z_query, z_support, s)[0],
                              weights / weights.sum())


def test_label_probabilities_are_votes_by_class():
    """checks p(y = k | x) sums the attention of class k's support examples, rows sum to 1, and
    a label outside 0…ways−1 is refused."""
    attention = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    p = matching.label_probabilities(attention, torch.tensor([1, 0, 1]), ways=2)
    assert torch.allclose(p, torch.tensor([[0.2, 0.8], [0.1, 0.9]]))
    with pytest.raises(ValueError, match="0…1"):
        matching.label_probabilities(attention, torch.tensor([0, 2, 1]), ways=2)


def test_matching_learner_with_the_identity_embedding():
    """checks that with f(x) = x the matching classifier labels blob images (one bright square
    per class, little noise) perfectly: the nearest support image by cosine is the right one."""
    sampler = EpisodeSampler(blob_images(), ways=5, shots=1, queries=5, seed=1)
    mean, _ = evaluate_episodes(matching.learner(Flat()), sampler, episodes=5)
    assert mean == 1.0


def test_matching_meta_training_learns():
    """checks a few episodes of meta-training on noisy blobs lower the loss and beat chance."""
    torch.manual_seed(0)
    data = blob_images(noise=0.5)
    model = ConvNet(0, width=8)
    history = matching.meta_train(model, EpisodeSampler(data, ways=3, shots=1, queries=5, seed=0),
                                  steps=40, beta=1e-2, progress=False)
    assert len(history.loss) == 40
    assert sum(history.loss[-10:]) < sum(history.loss[:10])
    mean, _ = matching.evaluate(model, EpisodeSampler(data, ways=3, shots=1, queries=5, seed=1),
                                episodes=10)
    assert mean > 0.6   # chance: 1/3


# ---------------------------------------------------------------------------- relation networks
def test_relation_reads_the_class_means_so_any_k():
    """checks the relation network compares each query with the mean of its class's support
    embeddings: the episode's scores are g_φ of the prototypes, and repeating every support
    example (K = 1 → K = 3, the same means) leaves them unchanged, while a sum would triple."""
    torch.manual_seed(0)
    net = relation.RelationNet(nn.Flatten(), features=4, hidden=3).eval()
    support_x, support_y = torch.randn(2, 1, 2, 2), torch.tensor([0, 1])
    query_x = torch.randn(3, 1, 2, 2)
    scores = relation.episode_scores(net, support_x, support_y, query_x)
    c = torch.stack([support_x[0].flatten(), support_x[1].flatten()])
    assert torch.allclose(scores, relation.relation_scores(net.relation, query_x.flatten(1), c))
    tripled = relation.episode_scores(net, support_x.repeat(3, 1, 1, 1), support_y.repeat(3), query_x)
    assert torch.allclose(tripled, scores)
    with pytest.raises(ValueError, match="no example"):
        relation.episode_scores(net, support_x, torch.tensor([1, 1]), query_x)


def test_relation_scores_compare_each_class_with_each_query():
    """checks r_k(x) = g_φ([c_k ; f(x)]) pair by pair against a module set by hand: with one
    linear unit, r = σ(w_c · c_k + w_z · z + b)."""
    module = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    with torch.no_grad():
        module[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.5, 2.0]]))
        module[0].bias.fill_(-0.5)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])          # 3 classes
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]])                      # 2 queries
    scores = relation.relation_scores(module, z, c)
    expected = torch.tensor([[torch.sigmoid(torch.tensor(ck[0] - ck[1] + 0.5 * zq[0] + 2 * zq[1]
                                                         - 0.5)).item() for ck in c.tolist()]
                             for zq in z.tolist()])
    assert scores.shape == (2, 3) and torch.allclose(scores, expected)


def test_relation_episode_loss_is_the_mean_squared_error_to_one_hot():
    """checks the loss against (r − 1[y = k])² averaged by hand, and that θ and φ both get a
    gradient from it."""
    torch.manual_seed(0)
    net = relation.RelationNet(nn.Flatten(), features=4, hidden=3)   # g_φ with batch norm
    episode = Episode(support_x=torch.randn(2, 1, 2, 2), support_y=torch.tensor([0, 1]),
                      query_x=torch.randn(3, 1, 2, 2), query_y=torch.tensor([1, 0, 1]),
                      classes=torch.tensor([7, 9]))
    loss, accuracy = relation.episode_loss(net, episode)
    scores = relation.episode_scores(net, episode.support_x, episode.support_y, episode.query_x)
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(loss, ((scores - target) ** 2).mean())
    assert accuracy == (scores.argmax(1) == episode.query_y).float().mean().item()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.relation.parameters())


def test_relation_meta_training_learns():
    """checks a few episodes of meta-training θ and φ on noisy blobs lower the loss and beat
    chance on episodes it has not seen."""
    torch.manual_seed(0)
    data = blob_images(noise=0.5)
    net = relation.RelationNet(ConvNet(0, width=8), features=8)
    history = relation.meta_train(net, EpisodeSampler(data, ways=3, shots=1, queries=5, seed=0),
                                  steps=60, beta=1e-2, progress=False)
    assert sum(history.loss[-10:]) < sum(history.loss[:10])
    mean, _ = relation.evaluate(net, EpisodeSampler(data, ways=3, shots=1, queries=5, seed=1),
                                episodes=10)
    assert mean > 0.6   # chance: 1/3


@pytest.mark.parametrize("method", [matching, relation])
def test_meta_trained_is_meta_train_once_then_the_cache(method, tmp_data, monkeypatch):
    """checks that matching.meta_trained and relation.meta_trained give the θ that seeding and
    meta_train by hand give, that a second call loads it without drawing an episode, and that
    the two methods and the prototypical network keep separate cache entries."""
    import dataclasses

    from course_lib import protonets
    from course_lib.budget import get_budget
    from course_lib.seeding import seed_everything

    data, budget = blob_images(noise=0.5), dataclasses.replace(get_budget("quick"), width=8)
    episodes = dict(ways=3, shots=1, queries=2, steps=10, beta=1e-2, seed=4, progress=False)
    proto, _ = protonets.meta_trained(data, budget, **episodes)
    model, history = method.meta_trained(data, budget, **episodes)
    seed_everything(4)
    sampler = EpisodeSampler(data, ways=3, shots=1, queries=2, seed=4)
    by_hand = (ConvNet(0, width=8) if method is matching
               else relation.RelationNet(ConvNet(0, width=8), features=8))
    method.meta_train(by_hand, sampler, 10, beta=1e-2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 by_hand.state_dict().values()))
    if method is matching:   # the same net and episodes, another loss: not the protonet's entry
        assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                         proto.state_dict().values()))
    monkeypatch.setattr(EpisodeSampler, "sample", lambda self: pytest.fail("trained again"))
    again, loaded = method.meta_trained(data, budget, **episodes)
    assert loaded.seconds == history.seconds and not again.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))
