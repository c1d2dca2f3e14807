"""Grading a submission again: no recorded score lowered by accident, no hand grade undone.

``build/grading/<assignment>/graded.json`` remembers, per student, a digest of the notebooks
that were graded and of each written answer (a cell graded by hand). When ``course grade``
meets the *same* submission again (new limits, a new budget, a grader update):

- a result that would lower any recorded automatic score is not recorded unless ``--force``:
  the student is listed as not graded, with each score that would drop, and keeps the grade;
- a written answer that a person graded keeps its points, comment and "graded" state when its
  text is unchanged (nbgrader's own autograde flags every hand grade for review again); a
  changed answer is flagged, with a note saying so.

A new submission (other bytes) is graded and recorded as usual, lower or not.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import nbformat

from .. import course
from ..check.cells import grade_id


def submission_digest(folder: Path | str) -> str | None:
    """A digest of the notebooks in a student's folder (None: none readable)."""
    digest, found = hashlib.sha256(), False
    for path in sorted(Path(folder).glob("*.ipynb")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError:
            continue
        found = True
    return digest.hexdigest() if found else None


def written_answers(result: dict) -> dict[str, str]:
    """``{grade_id: digest of its text}`` of the written answers (solution cells graded by hand)
    of a result's graded notebooks."""
    answers = {}
    for nb in result["notebooks"].values():
        try:
            executed = nbformat.read(nb["executed"], as_version=4)
        except (OSError, ValueError):
            continue
        for cell in executed.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and meta.get("solution"):
                answers[grade_id(cell)] = hashlib.sha256(cell.source.encode()).hexdigest()
    return answers


class Graded:
    """What was graded of each student of an assignment (``graded.json``)."""

    def __init__(self, course_root: Path, assignment: str):
        self.path = Path(course_root) / "build" / "grading" / assignment / "graded.json"
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def same(self, student: str, digest: str | None) -> bool:
        return digest is not None and self.entries.get(student, {}).get("submission") == digest

    def answers(self, student: str) -> dict[str, str]:
        return self.entries.get(student, {}).get("answers", {})

    def add(self, student: str, digest: str | None, answers: dict[str, str]) -> None:
        self.entries[student] = {"submission": digest, "answers": answers}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(partial, self.path)


def recorded_scores(course_root: Path, assignment: str, student: str) -> dict[str, float]:
    """``{grade_id: automatic score}`` the gradebook holds for a student (none: not graded)."""
    from nbgrader.api import MissingEntry

    with course.gradebook(course_root) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return {}
        return {g.name: g.auto_score for nb in submission.notebooks for g in nb.grades
                if g.auto_score is not None}


def lowered(course_root: Path, assignment: str, result: dict, graded: Graded,
            digest: str | None) -> str | None:
    """Why recording ``result`` needs ``--force`` (the same submission as recorded, with a lower
    automatic score somewhere), or None."""
    if not graded.same(result["student"], digest):
        return None
    new = {gid: score for nb in result["notebooks"].values()
           for gid, (score, _) in nb["scores"].items()}
    old = recorded_scores(course_root, assignment, result["student"])
    drops = [f"{gid} {old[gid]:g} → {new.get(gid) or 0:g}" for gid in sorted(old)
             if (new.get(gid) or 0) < old[gid] - 1e-9]
    if not drops:
        return None
    return (f"the same submission as recorded would now score lower ({', '.join(drops)}): "
            "its recorded grade stands; grade again with --force to record the lower scores")


def keep_hand_grades(course_root: Path, assignment: str, student: str,
                     before: dict[str, str], now: dict[str, str]) -> list[str]:
    """After a result is recorded: a written answer graded by hand whose text is unchanged stays
    graded (nbgrader's ``SaveAutoGrades`` flags it again); returns notes on the changed ones."""
    from nbgrader.api import MissingEntry

    notes = []
    if not before:   # not graded by this course before: nbgrader's flags stand
        return notes
    with course.gradebook(course_root) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return notes
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.manual_score is None or grade.auto_score is not None:
                    continue
                if before.get(grade.name) is not None and before[grade.name] == now.get(grade.name):
                    grade.needs_manual_grade = False
                else:
                    notes.append(f"{grade.name} was graded by hand ({grade.manual_score:g} "
                                 "points) and its text has changed since: grade it again")
        gradebook.db.commit()
    return notes
