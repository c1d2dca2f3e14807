"""Experiment sizes: one budget chosen once, passed explicitly.

``COURSE_BUDGET`` selects ``quick`` (CI: every notebook in well under a minute), ``default``
(a laptop CPU: a few minutes per notebook) or ``full`` (paper scale, for a GPU or a long run).
Every experiment takes its sizes from the :class:`Budget` it is given, and every saved result
records ``budget.name``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Budget:
    """Sizes of the course's experiments.

    Attributes:
        name: ``"quick"``, ``"default"`` or ``"full"``.
        pretrain_steps: gradient steps on the source task (θ before transfer).
        finetune_steps: gradient steps on a target task (θ → φ).
        meta_steps: outer-loop steps of a meta-learner (β updates of θ).
        eval_episodes: episodes behind a mean ± 95% CI (600 in the literature).
        repeats: independent target tasks (seeds) averaged in a comparison.
        source_classes: classes of the source data set used for pre-training (None: all).
        width: channels of each block of the conv net.
    """

    name: str
    pretrain_steps: int
    finetune_steps: int
    meta_steps: int
    eval_episodes: int
    repeats: int
    source_classes: int | None
    width: int

    def as_dict(self) -> dict:
        return asdict(self)


BUDGETS = {
    "quick": Budget("quick", pretrain_steps=50, finetune_steps=20, meta_steps=25,
                    eval_episodes=25, repeats=2, source_classes=200, width=32),
    "default": Budget("default", pretrain_steps=800, finetune_steps=100, meta_steps=2000,
                      eval_episodes=600, repeats=4, source_classes=None, width=32),
    "full": Budget("full", pretrain_steps=5000, finetune_steps=200, meta_steps=30000,
                   eval_episodes=600, repeats=20, source_classes=None, width=64),
}


def get_budget(name: str | None = None) -> Budget:
    """Return the budget called ``name``, or the one ``COURSE_BUDGET`` names (``default``)."""
    name = name or os.environ.get("COURSE_BUDGET", "default")
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}: COURSE_BUDGET must be one of {sorted(BUDGETS)}")
    return BUDGETS[name]


def try_it(n: int) -> int:
    """How long an assignment's "Try it" cell runs (``n`` steps or episodes at the default and
    full budgets): a fifth of ``n`` at the quick budget, which runs where nobody reads a
    try-it cell's output (CI, ``course check``, ``course grade``); no test depends on it."""
    return max(1, n // 5) if get_budget().name == "quick" else n
