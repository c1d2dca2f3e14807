"""What a graded notebook's integrity costs: the static reading (:mod:`.reading`) as notes, what
the kernel's guard saw while the tests ran (:mod:`course_grading.kernel.guard`) as points."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cells import grade_id, is_answer, is_student_cell, is_test, label, part_of
from .findings import Finding
from .reading import (Hit, _bindings, _names_used, _normalised, delegations, libraries_of,
                      reference_source, similarity, tricks, verbatim)
from .run import error_output


OWN_WORK = "OwnWork"   # the error a delegated part's tests get (tricks: run.TAMPERING)
SIMILAR = 0.9      # an answer this close to the course's code is shown to the instructor …
SIMILAR_SIZE = 300  # … when the course's code is long enough for closeness to mean copying,
# or when the answer also keeps the course's own prose (a short answer that computes the same
# formula is the same code whoever writes it; the course's docstring is not)


@dataclass
class Verdict:
    """What the integrity checks found in one graded notebook and what it costs.

    ``parts``: ``{part: reason}`` for parts that score 0 because the run saw the submission's
    code call the course's own implementation while the part's tests ran.
    ``findings``: what the instructor is shown (:class:`~.findings.Finding`). What the static
    reading sees never costs points by itself (an everyday notebook uses ``inspect``,
    ``globals()`` or ``%autoreload``); what the kernel's guard saw the code *do* while a test
    ran does.
    """
    parts: dict[str, str] | None = None
    findings: list[Finding] | None = None


def police(graded, declared: dict[str, tuple[str, ...]], runtime: dict[int, list[dict]] | None = None,
           repo: Path | None = None, release=None) -> Verdict:
    """Read every student cell of ``graded`` (the notebook as it is run) for tricks and
    delegation (notes for the instructor), add what the kernel's guard reported (``runtime``:
    cell index → :func:`course_grading.kernel.guard.event` dicts), and decide what it costs (see
    :class:`Verdict`). ``release``: what the student was given (its prose is not a sign of
    pasting)."""
    verdict = Verdict({}, [])
    libraries = libraries_of(c.source for c in graded.cells if c.cell_type == "code")
    # delegation is read through the names the read-only cells bind and the cell's own: a part
    # that calls another part's (delegated) answer by its name is not itself a delegation
    given = libraries_of(c.source for c in graded.cells
                         if c.cell_type == "code" and not is_student_cell(c))
    tainted: dict[str, tuple[str, str]] = {}
    shown = " ".join(c.source for c in (release.cells if release is not None else []))
    for index, cell in enumerate(graded.cells):
        if not is_student_cell(cell):
            continue
        where = label(cell, index)
        hits = tricks(cell.source, libraries)
        if hits:
            more = f" (+{len(hits) - 3} more)" if len(hits) > 3 else ""
            verdict.findings.append(Finding(
                where, "read in the code: " + "; ".join(map(str, hits[:3])) + more +
                " (a note: only what it does while the tests run costs points)", False))
        answer_part = part_of(where) if is_answer(cell) else None
        if answer_part:
            own = {answer_part: declared.get(answer_part, ())}
            uses = delegations(cell.source, own, given)
            uses += [(function, Hit(0, f"uses {name}, bound to {function} in {bound_in}"))
                     for name, (function, bound_in) in tainted.items()
                     if function in own[answer_part] and name in _names_used(cell.source)]
            for function, hit in uses[:1]:
                verdict.findings.append(Finding(
                    where, f"read in the code: {hit}, which part {answer_part} asks you to "
                    "write yourself (a note: the run decides)", False))
        else:   # names a student's own cell binds to a course function, for the answers
            tainted.update({name: (function, where) for name, function
                            in _bindings(cell.source, declared, given).items()})
        if answer_part and repo is not None:
            for function in declared.get(answer_part, ()):
                reference = reference_source(function, repo)
                ratio = similarity(cell.source, reference) if reference else 0.0
                kept = [line for line in verbatim(cell.source, reference) if line not in shown] \
                    if reference else []
                if ratio >= SIMILAR and (kept or len(_normalised(reference)) >= SIMILAR_SIZE):
                    prose = (f", with {len(kept)} of its docstring or comment lines word for "
                             "word") if kept else ""
                    verdict.findings.append(Finding(
                        where, f"the answer is {ratio:.0%} the same code as {function}{prose}: "
                        "check that it is the student's own work", False))
    for index, events in sorted((runtime or {}).items()):
        where = label(graded.cells[index], index)
        for found in events:
            kind, what = found.get("kind"), str(found.get("what", ""))
            if kind == "delegation":
                part = found.get("part") or part_of(where)
                reason = (f"{where}: {what}, which part {part} asks you to write yourself: "
                          f"0 points for {part}")
                verdict.parts.setdefault(part, reason)
                verdict.findings.append(Finding(where, reason, True))
            else:
                verdict.findings.append(Finding(where, f"the kernel's guard: {what}",
                                                kind != "note"))
    return verdict


def penalise(executed, verdict: Verdict) -> None:
    """Give the tests the verdict takes away an error output (nbgrader then scores them 0)."""
    for index, cell in enumerate(executed.cells):
        if not is_test(cell):
            continue
        part = part_of(grade_id(cell) or "")
        if part in (verdict.parts or {}):
            cell.outputs.append(error_output(OWN_WORK, verdict.parts[part]))
