"""A notebook's headline figures, collected into ``build/results.json`` by the course build.

A notebook ends with ``report("01a_transfer_learning", budget, acc_finetune_5shot=…, …)``:
the figures are printed (so a reader sees them) and written to
``build/figures/<notebook>.json`` with the budget that produced them.
"""
from __future__ import annotations

import json

from .budget import Budget
from .paths import build_dir



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
