"""The baselines of "A closer look at few-shot classification", and its comparison protocol.

Chen, Liu, Kira, Wang & Huang (2019) showed that plain transfer learning — train a classifier
on all meta-training classes, then fit a new head on each test task's support set — is close
to (and with a cosine classifier often above) the meta-learners, once every method gets the
same backbone and the same test episodes.

- **Baseline**: stage 1 trains f_θ with a linear head on the meta-training classes; stage 2
  freezes f_θ and fits a new linear head W on 𝒟ᵗʳ of each test episode.
- **Baseline++**: the same with a cosine classifier, logits s · cos(f_θ(x), w_k), in both
  stages; normalising both sides makes the head compare directions, which reduces the
  intra-class variation the head has to absorb.

:func:`compare_learners` evaluates any few-shot learners on the same seeded test episodes.
Used by ``notebooks/06_prototypical_networks.ipynb``.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .budget import Budget
from .data import ImageSet
from .episodes import EpisodeSampler
from .models import ConvNet
from . import seeding
from .seeding import seed_everything
from .training import MetaHistory, adam, cached, embedded_learner, evaluate_episodes, fit


def cosine_logits(z: torch.Tensor, w: torch.Tensor, scale: float) -> torch.Tensor:
    """s · cos(z_i, w_k) for every input z_i and class weight w_k.

    Args:
        z: features f_θ(x), shape (n, d), or (E, n, d) for E episodes at once.
        w: one weight vector per class, shape (ways, d), or (E, ways, d).
        scale: s; cosines lie in [−1, 1], so s sets how peaked the softmax can get.

    Returns:
        logits, shape (n, ways) or (E, n, ways); unchanged when a row of z or of w is
        multiplied by a positive number.
    """
    return scale * F.normalize(z, dim=-1) @ F.normalize(w, dim=-1).transpose(-1, -2)


class CosineClassifier(nn.Module):
    """Baseline++'s head: (n, features) → (n, classes) logits s · cos(z, w_k), no bias."""

    def __init__(self, features: int, classes: int, scale: float = 10.0):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(classes, features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's initialisation

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return cosine_logits(z, self.weight, self.scale)


def new_head(features: int, classes: int, cosine: bool, scale: float = 10.0) -> nn.Module:
    """A freshly initialised head: linear (Baseline) or cosine (Baseline++)."""
    return CosineClassifier(features, classes, scale) if cosine else nn.Linear(features, classes)


def pretrain_classifier(source: ImageSet, budget: Budget, cosine: bool = False,
                        steps: int | None = None, batch_size: int = 64, lr: float = 1e-3,
                        seed: int = 0, progress: bool = True) -> tuple[ConvNet, float]:
    """Stage 1: θ trained to classify all of ``source``'s classes; returns (θ, seconds).

    Args:
        source: the meta-training classes as one ordinary classification data set.
        budget: gives ``width`` and the default number of steps (``budget.pretrain_steps``).
        cosine: a cosine head (Baseline++) instead of a linear one (Baseline).

    The linear case is the network of :func:`course_lib.finetuning.pretrain`. θ is cached on
    disk (:func:`course_lib.training.cached`) with the seconds its training took, which are
    returned when it is loaded.
    """
    steps = steps or budget.pretrain_steps
    seed_everything(seed)
    theta = ConvNet(source.classes, width=budget.width)
    theta.head = new_head(budget.width, source.classes, cosine)
    # the effective seed names the entry: θ of another COURSE_SEED is another model
    key = (f"{'baseline_pp' if cosine else 'baseline'}_{source.name}_n{len(source)}"
           f"_c{source.classes}_w{budget.width}_s{steps}_b{batch_size}_lr{lr}"
           f"_seed{seeding.seed(seed)}")

    def train() -> MetaHistory:
        start = time.perf_counter()
        history = fit(theta, source.x, source.y, steps, lr=lr, batch_size=batch_size, seed=seed,
                      progress=progress,
                      desc=f"pre-train {'Baseline++' if cosine else 'Baseline'} θ on {source.name}")
        return MetaHistory(loss=history.loss, seconds=time.perf_counter() - start)

    return theta.eval(), cached(theta, key, train).seconds


def fit_heads(z: torch.Tensor, y: torch.Tensor, ways: int, cosine: bool = False,
              steps: int = 100, lr: float = 1e-2, scale: float = 10.0):
    """Stage 2 for E episodes at once: each episode's own head, fitted on its own 𝒟ᵗʳ.

    Args:
        z: support features f_θ(x), shape (E, ways·shots, d). y: their labels, (E, ways·shots).
        cosine: cosine heads (Baseline++) instead of linear ones (Baseline).
        steps, lr: full-batch Adam steps at rate ``lr``.

    Returns:
        ``head(z_query) → logits``: (E, n, d) → (E, n, ways).

    The E heads are stacked, weights (E, ways, d), and trained on Σᵢ ℒᵢ, the sum of the
    episodes' mean losses: head i's gradient is that of its own loss and Adam works element by
    element, so every head takes exactly the steps it would take alone, in one call for all.
    """
    E, n, d = z.shape
    w = torch.empty(E * ways, d)
    nn.init.kaiming_uniform_(w, a=5 ** 0.5)                     # nn.Linear's initialisation
    w = w.view(E, ways, d).requires_grad_()
    b = torch.zeros(E, 1, ways, requires_grad=not cosine)

    def head(features):
        if cosine:
            return cosine_logits(features, w, scale)
        return torch.baddbmm(b, features, w.transpose(1, 2))   # z wᵀ + b, episode by episode

    optimizer = adam([w, b] if not cosine else [w], lr=lr)
    for _ in range(steps):
        loss = F.cross_entropy(head(z).flatten(0, 1), y.flatten(), reduction="sum") / n
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.no_grad()(head)


def learner(theta: ConvNet, cosine: bool = False, steps: int = 100, lr: float = 1e-2,
            scale: float = 10.0):
    """Stage 2 as a learner: ``(support_x, support_y, query_x) → predicted labels``.

    The embedding f_θ stays frozen (eval mode, so batch norm uses its running statistics);
    a new head is fitted by ``steps`` full-batch Adam steps at ``lr`` on the support features
    (ways·shots, d) and applied to the query features (:func:`fit_heads`). Pass it to
    :func:`course_lib.training.evaluate_episodes`, which uses ``learner.many`` to fit the
    heads of many episodes at once.

    Args:
        theta: a network with ``features(x) → (n, d)`` (the stage-1 θ; its head is unused).
        cosine: fit a cosine head (Baseline++) instead of a linear one (Baseline).
    """

    def embed(x):   # (n, *image) → (n, d), in slices of 128 images (faster than larger ones)
        theta.eval()
        return torch.cat([theta.features(part) for part in x.split(128)])

    def many(z_support, support_y, z_query):   # E episodes stacked: (E, n, d)
        head = fit_heads(z_support, support_y, int(support_y.max()) + 1, cosine, steps, lr, scale)
        return head(z_query).argmax(-1)

    def head(z_support, support_y, z_query):
        return many(z_support[None], support_y[None], z_query[None])[0]

    head.many = many
    return embedded_learner(embed, head)


def compare_learners(learners: dict, data: ImageSet, shots: list[int], episodes: int,
                     ways: int = 5, queries: int = 15, seed: int = 2019,
                     progress: bool = True) -> dict[str, list[tuple[float, float]]]:
    """Test accuracy (mean, 95% CI) of each learner at each shot count, on the same episodes.

    Args:
        learners: name → ``make(shots)`` returning a learner ``(support_x, support_y,
            query_x) → labels`` for that shot count; adding a method is one entry.
        data: the meta-test classes (all of them are used).
        shots: K values, e.g. ``[1, 5]``.
        episodes: test episodes per K (600 in the literature).
        seed: seeds the test episodes; every learner sees the same ``episodes`` episodes.

    Returns:
        name → one (mean, ci) per K in ``shots``.
    """
    results = {}
    for name, make in tqdm(learners.items(), desc="learners", disable=not progress, leave=False):
        results[name] = []
        for k in shots:
            sampler = EpisodeSampler(data, ways=ways, shots=k, queries=queries, seed=seed)
            results[name].append(evaluate_episodes(make(k), sampler, episodes, progress=progress,
                                                   desc=f"{name} {ways}-way {k}-shot"))
    return results
