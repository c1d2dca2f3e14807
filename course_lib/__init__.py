"""course_lib: the teaching library of the transfer- and meta-learning course.

What lecture notebooks and assignments import, one module per concept of the lectures. The
grading system (:mod:`course_grading`) and the course site (:mod:`course_site`) are packages of
their own beside it; nothing here imports them.

- :mod:`course_lib.budget`   — the quick / default / full experiment sizes
- :mod:`course_lib.seeding`  — ``seed_everything``, the seeds ``COURSE_SEED`` moves, the compute device
- :mod:`course_lib.paths`    — where the repository, data, cache and build are
- :mod:`course_lib.data`     — Omniglot, MNIST, Fashion-MNIST, digits from ``COURSE_DATA``
- :mod:`course_lib.episodes` — N-way K-shot episodes (𝒟ᵗʳ support, 𝒟ᵗˢ query)
- :mod:`course_lib.models`   — the 4-block conv net and an MLP (``functional_call``-ready)
- :mod:`course_lib.training` — fit loop with history, the model cache, accuracy, mean ± 95% CI
- :mod:`course_lib.gradients` — gradients as flat vectors (PCGrad, gradient alignment)
- :mod:`course_lib.finetuning` — transfer by fine-tuning: freezing, layer-wise α, adapters
- :mod:`course_lib.multitask` — multi-task learning: conditioning on zᵢ, sharing, task weighting, PCGrad
- :mod:`course_lib.bayes`    — the hierarchical Gaussian model: posteriors, entropy, empirical Bayes
- :mod:`course_lib.protonets` — prototypical networks: class means of embeddings, distances as logits
- :mod:`course_lib.matching` — matching networks: attention over the support set, label votes
- :mod:`course_lib.relation` — relation networks: class sums and a learned comparison module
- :mod:`course_lib.baselines` — Baseline / Baseline++ of "a closer look", same-episode comparisons
- :mod:`course_lib.blackbox` — black-box meta-learning: sequences, MANN and attention readers
- :mod:`course_lib.continual` — continual learning: streams, replay, EWC, La-MAML, the accuracy matrix R
- :mod:`course_lib.rl`       — RL basics: returns, gridworld, value iteration, bandits, Q-learning, REINFORCE
- :mod:`course_lib.plots`    — the figures notebooks share
- :mod:`course_lib.results`  — headline figures of a notebook and its claims (``Claims``), for ``build/results.json``
- :mod:`course_lib.quiz`     — check-your-understanding questions with instant feedback
- :mod:`course_lib.checks`   — test-cell helpers: ``expect_written``, ``expect_raises``
"""
from .budget import Budget, get_budget, try_it

_SEEDING = ("seed_everything", "generator", "rng", "course_seed", "get_device")
__all__ = ["Budget", "get_budget", *_SEEDING, "try_it"]


def __getattr__(name: str):
    """The helpers of :mod:`course_lib.seeding` (``seed_everything``, ``generator``, ``rng``,
    ``course_seed``, ``get_device``) import torch on first use, so the grading system, which
    uses :mod:`course_lib.paths`, starts without torch."""
    if name in _SEEDING:
        from . import seeding

        return getattr(seeding, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
