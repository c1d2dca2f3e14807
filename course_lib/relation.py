"""Relation networks: a learned module scores how well a query matches each class.

Sung, Yang, Zhang, Xiang, Torr & Hospedales (2018), "Learning to Compare: Relation Network for
Few-Shot Learning". An embedding f_θ maps each image to a point; class k is the mean of its
embedded support examples, c_k = (1/K) Σ_{(x_i, y_i) ∈ 𝒟ᵗʳ, y_i = k} f_θ(x_i) (a prototype); a
relation module g_φ reads a class and a query side by side and scores their match,

    r_k(x) = g_φ([c_k ; f_θ(x)]) ∈ (0, 1),

and the query is given the class with the highest score. θ and φ are meta-trained together by
regressing each score onto 1[y = k] (mean squared error), one Adam step per episode.

Prototypical and matching networks fix the comparison (a squared distance, a cosine); here the
comparison is learned, which is the paper's point. The paper's g_φ is two convolutional
blocks over stacked feature maps; the course's ConvNet pools a 28×28 image to a vector, so g_φ
here is a small MLP (one hidden layer with batch norm and ReLU, a sigmoid output) over the
concatenated vectors. The paper sums the support embeddings of a class and trains one model per
K; a sum grows with K, so a module trained at K = 1 misreads K = 5 (a 1-shot model tested
with sums scored 0.31 5-way 5-shot here, against 0.95 at 1-shot). The mean is the same
function at K = 1 and keeps g_φ's input on one scale for every K, so one model serves both
columns of notebook 06's table. The paper meta-trains Omniglot on 5- and 20-way episodes:
with 60-way 1-shot episodes of one query (06's ProtoNet recipe) the positives are 1 target in
60 and the scores collapsed to 0 here (query accuracy at chance).

Example::

    net = RelationNet(ConvNet(0, width=32), features=32)               # θ and φ
    history = meta_train(net, EpisodeSampler(train, ways=5, shots=1, queries=5), steps=1500)
    mean, ci = evaluate(net, EpisodeSampler(test, ways=5, shots=1), episodes=600)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .episodes import Episode, EpisodeSampler
from .protonets import prototypes
from .models import ConvNet
from .training import (MetaHistory, embedded_learner, episodic_fit, episodic_trained,
                       evaluate_episodes)


class RelationModule(nn.Module):
    """g_φ: pairs (…, 2·features) → linear → batch norm → ReLU → linear → sigmoid: (…, 1).

    Batch norm is the paper's (its conv blocks have it); without it (8 hidden units),
    meta-training on Omniglot collapsed here to one constant score (5-way 1-shot test accuracy
    exactly 0.200 after 600 episodes); with it and 64 units, 0.81 after 1,500 5-way episodes.
    """

    def __init__(self, features: int, hidden: int = 64):
        super().__init__()
        self.hidden, self.norm = nn.Linear(2 * features, hidden), nn.BatchNorm1d(hidden)
        self.score = nn.Linear(hidden, 1)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.hidden(pairs.reshape(-1, pairs.shape[-1]))).relu()
        return self.score(h).sigmoid().reshape(*pairs.shape[:-1], 1)


class RelationNet(nn.Module):
    """The embedding f_θ and the relation module g_φ (:class:`RelationModule`).

    Args:
        embedding: f_θ, (n, *input_shape) → (n, features), e.g. ``ConvNet(0, width)``.
        features: d, the embedding's output size.
        hidden: g_φ's hidden units.
    """

    def __init__(self, embedding: nn.Module, features: int, hidden: int = 64):
        super().__init__()
        self.embedding = embedding
        self.relation = RelationModule(features, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x)


def relation_scores(relation: nn.Module, z_query: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """r_k(x) = g_φ([c_k ; f_θ(x)]) for every query (m, d) and class (ways, d): (m, ways)."""
    m, ways = len(z_query), len(c)
    pairs = torch.cat([c[None].expand(m, ways, -1), z_query[:, None].expand(m, ways, -1)], dim=2)
    return relation(pairs).squeeze(-1)


def episode_scores(model: RelationNet, support_x: torch.Tensor, support_y: torch.Tensor,
                   query_x: torch.Tensor) -> torch.Tensor:
    """Relation scores of one episode, shape (m, ways): support and query embedded in one
    forward pass (batch norm in training mode normalises both alike), then compared."""
    z = model(torch.cat([support_x, query_x]))
    return features_scores(model.relation, z[: len(support_x)], support_y, z[len(support_x):])


def features_scores(relation: nn.Module, z_support: torch.Tensor, support_y: torch.Tensor,
                    z_query: torch.Tensor) -> torch.Tensor:
    """Relation scores on embedded points: support (n, d) and labels (n,), queries (m, d) →
    (m, ways)."""
    c = prototypes(z_support, support_y, int(support_y.max()) + 1)   # c_k: class means
    return relation_scores(relation, z_query, c)


def episode_loss(model: RelationNet, episode: Episode) -> tuple[torch.Tensor, float]:
    """ℒ(θ, φ, 𝒟ᵗʳ, 𝒟ᵗˢ) = mean over queries and classes of (r_k(x) − 1[y = k])², and the
    query accuracy."""
    scores = episode_scores(model, episode.support_x, episode.support_y, episode.query_x)
    target = F.one_hot(episode.query_y, scores.shape[1]).to(scores.dtype)
    accuracy = (scores.argmax(1) == episode.query_y).float().mean().item()
    return F.mse_loss(scores, target), accuracy


def meta_train(model: RelationNet, sampler: EpisodeSampler, steps: int, beta: float = 1e-3,
               decay_every: int = 0, val_sampler: EpisodeSampler | None = None,
               val_every: int = 0, val_episodes: int = 50, progress: bool = True,
               desc: str = "meta-train a relation network") -> MetaHistory:
    """Episodic training of θ and φ together: one Adam step at rate β on ℒ per episode 𝒯ᵢ
    (halved every ``decay_every`` steps); the arguments are those of
    :func:`course_lib.protonets.meta_train`. The model is left in eval mode."""
    validate = val_sampler and (lambda: evaluate(model, val_sampler, val_episodes)[0])
    return episodic_fit(model, lambda m, episode: episode_loss(m, episode), sampler, steps, beta,
                        decay_every, validate, val_every, progress, desc)


def meta_trained(images, budget, ways: int, shots: int, queries: int, steps: int,
                 beta: float = 1e-3, decay_every: int = 0, seed: int = 0,
                 progress: bool = True) -> tuple[RelationNet, MetaHistory]:
    """θ and φ (a ConvNet without a head, and g_φ) meta-trained by :func:`meta_train` on
    ``ways``-way ``shots``-shot episodes of ``images``, cached like a prototypical network's
    (:func:`course_lib.training.episodic_trained`). Returns ``(model, history)``."""
    def make_model():
        return RelationNet(ConvNet(0, width=budget.width), features=budget.width)

    return episodic_trained("relation", make_model, meta_train, images, budget, ways, shots,
                            queries, steps, beta, decay_every, seed, progress)


def learner(model: RelationNet):
    """The learner ``(support_x, support_y, query_x) → predicted labels`` of a trained relation
    network, for :func:`course_lib.training.evaluate_episodes` (eval mode)."""

    @torch.no_grad()
    def head(z_support, support_y, z_query):
        model.eval()   # g_φ's batch norm
        return features_scores(model.relation, z_support, support_y, z_query).argmax(1)

    return embedded_learner(model.embedding, head)


def evaluate(model: RelationNet, sampler: EpisodeSampler, episodes: int,
             progress: bool = False) -> tuple[float, float]:
    """Mean ± 95% CI of the relation network's query accuracy over episodes."""
    return evaluate_episodes(learner(model), sampler, episodes, progress=progress,
                             desc="relation-network episodes")
