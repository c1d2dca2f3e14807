"""A notebook's headline figures, collected into ``build/results.json`` by the course build.

A notebook ends with ``report("01a_transfer_learning", budget, acc_finetune_5shot=…, …)``:
the figures are printed (so a reader sees them) and written to
``build/figures/<notebook>.json`` with the budget that produced them.

Every quantitative sentence of a notebook's text is a named check on the figures the notebook
computed (:class:`Claims`): ``claims.check("fine-tuning beats scratch at 5 shots by ≥ 15
points", ft - scratch >= 0.15)``. The notebook ends with ``claims.verify()``, which shows the
✓/✗ table, records it in ``build/figures/<notebook>.claims.json`` (the course build puts it in
``results.json``) and fails the cell when a claim checked at this budget does not hold, so
``make course`` (default budget) and ``make test`` (quick) catch a sentence the numbers
contradict. A claim that only holds with enough training names the budgets it is checked at.
"""
from __future__ import annotations

import json

from .budget import Budget
from .paths import build_dir

BUDGETS = ("quick", "default", "full")



def report(notebook: str, budget: Budget, **figures: float) -> dict:
    """Print and save a notebook's figures (plain numbers with snake_case names)."""
    for key, value in figures.items():
        if not key.isidentifier() or key != key.lower():
            raise ValueError(f"figure names are snake_case identifiers, not {key!r}")
        figures[key] = float(value)
    record = {"budget": budget.name, "config": budget.as_dict(), "figures": figures}
    folder = build_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{notebook}.json").write_text(json.dumps(record, indent=2))
    width = max(map(len, figures), default=0)
    print(f"{notebook} — budget {budget.name!r}")
    for key, value in figures.items():
        print(f"  {key:{width}s} {value:.4f}")
    return record


def show_table(rows: dict, columns: list[str], title: str = "") -> None:
    """Print ``rows`` (name → tuple of values, one per column) as an aligned table."""
    width = max(map(len, rows), default=4) + 2
    if title:
        print(title)
    print(" " * width + "".join(f"{c:>16s}" for c in columns))
    for name, values in rows.items():
        cells = "".join(f"{v:>16.3f}" if isinstance(v, float) else f"{v!s:>16s}" for v in values)
        print(f"{name:{width}s}{cells}")


class ClaimFailed(AssertionError):
    """A sentence of the notebook that its own numbers contradict."""


class Claims:
    """The quantitative sentences of one notebook, each checked on the notebook's figures.

    Args:
        notebook: the notebook's name (``"08_rl_basics"``).
        budget: the budget it runs at; a claim is checked only at the budgets it names.
    """

    def __init__(self, notebook: str, budget: Budget):
        self.notebook, self.budget = notebook, budget
        self.rows: dict[str, dict] = {}

    def check(self, claim: str, holds, evidence: str = "", at: tuple[str, ...] = BUDGETS) -> None:
        """Record whether ``claim`` (the sentence, as the text says it) ``holds`` (returns
        nothing, so a cell that ends with a check prints no stray ``True``).

        ``evidence``: the numbers behind it, shown in the table. ``at``: the budgets where the
        claim is meaningful (e.g. ``("default", "full")`` for one that needs enough training);
        elsewhere it is listed as not checked.
        """
        if claim in self.rows:
            raise ValueError(f"claim {claim!r} is checked twice")
        unknown = set(at) - set(BUDGETS)
        if unknown:
            raise ValueError(f"unknown budget(s) {sorted(unknown)}: use {BUDGETS}")
        checked = self.budget.name in at
        self.rows[claim] = {"holds": bool(holds) if checked else None, "evidence": evidence,
                            "at": list(at)}

    def failed(self) -> list[str]:
        return [c for c, row in self.rows.items() if row["holds"] is False]

    def table(self) -> str:
        marks = {True: "✓", False: "✗", None: "·"}
        lines = [f"Claims of {self.notebook} at the {self.budget.name!r} budget "
                 "(✓ holds, ✗ does not, · not checked at this budget)"]
        for claim, row in self.rows.items():
            where = "" if row["holds"] is not None else f"  [checked at {', '.join(row['at'])}]"
            evidence = f"  ({row['evidence']})" if row["evidence"] else ""
            lines.append(f"  {marks[row['holds']]} {claim}{evidence}{where}")
        return "\n".join(lines)

    def verify(self) -> dict[str, bool]:
        """Print the table, record it, and raise :class:`ClaimFailed` if a checked claim is
        false. Returns ``{claim: holds}`` of the claims checked at this budget."""
        checked = {c: row["holds"] for c, row in self.rows.items() if row["holds"] is not None}
        folder = build_dir() / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.notebook}.claims.json").write_text(json.dumps(
            {"budget": self.budget.name, "claims": checked,
             "not_checked": [c for c, row in self.rows.items() if row["holds"] is None]},
            indent=2, ensure_ascii=False))
        print(self.table())
        if self.failed():
            raise ClaimFailed(f"{len(self.failed())} claim(s) of {self.notebook} do not hold at "
                              f"the {self.budget.name!r} budget: " + "; ".join(self.failed()))
        return checked
