"""A notebook's headline figures, collected into ``build/results.json`` by the course build.

A notebook ends with ``report("01a_transfer_learning", budget, acc_finetune_5shot=…, …)``:
the figures are printed (so a reader sees them) and written to
``build/figures/<notebook>.json`` with the budget that produced them.

Every quantitative sentence of a notebook's text is a named check on the figures the notebook
computed (:class:`Claims`): ``claims.beats("fine-tuning beats scratch at 5 shots by more than
15 points", ft_accs, scratch_accs, by=0.15)`` on the same tasks' accuracies. The notebook ends with ``claims.verify()``, which shows the
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
    """Print ``rows`` (name → tuple of values, one per column) as an aligned table: each column
    16 characters wide, or its header's length and two spaces where that is wider."""
    longer = [name for name, values in rows.items() if len(values) > len(columns)]
    if longer:
        raise ValueError(f"row {longer[0]!r} has more values than the {len(columns)} columns")
    width = max(map(len, rows), default=4) + 2
    widths = [max(16, len(c) + 2) for c in columns]
    if title:
        print(title)
    print(" " * width + "".join(f"{c:>{w}s}" for c, w in zip(columns, widths)))
    for name, values in rows.items():
        cells = "".join(f"{v:>{w}.3f}" if isinstance(v, float) else f"{v!s:>{w}s}"
                        for v, w in zip(values, widths))
        print(f"{name:{width}s}{cells}")


class ClaimFailed(AssertionError):
    """A sentence of the notebook that its own numbers contradict."""


class Claims:
    """The quantitative sentences of one notebook, each checked on the notebook's figures.

    Every claim records what it measured (``value``), what the sentence needs (``threshold``)
    and by how much it holds (``margin``; negative: it does not). A comparison of two methods
    is decided on *paired* samples (the same test episodes, tasks or seeds for both), by the
    95% interval of their difference, never by the order of two single numbers:

    - :meth:`beats`: a − b's interval lies above ``by`` (0 unless the sentence names a gap);
    - :meth:`ties`: a − b's interval contains 0 and is narrower than the ``width`` the
      sentence states;
    - :meth:`at_least` / :meth:`at_most`: one figure (less / plus its interval) against a
      bound the sentence states.

    :meth:`check` records a plain yes/no (a sentence about a shape or a count); it carries no
    margin, so a comparison of two noisy numbers belongs in one of the above.

    Args:
        notebook: the notebook's name (``"08_rl_basics"``).
        budget: the budget it runs at; a claim is checked only at the budgets it names.
    """

    def __init__(self, notebook: str, budget: Budget):
        self.notebook, self.budget = notebook, budget
        self.rows: dict[str, dict] = {}

    def check(self, claim: str, holds, evidence: str = "", at: tuple[str, ...] = BUDGETS, *,
              value: float, threshold: float, margin: float) -> None:
        """Record whether ``claim`` (the sentence, as the text says it) ``holds`` (returns
        nothing, so a cell that ends with a check prints no stray ``True``).

        ``evidence``: the numbers behind it, shown in the table. ``at``: the budgets where the
        claim is meaningful (e.g. ``("default", "full")`` for one that needs enough training);
        elsewhere it is listed as not checked. ``value`` (what was measured; for a sentence
        about every case, the worst case), ``threshold`` (what the sentence needs) and
        ``margin`` (how far the value clears it, negative if it does not) are required: a claim
        without them cannot show how close it came. The other methods compute them.
        """
        if (margin >= 0) != bool(holds) and margin != 0:
            raise ValueError(f"claim {claim!r}: holds={bool(holds)} but its margin is {margin:+.4g}")
        if claim in self.rows:
            raise ValueError(f"claim {claim!r} is checked twice")
        unknown = set(at) - set(BUDGETS)
        if unknown:
            raise ValueError(f"unknown budget(s) {sorted(unknown)}: use {BUDGETS}")
        checked = self.budget.name in at
        number = lambda x: None if x is None else round(float(x), 6)
        self.rows[claim] = {"holds": bool(holds) if checked else None, "evidence": evidence,
                            "at": list(at), "value": number(value),
                            "threshold": number(threshold), "margin": number(margin)}

    def at_least(self, claim: str, value: float, threshold: float, ci: float = 0.0,
                 evidence: str = "", at: tuple[str, ...] = BUDGETS) -> None:
        """``value`` (less its 95% half-width ``ci``) is at least ``threshold``."""
        margin = value - ci - threshold
        self.check(claim, margin >= 0, evidence or _pm(value, ci) + f" ≥ {threshold:.4g}", at,
                   value=value, threshold=threshold, margin=margin)

    def at_most(self, claim: str, value: float, threshold: float, ci: float = 0.0,
                evidence: str = "", at: tuple[str, ...] = BUDGETS) -> None:
        """``value`` (plus its 95% half-width ``ci``) is at most ``threshold``."""
        margin = threshold - value - ci
        self.check(claim, margin >= 0, evidence or _pm(value, ci) + f" ≤ {threshold:.4g}", at,
                   value=value, threshold=threshold, margin=margin)

    def beats(self, claim: str, a, b, by: float = 0.0, evidence: str = "",
              at: tuple[str, ...] = BUDGETS) -> None:
        """``a`` beats ``b`` by more than ``by``: the paired samples' difference a − b has a
        95% interval that lies above ``by``. ``a``, ``b``: one number per shared episode,
        task or seed (the same ones, in the same order)."""
        mean, ci = paired(a, b)
        margin = mean - ci - by
        self.check(claim, margin > 0, evidence or f"a − b = {_pm(mean, ci)} over {_n(a)} pairs",
                   at, value=mean, threshold=by, margin=margin)

    def beats_each(self, claim: str, pairs: dict, by: float = 0.0, evidence: str = "",
                   at: tuple[str, ...] = BUDGETS) -> None:
        """Every pair of ``pairs`` (``{label: (a, b)}``, paired samples as for :meth:`beats`)
        beats by more than ``by``: the sentence "a beats b in every column". The claim's value
        and margin are those of the closest pair."""
        results = {label: paired(a, b) for label, (a, b) in pairs.items()}
        mean, ci = min(results.values(), key=lambda r: r[0] - r[1])
        margin = mean - ci - by
        self.check(claim, margin > 0, evidence or "; ".join(
            f"{label}: a − b = {_pm(m, c)}" for label, (m, c) in results.items()),
            at, value=mean, threshold=by, margin=margin)

    def ties(self, claim: str, a, b, width: float, evidence: str = "",
             at: tuple[str, ...] = BUDGETS) -> None:
        """``a`` and ``b`` tie: the 95% interval of the paired difference a − b contains 0 and
        is narrower than ``width`` (the sentence's "within …"), so a real gap of that size
        would have been seen."""
        mean, ci = paired(a, b)
        margin = min(ci - abs(mean), width - 2 * ci)
        self.check(claim, margin >= 0, evidence or
                   f"a − b = {_pm(mean, ci)} over {_n(a)} pairs; interval narrower than {width:g}",
                   at, value=mean, threshold=width, margin=margin)

    def failed(self) -> list[str]:
        return [c for c, row in self.rows.items() if row["holds"] is False]

    def table(self) -> str:
        marks = {True: "✓", False: "✗", None: "·"}
        lines = [f"Claims of {self.notebook} at the {self.budget.name!r} budget "
                 "(✓ holds, ✗ does not, · not checked at this budget)"]
        for claim, row in self.rows.items():
            where = "" if row["holds"] is not None else f"  [checked at {', '.join(row['at'])}]"
            evidence = f"  ({row['evidence']})" if row["evidence"] else ""
            margin = (f"  [margin {row['margin']:+.4g}]"
                      if row["margin"] is not None and row["holds"] is not None else "")
            lines.append(f"  {marks[row['holds']]} {claim}{evidence}{margin}{where}")
        return "\n".join(lines)

    def verify(self) -> dict[str, bool]:
        """Print the table, record it, and raise :class:`ClaimFailed` if a checked claim is
        false. Returns ``{claim: holds}`` of the claims checked at this budget.

        The record (``build/figures/<notebook>.claims.json``): ``claims`` maps each claim
        checked at this budget to its ``holds``, ``value``, ``threshold`` and ``margin``."""
        checked = {c: row["holds"] for c, row in self.rows.items() if row["holds"] is not None}
        folder = build_dir() / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.notebook}.claims.json").write_text(json.dumps(
            {"budget": self.budget.name,
             "claims": {c: {k: self.rows[c][k] for k in ("holds", "value", "threshold", "margin")}
                        for c in checked},
             "not_checked": [c for c, row in self.rows.items() if row["holds"] is None]},
            indent=2, ensure_ascii=False))
        _show(self)
        if self.failed():
            raise ClaimFailed(f"{len(self.failed())} claim(s) of {self.notebook} do not hold at "
                              f"the {self.budget.name!r} budget: " + "; ".join(self.failed()))
        return checked


def _show(claims: Claims) -> None:
    """The table: in a notebook, an HTML table (smallest margin first, numbers in columns) with
    the text as its plain form; elsewhere, the text."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = lambda: None
    if get_ipython() is None:
        print(claims.table())
    else:
        display(_Table(claims))


class _Table:
    def __init__(self, claims: Claims):
        self.claims = claims

    def __repr__(self) -> str:
        return self.claims.table()

    def _repr_html_(self) -> str:
        from html import escape

        marks = {True: "✓", False: "✗", None: "·"}
        order = sorted(self.claims.rows.items(), key=lambda item: (
            item[1]["holds"] is None, item[1]["margin"] is None,
            item[1]["margin"] if item[1]["margin"] is not None else 0))
        cell = lambda x: "" if x is None else f"{x:.4g}"
        rows = "".join(
            f"<tr><td>{marks[r['holds']]}</td><td style='text-align:left'>{escape(c)}</td>"
            f"<td>{cell(r['value'])}</td><td>{cell(r['threshold'])}</td>"
            f"<td>{cell(r['margin']) if r['holds'] is not None else ''}</td>"
            f"<td style='text-align:left'>{escape(r['evidence'])}"
            f"{'' if r['holds'] is not None else ' [checked at ' + ', '.join(r['at']) + ']'}"
            "</td></tr>" for c, r in order)
        return (f"<p>Claims of {escape(self.claims.notebook)} at the "
                f"'{self.claims.budget.name}' budget, smallest margin first</p><table>"
                "<tr><th></th><th>claim</th><th>value</th><th>threshold</th><th>margin</th>"
                f"<th>evidence</th></tr>{rows}</table>")


def _n(samples) -> int:
    """How many numbers: an Estimate's samples, or the list's."""
    return len(getattr(samples, "samples", samples))


def _pm(value: float, ci: float) -> str:
    return f"{value:.4g} ± {ci:.2g}" if ci else f"{value:.4g}"


def paired(a, b) -> tuple[float, float]:
    """Mean and 95% half-width (Student's t) of a − b over paired samples (equal lengths, at
    least 2): lists of numbers, or :class:`~course_lib.training.Estimate` s (their samples)."""
    a, b = (list(map(float, getattr(x, "samples", x))) for x in (a, b))
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"a paired comparison needs two samples of equal length ≥ 2, "
                         f"not {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    sd = (sum((x - mean) ** 2 for x in d) / (len(d) - 1)) ** 0.5
    return mean, student_t(len(d) - 1) * sd / len(d) ** 0.5


# Student's t, 97.5% quantile, by degrees of freedom (a few seeds need it: 1.96 is for many)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def student_t(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (the table's entry at
    or below ``df``, so the interval errs wide; 1.96 beyond 120)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    return 1.96 if df > 120 else _T975[max(k for k in _T975 if k <= df)]
