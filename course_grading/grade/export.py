"""After grading by hand: the final grades and feedback, read back from nbgrader's gradebook.

``course grade`` records the autograded points and leaves every written answer (a cell that is
both an answer and a grade cell, e.g. ``black_box``'s ``analysis``) to a person. The instructor
grades those in nbgrader's Formgrader (``jupyter lab`` in the course directory, then *Nbgrader
→ Formgrader → Manual Grading*): points and a comment per answer, stored in the gradebook.
``course export ASSIGNMENT`` then writes

- ``build/grading/<assignment>/final.csv``: one row per student, the points of each part as the
  gradebook has them now (a person's points replace the autograder's), the late penalty, the
  total, what is still to be graded by hand, the graders' comments, and the notes of
  ``course grade`` (tampering, reasons); a student of the roster with nothing submitted gets 0;
- each student's feedback page again (``feedback/<student>/<assignment>/<notebook>.html``),
  with the final points and the comments, hidden tests still removed.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat

from .. import course
from ..check.cells import assignment_points, part_of
from .feedback import feedback_html
from .record import NOTHING_SUBMITTED, Outcome, missing

COLUMNS = ["student", "late_penalty", "total", "max", "still_to_grade", "comments", "tampering",
           "reasons"]


def final_outcomes(course_root: Path, assignment: str) -> tuple[list[Outcome], dict]:
    """Every graded student's :class:`~course_grading.grade.record.Outcome` as the gradebook has
    it now, and ``{student: [comments]}`` (``"<grade_id>: <comment>"``, by hand or automatic)."""
    notes = _notes(course_root, assignment)
    outcomes, comments = [], {}
    with course.gradebook(course_root) as gradebook:
        for submission in sorted(gradebook.assignment_submissions(assignment),
                                 key=lambda s: s.student.id):
            student = submission.student.id
            parts: dict[str, float] = {}
            outcome = Outcome(student, parts, 0.0, **notes.get(student, {}))
            outcome.needs_manual = []
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    part = part_of(grade.name)
                    parts[part] = parts.get(part, 0.0) + (grade.score or 0.0)
                    if grade.needs_manual_grade:
                        outcome.needs_manual.append(grade.name)
                comments[student] = comments.get(student, []) + [
                    f"{c.name}: {c.comment}" for c in notebook.comments if c.comment]
            outcome.total = sum(parts.values()) - submission.late_submission_penalty
            outcomes.append(outcome)
    return outcomes, comments


def _notes(course_root: Path, assignment: str) -> dict[str, dict]:
    """Tampering and reasons per student from ``course grade``'s report.json (when there is one)."""
    report = course_root / "build" / "grading" / assignment / "report.json"
    if not report.is_file():
        return {}
    return {o["student"]: {"tampering": o["tampering"], "reasons": o["reasons"]}
            for o in json.loads(report.read_text())["outcomes"]}


def export(course_root: Path | str, assignment: str) -> dict:
    """Write ``final.csv`` and the feedback pages (see the module docstring); return
    ``{"csv": path, "students": n, "still_to_grade": {student: [grade_id, ...]}}``."""
    course_root = Path(course_root).resolve()
    source_dir = course.folder(course_root, "source", assignment)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"no assignment {assignment!r} in {source_dir.parent}")
    points = assignment_points(sorted(source_dir.glob("*.ipynb")))
    outcomes, comments = final_outcomes(course_root, assignment)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([COLUMNS[0], *points, *COLUMNS[1:]])
    for o in outcomes:
        penalty = sum(o.parts.values()) - o.total
        writer.writerow([o.student, *(f"{o.parts.get(p, 0.0):g}" for p in points), f"{penalty:g}",
                         f"{o.total:g}", f"{sum(points.values()):g}", "; ".join(o.needs_manual),
                         "; ".join(comments.get(o.student, [])), "; ".join(o.tampering),
                         "; ".join(o.reasons)])
        _feedback(course_root, assignment, o, comments.get(o.student, []))
    for student in missing(course_root, assignment, {o.student for o in outcomes}):
        writer.writerow([student, *("0" for _ in points), "0", "0", f"{sum(points.values()):g}",
                         "", "", "", NOTHING_SUBMITTED])
    folder = course_root / "build" / "grading" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "final.csv").write_text(buffer.getvalue())
    return {"csv": str(folder / "final.csv"), "students": len(outcomes),
            "still_to_grade": {o.student: o.needs_manual for o in outcomes if o.needs_manual}}


def _feedback(course_root: Path, assignment: str, outcome: Outcome, comments: list[str]) -> None:
    """Rewrite the student's feedback pages with the final points and the graders' comments."""
    shown = Outcome(outcome.student, outcome.parts, outcome.total, outcome.needs_manual,
                    outcome.tampering, [f"comment on {c}" for c in comments] + outcome.reasons)
    graded = course_root / "autograded" / outcome.student / assignment
    for path in sorted(graded.glob("*.ipynb")):
        release = course.folder(course_root, "release", assignment) / path.name
        source = course.folder(course_root, "source", assignment) / path.name
        target = course_root / "feedback" / outcome.student / assignment / f"{path.stem}.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(feedback_html(nbformat.read(path, as_version=4),
                                        nbformat.read(release, as_version=4), shown,
                                        nbformat.read(source, as_version=4)))


def summary(result: dict) -> str:
    lines = [f"final grades of {result['students']} student(s): {result['csv']}",
             "feedback pages rewritten with the final points and the comments"]
    for student, grade_ids in sorted(result["still_to_grade"].items()):
        lines.append(f"  still to grade by hand, {student}: {', '.join(grade_ids)}")
    return "\n".join(lines)
