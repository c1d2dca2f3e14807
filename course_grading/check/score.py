"""Points: per test cell by nbgrader's rule, and per part as ``course check`` shows them."""
from __future__ import annotations

import nbformat

from .assemble import _copy
from .cells import grade_id, is_answer, is_graded, nbgrader_meta, part_of, part_points, points_of
from .run import NOT_RUN, error_output


def scores_of(notebook: nbformat.NotebookNode) -> dict[str, tuple]:
    """``{grade_id: (score or None, max_score)}`` of an executed notebook, by nbgrader's rule
    (a test cell scores its points unless it produced an error). Unlike plain nbgrader, text
    on stderr (warnings, a student's debug prints) does not cost points."""
    from nbgrader.utils import determine_grade, is_grade

    scores = {}
    for cell in notebook.cells:
        if is_grade(cell):
            quiet = _without_stderr(cell)
            scores[grade_id(cell)] = determine_grade(quiet)
    return scores


def _without_stderr(cell):
    cell = _copy(cell)
    if cell.cell_type == "code":
        cell.outputs = [o for o in cell.outputs
                        if not (o.output_type == "stream" and o.get("name") == "stderr")]
    return cell


def not_run(notebook: nbformat.NotebookNode, why: str) -> nbformat.NotebookNode:
    """``notebook`` with every code cell marked as not run (its tests score 0)."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [error_output(NOT_RUN, why)], None
    return notebook


def _as_released(cell, stub: str) -> bool:
    """Whether an answer cell is still as the release has it."""
    from nbgrader.utils import compute_checksum

    checksum = nbgrader_meta(cell).get("checksum")
    if checksum:
        return compute_checksum(cell) == checksum
    return cell.source.strip() == stub.strip()


def part_status(executed: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[dict]:
    """One row per part of an executed student notebook: points, and what its tests say.

    A part whose answer cell still holds the release's stub is "not answered yet" (the cell's
    checksum, which nbgrader stored when it generated the release, still matches: ``release``
    may be the very file the student edited); test cells named ``<part>-hidden`` run only after
    submission ("graded after submission").
    """
    stubs = {grade_id(c): c.source for c in release.cells if is_answer(c)}
    points = part_points(release)
    rows = {part: {"part": part, "points": value, "earned": 0.0, "visible": [], "hidden": False,
                   "answered": True} for part, value in points.items()}
    for gid, stub in stubs.items():
        part = part_of(gid)
        if part in rows:
            answer = [c for c in executed.cells if grade_id(c) == gid]
            rows[part]["answered"] = bool(answer) and not _as_released(answer[0], stub)
    for cell in executed.cells:
        row = rows.get(part_of(grade_id(cell) or ""))
        if not is_graded(cell) or is_answer(cell) or row is None:   # a cell the release lacks
            continue
        if grade_id(cell).endswith("-hidden"):
            row["hidden"] = True
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        row["visible"].append(f"{errors[0].ename}: {errors[0].evalue}".splitlines()[0][:90]
                              if errors else "passed")
        row["earned"] += 0.0 if errors else points_of(cell)
    return list(rows.values())


def status_table(rows: list[dict]) -> tuple[str, bool]:
    """The table ``course check`` prints, and whether everything checkable passed."""
    lines = [f"{'part':26s} {'points':>8s}  visible tests", "-" * 78]
    ok = True
    for row in rows:
        if not row["answered"]:
            verdict, ok = "not answered yet", False
        elif not row["visible"]:
            verdict = "no visible test"
        else:
            failed = [v for v in row["visible"] if v != "passed"]
            verdict = "passed" if not failed else "FAILED " + failed[0]
            ok = ok and not failed
        earned = f"{row['earned']:g}/{row['points']:g}"
        lines.append(f"{row['part']:26s} {earned:>8s}  {verdict}"
                     + ("  (+ hidden tests: graded after submission)" if row["hidden"] else ""))
    return "\n".join(lines), ok
