"""The Formgrader shows the totals ``course export`` writes: the late penalty taken off.

nbgrader records a late submission's penalty in the gradebook
(``SubmittedNotebook.late_submission_penalty``, set by ``LateSubmissionPlugin``) and its own
export subtracts it, but the Formgrader's pages show the score before it: a student whose
late hand-in scored 8 of 14 under ``penalty_method = "zero"`` was listed at 8/14 there and at 0
in ``final.csv``. The Formgrader's pages read their scores from
:class:`nbgrader.apps.api.NbGraderAPI`; this server extension (``make setup`` enables it in the
instructor's virtual environment) makes the methods that return a student's score per
notebook, per submission and over the term return it less the penalty, with the penalty
itself as ``late_submission_penalty``. The points per cell, which a person grades by hand,
are left as they are.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from nbgrader.api import MissingEntry
from nbgrader.apps.api import NbGraderAPI

PENALTY = "late_submission_penalty"


def _take_off(row: dict | None, penalty: float) -> dict | None:
    """``row`` with ``penalty`` taken off its score, once."""
    if row is not None and PENALTY not in row:
        row["score"] = row.get("score", 0.0) - penalty
        row[PENALTY] = penalty
    return row


def _submission_penalty(gradebook, assignment: str, student: str) -> float:
    try:
        return gradebook.find_submission(assignment, student).late_submission_penalty or 0.0
    except MissingEntry:
        return 0.0


def _notebook_penalty(gradebook, notebook: str, assignment: str, student: str) -> float:
    try:
        return gradebook.find_submission_notebook(notebook, assignment, student) \
            .late_submission_penalty or 0.0
    except MissingEntry:
        return 0.0


def _student_penalty(gradebook, student: str) -> float:
    try:
        return sum(s.late_submission_penalty or 0.0
                   for s in gradebook.find_student(student).submissions)
    except MissingEntry:
        return 0.0


def _rows(method, penalty_of):
    """Wrap an NbGraderAPI method whose result is a row or a list of rows: ``penalty_of(
    gradebook, row, *args)`` is each row's penalty."""
    @functools.wraps(method)
    def penalised(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        rows = result if isinstance(result, list) else [result]
        with self.gradebook as gradebook:
            for row in rows:
                if row is not None:
                    _take_off(row, penalty_of(gradebook, row, *args))
        return result

    penalised.__course_penalised__ = True
    return penalised


_PENALTIES = {
    "get_submission": lambda gb, row, assignment, student, *_: _submission_penalty(
        gb, assignment, student),
    "get_submissions": lambda gb, row, assignment, *_: _submission_penalty(
        gb, assignment, row["student"]),
    "get_notebook_submissions": lambda gb, row, assignment, notebook, *_: _notebook_penalty(
        gb, notebook, assignment, row["student"]),
    "get_student_notebook_submissions": lambda gb, row, student, assignment, *_:
        _notebook_penalty(gb, row["name"], assignment, student),
    "get_student": lambda gb, row, *_: _student_penalty(gb, row["id"]),
    "get_students": lambda gb, row, *_: _student_penalty(gb, row["id"]),
}
# get_student_submissions builds its rows with get_submission, so it needs nothing of its own


def penalise_formgrader() -> None:
    """Make :class:`NbGraderAPI`'s score methods take the late penalty off (once)."""
    for name, penalty_of in _PENALTIES.items():
        method = getattr(NbGraderAPI, name)
        if not getattr(method, "__course_penalised__", False):
            setattr(NbGraderAPI, name, _rows(method, penalty_of))


MODULE = "course_grading.grade.formgrader"


def enable(prefix: Path = Path(sys.prefix)) -> Path:
    """Enable this extension in the Jupyter servers of the environment at ``prefix`` (``make
    setup`` runs ``python -m course_grading.grade.formgrader``); returns the file written."""
    path = prefix / "etc" / "jupyter" / "jupyter_server_config.d" / "course_grading.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {MODULE: True}}},
                               indent=2) + "\n")
    return path


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": MODULE}]


def _load_jupyter_server_extension(server_app) -> None:
    penalise_formgrader()
    server_app.log.info("course_grading: the Formgrader's totals have the late penalty taken off")


if __name__ == "__main__":
    print(f"enabled {MODULE} in {enable()}")
