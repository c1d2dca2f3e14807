"""Matching networks: a query's label is a vote of the support labels, weighted by attention.

Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra (2016), "Matching Networks for One Shot
Learning". An embedding f_θ maps each image to a point; a query x attends to every support
example x_i of 𝒟ᵗʳ,

    a(x, x_i) = exp(s · cos(f_θ(x), f_θ(x_i))) / Σ_j exp(s · cos(f_θ(x), f_θ(x_j))),

and its label distribution is the attention-weighted sum of the support labels (one-hot),

    p_θ(y = k | x, 𝒟ᵗʳ) = Σ_i a(x, x_i) · 1[y_i = k].

Like a prototypical network, adapting to a task is a forward pass (φᵢ is the embedded support
set itself) and meta-training learns θ from the query cross-entropy −log p_θ(y | x, 𝒟ᵗʳᵢ) over
episodes. The difference is the comparison: every support example votes (a kernel density
estimate in embedding space) instead of one mean per class, and similarity is the cosine, not
the squared distance. The paper uses s = 1; cosines lie in [−1, 1], so with s = 1 no vote can
dominate and the loss cannot fall far; ``scale`` (s = 10 here, as Baseline++'s cosine head)
sharpens the attention. The paper's "full context embeddings" (an LSTM that embeds the support
set as a whole) are left out, as in Chen et al.'s (2019) comparison.

Example::

    f = ConvNet(0, width=32)                                         # f_θ: no head
    history = meta_train(f, EpisodeSampler(train, ways=60, shots=1, queries=1), steps=3000)
    mean, ci = evaluate(f, EpisodeSampler(test, ways=5, shots=1), episodes=600)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .episodes import Episode, EpisodeSampler
from .models import ConvNet
from .training import (MetaHistory, embedded_learner, episodic_fit, episodic_trained,
                       evaluate_episodes)

SCALE = 10.0


def cosine_attention(z_query: torch.Tensor, z_support: torch.Tensor,
                     scale: float = SCALE) -> torch.Tensor:
    """a(x, x_i): softmax over the support set of s · cos(f_θ(x), f_θ(x_i)).

    Args:
        z_query: query embeddings, shape (m, d).
        z_support: support embeddings, shape (n, d).
        scale: s, the softmax's inverse temperature.

    Returns:
        shape (m, n); each row sums to 1.
    """
    cosines = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T   # (m, n)
    return (scale * cosines).softmax(dim=1)


def label_probabilities(attention: torch.Tensor, support_y: torch.Tensor,
                        ways: int) -> torch.Tensor:
    """p(y = k | x, 𝒟ᵗʳ) = Σ_i a(x, x_i) · 1[y_i = k]: attention (m, n) → (m, ways)."""
    if support_y.min() < 0 or support_y.max() >= ways:
        raise ValueError(f"support labels must lie in 0…{ways - 1} for {ways}-way episodes")
    return attention @ F.one_hot(support_y, ways).to(attention.dtype)


def episode_probabilities(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                          query_x: torch.Tensor, scale: float = SCALE) -> torch.Tensor:
    """The query label distributions of one episode, shape (m, ways): support and query embedded
    in one forward pass (batch norm in training mode normalises both alike), then compared."""
    z = model(torch.cat([support_x, query_x]))
    return features_probabilities(z[: len(support_x)], support_y, z[len(support_x):], scale)


def features_probabilities(z_support: torch.Tensor, support_y: torch.Tensor,
                           z_query: torch.Tensor, scale: float = SCALE) -> torch.Tensor:
    """p(y = k | x, 𝒟ᵗʳ) on embedded points: support (n, d) and labels (n,), queries (m, d) →
    (m, ways)."""
    attention = cosine_attention(z_query, z_support, scale)
    return label_probabilities(attention, support_y, int(support_y.max()) + 1)


def episode_loss(model: nn.Module, episode: Episode,
                 scale: float = SCALE) -> tuple[torch.Tensor, float]:
    """ℒ(θ, 𝒟ᵗʳ, 𝒟ᵗˢ) = mean over queries of −log p_θ(y | x, 𝒟ᵗʳ), and the query accuracy."""
    p = episode_probabilities(model, episode.support_x, episode.support_y, episode.query_x, scale)
    loss = F.nll_loss(p.clamp_min(1e-12).log(), episode.query_y)
    accuracy = (p.argmax(1) == episode.query_y).float().mean().item()
    return loss, accuracy


def meta_train(model: nn.Module, sampler: EpisodeSampler, steps: int, beta: float = 1e-3,
               decay_every: int = 0, scale: float = SCALE,
               val_sampler: EpisodeSampler | None = None, val_every: int = 0,
               val_episodes: int = 50, progress: bool = True,
               desc: str = "meta-train a matching network") -> MetaHistory:
    """Episodic training of f_θ: one Adam step at rate β on ℒ(θ, 𝒟ᵗʳᵢ, 𝒟ᵗˢᵢ) per episode 𝒯ᵢ
    (halved every ``decay_every`` steps); the arguments are those of
    :func:`course_lib.protonets.meta_train`. The model is left in eval mode."""
    validate = val_sampler and (lambda: evaluate(model, val_sampler, val_episodes, scale)[0])
    return episodic_fit(model, lambda m, episode: episode_loss(m, episode, scale), sampler, steps,
                        beta, decay_every, validate, val_every, progress, desc)


def meta_trained(images, budget, ways: int, shots: int, queries: int, steps: int,
                 beta: float = 1e-3, decay_every: int = 0, seed: int = 0,
                 progress: bool = True) -> tuple[nn.Module, MetaHistory]:
    """f_θ (a ConvNet without a head) meta-trained by :func:`meta_train` on ``ways``-way
    ``shots``-shot episodes of ``images``, cached like a prototypical network's
    (:func:`course_lib.training.episodic_trained`). Returns ``(model, history)``."""
    return episodic_trained("matching", lambda: ConvNet(0, width=budget.width),
                            meta_train, images, budget, ways, shots, queries, steps, beta,
                            decay_every, seed, progress)


def learner(model: nn.Module, scale: float = SCALE):
    """The learner ``(support_x, support_y, query_x) → predicted labels`` of a trained f_θ, for
    :func:`course_lib.training.evaluate_episodes` (eval mode: a query's prediction does not
    depend on the other queries)."""

    @torch.no_grad()
    def head(z_support, support_y, z_query):
        return features_probabilities(z_support, support_y, z_query, scale).argmax(1)

    return embedded_learner(model, head)


def evaluate(model: nn.Module, sampler: EpisodeSampler, episodes: int, scale: float = SCALE,
             progress: bool = False) -> tuple[float, float]:
    """Mean ± 95% CI of the query accuracy of f_θ's matching classifier over episodes."""
    return evaluate_episodes(learner(model, scale), sampler, episodes, progress=progress,
                             desc="matching-network episodes")
