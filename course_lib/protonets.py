"""Prototypical networks: a class is the mean of its embedded support examples.

Snell, Swersky & Zemel (2017), "Prototypical Networks for Few-shot Learning". An embedding
f_θ maps each image to a point; the prototype of class k is the mean of its support points,

    c_k = 1/|𝒟ᵗʳ_k| · Σ_{(x, y) ∈ 𝒟ᵗʳ_k} f_θ(x),

and a query x is classified by a softmax over negative squared Euclidean distances,

    p_θ(y = k | x, 𝒟ᵗʳ) ∝ exp(−‖f_θ(x) − c_k‖²).

Adaptation to a task is a forward pass (φᵢ = the prototypes); meta-training learns θ by
minimising the query cross-entropy ℒ(θ, 𝒟ᵗʳᵢ, 𝒟ᵗˢᵢ) over episodes. Used by
``notebooks/06_prototypical_networks.ipynb``.

Example::

    f = ConvNet(0, width=32)                                         # f_θ: no head
    history = meta_train(f, EpisodeSampler(train, train_classes, ways=60, shots=1, queries=1),
                         steps=3000, beta=5e-3, decay_every=750)
    mean, ci = evaluate(f, EpisodeSampler(test, test_classes, ways=5, shots=1), episodes=600)
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .episodes import Episode, EpisodeSampler
from .models import ConvNet
from .training import (MetaHistory, embedded_learner, episodic_fit, episodic_trained,
                       evaluate_episodes, mean_ci)


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Class means c_k of embedded support examples.

    Args:
        embeddings: f_θ(x) of the support set 𝒟ᵗʳ, shape (n, d).
        labels: support labels in 0…ways−1, shape (n,).
        ways: N, the number of classes.

    Returns:
        c: shape (ways, d); row k is the mean of the rows of ``embeddings`` labelled k.

    Raises:
        ValueError: wrong shapes, a label outside 0…ways−1, or a class with no support example
            (its prototype would be undefined).
    """
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"embeddings must be (n, d) and labels (n,), got {tuple(embeddings.shape)}"
                         f" and {tuple(labels.shape)}")
    counts = torch.bincount(labels, minlength=ways)  # (ways,); negative labels raise here
    if len(counts) > ways:
        raise ValueError(f"labels must lie in 0…{ways - 1} for {ways}-way episodes")
    if not counts.all():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"the support set has no example of class(es) {missing}: every one of "
                         f"the {ways} classes needs at least one to define its prototype")
    sums = embeddings.new_zeros(ways, embeddings.shape[1]).index_add(0, labels, embeddings)
    return sums / counts[:, None].to(embeddings.dtype)


def squared_distances(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """‖z_i − c_k‖² for every query embedding z_i and prototype c_k.

    Args:
        z: query embeddings f_θ(x), shape (m, d).
        c: prototypes, shape (ways, d).

    Returns:
        shape (m, ways).
    """
    # The broadcast difference (m, ways, d) is exact; the expansion ‖z‖² − 2zᵀc + ‖c‖² is
    # cheaper but can go slightly negative through cancellation.
    return (z[:, None, :] - c[None, :, :]).pow(2).sum(-1)


def proto_logits(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Logits −‖f_θ(x) − c_k‖² of queries z (m, d) against prototypes c (ways, d): (m, ways)."""
    return -squared_distances(z, c)


def episode_logits(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                   query_x: torch.Tensor) -> torch.Tensor:
    """Query logits of one episode: embed, average the support into prototypes, compare.

    Args:
        model: the embedding f_θ, (n, *input_shape) → (n, d).
        support_x: 𝒟ᵗʳ inputs, shape (ways·shots, *input_shape).
        support_y: 𝒟ᵗʳ labels in 0…ways−1, shape (ways·shots,).
        query_x: 𝒟ᵗˢ inputs, shape (m, *input_shape).

    Returns:
        logits, shape (m, ways).
    """
    # One forward pass over support and query, so batch norm (in training mode) normalises
    # both with the same statistics.
    z = model(torch.cat([support_x, query_x]))  # (n + m, d)
    return features_logits(z[: len(support_x)], support_y, z[len(support_x):])


def features_logits(z_support: torch.Tensor, support_y: torch.Tensor,
                    z_query: torch.Tensor) -> torch.Tensor:
    """The prototype classifier on embedded points: support (n, d) and labels (n,), queries
    (m, d) → logits −‖f_θ(x) − c_k‖², shape (m, ways)."""
    return proto_logits(z_query, prototypes(z_support, support_y, int(support_y.max()) + 1))


def episode_loss(model: nn.Module, episode: Episode) -> tuple[torch.Tensor, float]:
    """ℒ(θ, 𝒟ᵗʳ, 𝒟ᵗˢ): mean query cross-entropy of the prototype classifier, and its accuracy."""
    logits = episode_logits(model, episode.support_x, episode.support_y, episode.query_x)
    loss = F.cross_entropy(logits, episode.query_y)
    acc = (logits.argmax(1) == episode.query_y).float().mean().item()
    return loss, acc


def meta_train(model: nn.Module, sampler: EpisodeSampler, steps: int, beta: float = 1e-3,
               decay_every: int = 0, val_sampler: EpisodeSampler | None = None,
               val_every: int = 0, val_episodes: int = 50, progress: bool = True,
               desc: str = "meta-train θ") -> MetaHistory:
    """Episodic training of the embedding f_θ: one Adam step on ℒ(θ, 𝒟ᵗʳᵢ, 𝒟ᵗˢᵢ) per episode 𝒯ᵢ.

    Args:
        model: the embedding f_θ (e.g. ``ConvNet(0, width)``), trained in place.
        sampler: draws the meta-training episodes (its ways, shots and queries).
        steps: number of episodes, one gradient step each.
        beta: Adam's learning rate β.
        decay_every: halve β every this many steps (0: constant β); Snell et al. halve it
            every 2,000 episodes.
        val_sampler, val_every, val_episodes: every ``val_every`` steps, the query accuracy on
            ``val_episodes`` episodes of ``val_sampler`` (meta-validation classes).

    Returns:
        a :class:`MetaHistory`; the model is left in eval mode.

    The weights are stored channels-last (NHWC): on a CPU this makes batch norm and max-pooling
    of these small feature maps about 1.5× faster; the function the model computes is unchanged.
    """
    validate = val_sampler and (lambda: evaluate(model, val_sampler, val_episodes)[0])
    return episodic_fit(model, lambda m, episode: episode_loss(m, episode), sampler, steps, beta,
                        decay_every, validate, val_every, progress, desc)


def meta_trained(images, budget, ways: int, shots: int, queries: int, steps: int,
                 beta: float = 1e-3, decay_every: int = 0, seed: int = 0,
                 progress: bool = True) -> tuple[ConvNet, MetaHistory]:
    """f_θ (a :class:`~course_lib.models.ConvNet` without a head) meta-trained by
    :func:`meta_train` on ``ways``-way ``shots``-shot episodes of ``images`` with ``queries``
    queries per class, cached (:func:`course_lib.training.episodic_trained`): a notebook run
    again loads it. Returns ``(f_θ, history)``."""
    return episodic_trained("protonet", lambda: ConvNet(0, width=budget.width), meta_train,
                            images, budget, ways, shots, queries, steps, beta, decay_every, seed,
                            progress)


def learner(model: nn.Module):
    """The learner ``(support_x, support_y, query_x) → predicted labels`` of a trained f_θ.

    For :func:`course_lib.training.evaluate_episodes`; the model runs in eval mode, so batch
    norm uses its running statistics and the prediction of a query does not depend on the
    other queries.
    """

    @torch.no_grad()
    def head(z_support, support_y, z_query):
        return features_logits(z_support, support_y, z_query).argmax(1)

    return embedded_learner(model, head)


def evaluate(model: nn.Module, sampler: EpisodeSampler, episodes: int,
             progress: bool = False) -> tuple[float, float]:
    """Mean ± 95% CI of the query accuracy of f_θ's prototype classifier over episodes."""
    return evaluate_episodes(learner(model), sampler, episodes, progress=progress,
                             desc="protonet episodes")


@torch.no_grad()
def accuracy_by_shots(model: nn.Module, sampler: EpisodeSampler, shots: list[int],
                      episodes: int, progress: bool = True) -> list[tuple[float, float]]:
    """Query accuracy (mean, 95% CI) when prototypes use only the first k support examples.

    Each episode is embedded once; for every k in ``shots`` the prototypes average the first
    k support examples of each class (nested subsets), and the same queries are classified.
    So every k is measured on the same episodes and queries — a paired comparison.

    Args:
        model: the embedding f_θ.
        sampler: episodes with at least ``max(shots)`` support examples per class.
        shots: the support sizes k to test, each ≤ ``sampler.shots``.
    """
    if max(shots) > sampler.shots:
        raise ValueError(f"the sampler has {sampler.shots} shots, cannot test {max(shots)}")
    model.eval()
    accs = {k: [] for k in shots}
    for _ in tqdm(range(episodes), desc="shots", disable=not progress, leave=False):
        episode = sampler.sample()
        z_support = model(episode.support_x)  # (ways·shots, d), grouped by class
        z_query = model(episode.query_x)
        # (ways, shots, d): support examples of each class in sampled order
        by_class = z_support.reshape(episode.ways, sampler.shots, -1)
        for k in shots:
            c = by_class[:, :k].mean(1)  # (ways, d)
            predicted = proto_logits(z_query, c).argmax(1)
            accs[k].append((predicted == episode.query_y).float().mean().item())
    return [mean_ci(accs[k]) for k in shots]
