"""course_lib: the helper package of the transfer- and meta-learning course.

One module per concept of the lectures:

- :mod:`course_lib.budget`   — the quick / default / full experiment sizes
- :mod:`course_lib.seeding`  — ``seed_everything`` and the compute device
- :mod:`course_lib.data`     — Omniglot, MNIST, Fashion-MNIST, digits from ``COURSE_DATA``
- :mod:`course_lib.episodes` — N-way K-shot episodes (𝒟ᵗʳ support, 𝒟ᵗˢ query)
- :mod:`course_lib.models`   — the 4-block conv net and an MLP (``functional_call``-ready)
- :mod:`course_lib.training` — fit loop with history, accuracy, mean ± 95% CI
- :mod:`course_lib.finetuning` — transfer by fine-tuning: freezing, layer-wise α, adapters
- :mod:`course_lib.protonets` — prototypical networks: class means of embeddings, distances as logits
- :mod:`course_lib.baselines` — Baseline / Baseline++ of "a closer look", same-episode comparisons
- :mod:`course_lib.blackbox` — black-box meta-learning: sequences, MANN and attention readers
- :mod:`course_lib.plots`    — the figures notebooks share
- :mod:`course_lib.results`  — headline figures of a notebook, for ``build/results.json``
- :mod:`course_lib.grading`  — nbgrader release and autograding helpers
"""
from .budget import Budget, get_budget
from .seeding import seed_everything, get_device

__all__ = ["Budget", "get_budget", "seed_everything", "get_device"]
