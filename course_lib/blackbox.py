"""Black-box meta-learning: a network that reads 𝒟ᵗʳ and answers yᵗˢ = f_θ(𝒟ᵗʳ, xᵗˢ).

The mechanistic view of meta-learning: one network takes a whole training set 𝒟ᵗʳᵢ and a test
input xᵗˢ and outputs the prediction; θ is trained by ordinary supervised learning over many
meta-training tasks, max_θ Σᵢ log p_θ(yᵗˢ | 𝒟ᵗʳᵢ, xᵗˢ) (lecture: "black-box adaptation").

- :func:`to_sequence`: the sequence format of CS330's homework 1 — the N·K support pairs
  (image, one-hot label) in a fixed order, then the query images with a zero label input.
- :class:`LSTMReader`: an LSTM that reads the sequence, its state the memory of 𝒟ᵗʳ (the model
  CS330's homework calls a "MANN"; Santoro et al.'s memory-augmented network, 2016, adds an
  external memory read and written by content, which this reader does not have).
- :class:`AttentionReader`: a small transformer in which every position attends to the
  support set (in the spirit of SNAIL, Mishra et al. 2018, without its causal convolutions).
- :class:`BlackBox`: an encoder of each input followed by a reader; :func:`query_loss`,
  :func:`meta_train` and :func:`learner` train and evaluate it.
- :func:`frozen_encoder`, :class:`Standardize`, :func:`embed`: a pre-trained conv net from the
  transfer topic as a fixed encoder whose features are computed once — what gets the readers
  off the chance plateau on a CPU budget.

Both readers (unless told to read the queries in sequence, as the homework does) compute each
query's prediction from 𝒟ᵗʳ and that query alone, so the function really is f_θ(𝒟ᵗʳ, xᵗˢ)
query by query. Used by ``notebooks/04_black_box_meta_learning.ipynb``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import seeding
from .data import ImageSet
from .episodes import EpisodeSampler
from .models import ConvNet
from .seeding import seed_everything
from .training import (MetaHistory, adam, embedded_learner, evaluate_episodes,
                       freeze_frozen_batchnorm, meta_fit)


# ---------------------------------------------------------------------------- sequence format
@dataclass
class EpisodeSequence:
    """One episode laid out as a sequence of T = N·K + Q positions.

    Attributes:
        x: inputs, shape (T, *input_shape): positions 0…N·K−1 hold the support set 𝒟ᵗʳ in
            shot-major order (position k·N + n is shot k of class n), positions N·K…T−1 the
            query inputs xᵗˢ in shuffled order.
        labels: label inputs, shape (T, N): one-hot yᵗʳ on support positions, zero on queries.
        query_y: labels of the shuffled queries, shape (Q,), or None when not given.
        order: shape (Q,): query position j holds ``query_x[order[j]]``.
        support_size: N·K, the first query position.
    """

    x: torch.Tensor
    labels: torch.Tensor
    query_y: torch.Tensor | None
    order: torch.Tensor
    support_size: int


def _check(name: str, tensor: torch.Tensor, dims: int, what: str) -> None:
    if tensor.dim() != dims:
        raise ValueError(f"{name} must have shape {what}, got {tuple(tensor.shape)}")


def support_order(support_y: torch.Tensor) -> torch.Tensor:
    """Indices that put a support set in shot-major order: class 0…N−1 of shot 0, then shot 1, ….

    support_y: shape (N·K,), every label 0…N−1 exactly K times. Within a class the given order is
    kept, so the result depends only on the labels.
    """
    _check("support_y", support_y, 1, "(ways·shots,)")
    counts = torch.bincount(support_y)
    if len(support_y) == 0 or not torch.all(counts == counts[0]):
        raise ValueError(f"support_y must hold each label 0…N−1 equally often, "
                         f"got counts {counts.tolist()}")
    by_class = torch.argsort(support_y, stable=True).view(len(counts), -1)  # (N, K)
    return by_class.t().reshape(-1)  # (K, N) → (N·K,)


def to_sequence(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                query_y: torch.Tensor | None = None, ways: int | None = None,
                generator: torch.Generator | None = None) -> EpisodeSequence:
    """The sequence format of an N-way K-shot episode (a pure function of its arguments and
    ``COURSE_SEED``).

    Args:
        support_x: 𝒟ᵗʳ inputs, shape (N·K, *input_shape), in any order.
        support_y: 𝒟ᵗʳ labels, shape (N·K,), each of 0…N−1 exactly K times.
        query_x: query inputs xᵗˢ, shape (Q, *input_shape).
        query_y: query labels yᵗˢ, shape (Q,) (optional: the learner at test time has none).
        ways: width of the one-hot label input (default: N, the number of labels); a wider one
            lets a network built for N classes read an episode with fewer.
        generator: draws the query shuffle (default: ``seeding.generator(0)``, seed 0 moved by
            ``COURSE_SEED``).

    The support comes first in a fixed order so that a reader sees every class before any
    query; the queries are shuffled so that their position says nothing about their label.
    """
    _check("support_x", support_x, query_x.dim(), "(ways·shots, *input_shape) like query_x")
    if len(support_x) != len(support_y):
        raise ValueError(f"support_x has {len(support_x)} examples, support_y {len(support_y)}")
    if support_x.shape[1:] != query_x.shape[1:]:
        raise ValueError(f"query_x has input shape {tuple(query_x.shape[1:])}, support_x "
                         f"{tuple(support_x.shape[1:])}")
    if query_y is not None and query_y.shape != (len(query_x),):
        raise ValueError(f"query_y must have shape ({len(query_x)},), got {tuple(query_y.shape)}")
    s = support_order(support_y)
    ways = ways or int(support_y.max()) + 1
    if ways <= int(support_y.max()):
        raise ValueError(f"ways = {ways} is too small for labels up to {int(support_y.max())}")
    generator = generator or seeding.generator(0)
    order = torch.randperm(len(query_x), generator=generator)
    x = torch.cat([support_x[s], query_x[order]])  # (N·K + Q, *input_shape)
    labels = torch.cat([F.one_hot(support_y[s], ways).float(),
                        torch.zeros(len(query_x), ways)])  # (N·K + Q, N)
    return EpisodeSequence(x, labels, None if query_y is None else query_y[order], order, len(s))


def stack_sequences(sequences: list[EpisodeSequence]):
    """A batch of B sequences of one shape: x (B, T, *input_shape), labels (B, T, N),
    query_y (B, Q) and the support size N·K."""
    return (torch.stack([s.x for s in sequences]), torch.stack([s.labels for s in sequences]),
            torch.stack([s.query_y for s in sequences]), sequences[0].support_size)


def query_loss(logits: torch.Tensor, query_y: torch.Tensor, support_size: int) -> torch.Tensor:
    """Cross-entropy on the query positions only: −(1/BQ) Σ log p_θ(yᵗˢ | 𝒟ᵗʳ, xᵗˢ).

    logits: (B, T, N); query_y: (B, Q) with T = support_size + Q. Support positions carry their
    own label in the input, so a loss there would only teach the network to copy it.
    """
    _check("logits", logits, 3, "(batch, T, ways)")
    if query_y.shape != (logits.shape[0], logits.shape[1] - support_size):
        raise ValueError(f"query_y must have shape (batch, T − support_size) = "
                         f"{(logits.shape[0], logits.shape[1] - support_size)}, "
                         f"got {tuple(query_y.shape)}")
    return F.cross_entropy(logits[:, support_size:].flatten(0, 1), query_y.flatten())


# ---------------------------------------------------------------------------- readers
class LSTMReader(nn.Module):
    """An LSTM reader (the homework's "MANN"): it reads [features ‖ one-hot label] position by
    position.

    The LSTM's state after the support set is its memory of 𝒟ᵗʳ. By default each query is read
    as one more step *from that memory* (all queries in parallel), so a query's prediction
    depends on 𝒟ᵗʳ and on that query only. ``sequential=True`` reads the queries one after
    another in the same pass, as the homework does: query j then also depends on the queries
    before it, and a test sequence longer than the training ones is new to the network.

    Args:
        features: d, the size of an encoded input. ways: N.
        hidden: LSTM state size. layers: stacked LSTM layers.
        sequential: read the queries in one pass after the support set.
    """

    def __init__(self, features: int, ways: int, hidden: int = 128, layers: int = 1,
                 sequential: bool = False):
        super().__init__()
        self.sequential = sequential
        self.lstm = nn.LSTM(features + ways, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, ways)

    def forward(self, h: torch.Tensor, labels: torch.Tensor, support_size: int) -> torch.Tensor:
        """h: (B, T, d), labels: (B, T, N) → logits (B, T, N)."""
        inputs = torch.cat([h, labels], -1)  # (B, T, d + N)
        if self.sequential:
            return self.head(self.lstm(inputs)[0])
        b, t = inputs.shape[:2]
        read, (hx, cx) = self.lstm(inputs[:, :support_size])  # (B, NK, H); memory (L, B, H)
        q = t - support_size
        memory = (hx.repeat_interleave(q, 1), cx.repeat_interleave(q, 1))  # (L, B·Q, H)
        queries = inputs[:, support_size:].reshape(b * q, 1, -1)  # one step per query
        answer, _ = self.lstm(queries, memory)  # (B·Q, 1, H)
        return self.head(torch.cat([read, answer.view(b, q, -1)], 1))  # (B, T, N)


def reads_support(t: int, support_size: int) -> torch.Tensor:
    """Attention mask (T, T), True where position i may attend to j: j in 𝒟ᵗʳ, or j = i."""
    allowed = torch.zeros(t, t, dtype=torch.bool)
    allowed[:, :support_size] = True
    return allowed | torch.eye(t, dtype=torch.bool)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: z ← z + Attn(LN z); z ← z + MLP(LN z)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, z: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """z: (B, T, D), allowed: (T, T) → (B, T, D)."""
        b, t, d = z.shape
        qkv = self.qkv(self.norm1(z)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, D/heads)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        z = z + self.out(a.transpose(1, 2).reshape(b, t, d))
        return z + self.mlp(self.norm2(z))


class AttentionReader(nn.Module):
    """A small transformer over [features ‖ one-hot label] where queries attend to 𝒟ᵗʳ only.

    Support positions attend to the whole support set, each query to the support set and to
    itself (:func:`reads_support`). There is no positional encoding: the reader treats 𝒟ᵗʳ as a
    set, and a query's prediction depends on 𝒟ᵗʳ and on that query only.

    Args:
        features: d. ways: N. dim: width D of the residual stream. heads, layers: as usual.
    """

    def __init__(self, features: int, ways: int, dim: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.embed = nn.Linear(features + ways, dim)
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, ways)

    def forward(self, h: torch.Tensor, labels: torch.Tensor, support_size: int) -> torch.Tensor:
        """h: (B, T, d), labels: (B, T, N) → logits (B, T, N)."""
        z = self.embed(torch.cat([h, labels], -1))  # (B, T, D)
        allowed = reads_support(z.shape[1], support_size)
        for block in self.blocks:
            z = block(z, allowed)
        return self.head(self.norm(z))


# ---------------------------------------------------------------------------- the model
class BlackBox(nn.Module):
    """f_θ(𝒟ᵗʳ, xᵗˢ): an encoder of each input, then a reader of the whole sequence.

    Args:
        encoder: (n, *input_shape) → (n, d), e.g. a :class:`~course_lib.models.ConvNet`
            without head, :func:`frozen_encoder` of a pre-trained one, or ``nn.Identity()``
            for inputs that are already features (see :func:`embed`).
        reader: an :class:`LSTMReader` or :class:`AttentionReader` with ``features = d``.
    """

    def __init__(self, encoder: nn.Module, reader: nn.Module):
        super().__init__()
        self.encoder, self.reader = encoder, reader

    def forward(self, x: torch.Tensor, labels: torch.Tensor, support_size: int) -> torch.Tensor:
        """x: (B, T, *input_shape), labels: (B, T, N) → logits (B, T, N)."""
        if x.dim() < 3:
            raise ValueError(f"x must have shape (batch, T, *input_shape), got {tuple(x.shape)}")
        if labels.dim() != 3 or labels.shape[:2] != x.shape[:2]:
            raise ValueError(f"labels must have shape (batch, T, ways) = "
                             f"{(*x.shape[:2], 'ways')}, got {tuple(labels.shape)}")
        if not 0 < support_size < x.shape[1]:
            raise ValueError(f"support_size must lie in 1…T−1 = 1…{x.shape[1] - 1}, "
                             f"got {support_size}")
        b, t = x.shape[:2]
        h = self.encoder(x.flatten(0, 1)).view(b, t, -1)  # (B·T, …) → (B·T, d) → (B, T, d)
        return self.reader(h, labels, support_size)


class Standardize(nn.Module):
    """z ↦ (z − mean) / std per feature, with mean and std (d,) measured on meta-training data.

    Features of a ReLU network are all positive and share a large common offset; subtracting it
    makes different inputs point in different directions from the start, which is what a
    dot-product reader needs to tell support examples apart.

    Args:
        features: shape (n, d), e.g. the encoded meta-training images (never the meta-test ones).
    """

    def __init__(self, features: torch.Tensor):
        super().__init__()
        _check("features", features, 2, "(n, d)")
        self.register_buffer("mean", features.mean(0))
        self.register_buffer("std", features.std(0).clamp_min(1e-6))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def frozen_encoder(theta: ConvNet) -> nn.Sequential:
    """θ's conv blocks as a frozen encoder (n, 1, 28, 28) → (n, width), in eval mode.

    A copy: training a black box on top of it never changes θ, and its batch norm keeps θ's
    running statistics (see :func:`~course_lib.training.freeze_frozen_batchnorm`).
    """
    encoder = nn.Sequential(copy.deepcopy(theta.blocks), nn.Flatten())  # (n, w, 1, 1) → (n, w)
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder.eval()


@torch.no_grad()
def embed(data: ImageSet, encoder: nn.Module, batch_size: int = 1024) -> ImageSet:
    """The same examples with x replaced by ``encoder(x)``, shape (n, d).

    With a frozen encoder the features can be computed once; meta-training then samples
    episodes of features and only the reader is trained — the conv net never runs again.
    """
    encoder.eval()
    x = torch.cat([encoder(chunk) for chunk in data.x.split(batch_size)])
    return ImageSet(x, data.y, data.classes, f"{data.name}→features")


def attention_on_features(theta: ConvNet, images: ImageSet, ways: int, shots: int, steps: int,
                          seed: int = 0, progress: bool = True) -> tuple[BlackBox, MetaHistory]:
    """The course's best black-box recipe (notebook 04), trained and returned as one learner.

    θ's blocks become a frozen encoder; the meta-training images are embedded once and
    standardised; an :class:`AttentionReader` is meta-trained on ``ways``-way ``shots``-shot
    episodes of those features (one query per class). The returned :class:`BlackBox` maps images
    to logits (encoder → standardisation → reader), so it plugs into the same evaluation as any
    learner (notebook 06's comparison). The history's seconds count the reader's training only.
    """
    encoder = frozen_encoder(theta)
    raw = embed(images, encoder)
    scale = Standardize(raw.x)
    features = embed(raw, scale)
    seed_everything(seed)
    reader = AttentionReader(theta.width, ways)
    sampler = EpisodeSampler(features, ways=ways, shots=shots, queries=1, seed=seed)
    history = meta_train(BlackBox(nn.Identity(), reader), sampler, steps, seed=seed,
                         progress=progress, desc=f"attention reader, {ways}-way {shots}-shot")
    return BlackBox(nn.Sequential(encoder, scale), reader).eval(), history


# ---------------------------------------------------------------------------- training
def sample_batch(sampler, meta_batch: int, ways: int, generator: torch.Generator):
    """``meta_batch`` episodes of ``sampler`` in the sequence format, stacked
    (see :func:`stack_sequences`)."""
    episodes = [sampler.sample() for _ in range(meta_batch)]
    return stack_sequences([to_sequence(e.support_x, e.support_y, e.query_x, e.query_y, ways,
                                        generator) for e in episodes])


def meta_train(model: BlackBox, sampler, steps: int, beta: float = 1e-3, meta_batch: int = 16,
               seed: int = 0, val_sampler=None, val_every: int = 0, val_episodes: int = 50,
               progress: bool = True, desc: str = "meta-train θ") -> MetaHistory:
    """Step 2 of the recipe: max_θ Σᵢ log p_θ(yᵗˢ | 𝒟ᵗʳᵢ, xᵗˢ) over meta-training tasks 𝒯ᵢ.

    Each step draws B episodes, lays them out with :func:`to_sequence`, and takes one Adam step
    on :func:`query_loss` — plain supervised learning, with whole training sets as inputs.

    Args:
        model: the black box f_θ, trained in place (frozen parts stay frozen; left in eval mode).
        sampler: an :class:`~course_lib.episodes.EpisodeSampler` of meta-training episodes.
        steps: Adam steps. beta: learning rate β. meta_batch: episodes per step (B).
        seed: seeds the query shuffles (seed the model's initialisation yourself).
        val_sampler, val_every, val_episodes: every ``val_every`` steps, the query accuracy on
            ``val_episodes`` episodes of ``val_sampler``.

    Returns:
        a :class:`MetaHistory`. Used by ``notebooks/04_black_box_meta_learning.ipynb``.
    """
    generator = seeding.generator(seed)

    def step_loss():
        model.train()
        freeze_frozen_batchnorm(model)
        x, labels, query_y, support_size = sample_batch(sampler, meta_batch, sampler.ways,
                                                        generator)
        logits = model(x, labels, support_size)  # (B, T, N)
        correct = logits[:, support_size:].argmax(-1) == query_y  # (B, Q)
        return query_loss(logits, query_y, support_size), correct.float().mean().item()

    optimizer = adam([p for p in model.parameters() if p.requires_grad], lr=beta)
    validate = val_sampler and (lambda: evaluate(model, val_sampler, val_episodes)[0])
    history = meta_fit(step_loss, optimizer, steps, 0, validate, val_every, progress, desc)
    model.eval()
    return history


def steps_at_chance(history: MetaHistory, ways: int, window: int = 50, margin: float = 0.1):
    """How many steps training stayed at chance: the first step at which the mean query accuracy
    of the last ``window`` steps exceeds 1/N + ``margin``, or None if it never did."""
    acc = torch.tensor(history.accuracy)
    for step in range(window, len(acc) + 1):
        if acc[step - window: step].mean() > 1 / ways + margin:
            return step
    return None


def learner(model: BlackBox, ways: int, seed: int = 0):
    """A learner for :func:`~course_lib.training.evaluate_episodes`: yᵗˢ = f_θ(𝒟ᵗʳ, xᵗˢ).

    Returns a function ``(support_x, support_y, query_x) → predicted labels`` of shape (Q,),
    in the order of ``query_x``. Nothing is trained at meta-test time: adapting to 𝒟ᵗʳ is one
    forward pass.
    """
    generator = seeding.generator(seed)
    reader = BlackBox(nn.Identity(), model.reader)   # the sequence model, on encoded inputs

    @torch.no_grad()
    def head(z_support, support_y, z_query):
        model.eval()
        s = to_sequence(z_support, support_y, z_query, ways=ways, generator=generator)
        logits = reader(s.x[None], s.labels[None], s.support_size)[0, s.support_size:]  # (Q, N)
        predicted = torch.empty(len(z_query), dtype=torch.long)
        predicted[s.order] = logits.argmax(-1)  # undo the shuffle
        return predicted

    return embedded_learner(model.encoder, head)   # the encoder reads each input on its own


def evaluate(model: BlackBox, sampler, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Query accuracy of f_θ, mean ± 95% CI over ``episodes`` episodes of ``sampler``."""
    return evaluate_episodes(learner(model, sampler.ways, seed), sampler, episodes,
                             progress=False)
