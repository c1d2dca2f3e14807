"""What the parent process alone writes per student: the gradebook entry (nbgrader's
``SaveAutoGrades`` and late penalty), the copies nbgrader keeps, and the feedback page."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .. import course
from ..check import assemble
from ..check.cells import part_of
from ..check.findings import Finding
from ..check.assemble import _copy
from ..check.score import _without_stderr
from .feedback import feedback_html


BACKUPS_KEPT = 10


def backup(course_root: Path, assignment: str) -> Path | None:
    """Copy the gradebook (``gradebook.db``, hand grades and comments included) to
    ``build/grading/<assignment>/backups/`` before a batch writes to it, keeping the newest
    ``BACKUPS_KEPT``; returns the copy (None: no gradebook yet). SQLite's own backup, so a
    copy taken while the Formgrader has the file open is consistent."""
    import sqlite3
    import time

    source = Path(course_root) / "gradebook.db"
    if not source.is_file():
        return None
    folder = Path(course_root) / "build" / "grading" / assignment / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time_ns()   # one reading (two could straddle a second: names out of order)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now // 10**9))   # UTC: no DST fold
    copy = folder / f"gradebook-{stamp}-{now % 10**9:09d}.db"
    db, into = sqlite3.connect(source), sqlite3.connect(copy)
    try:
        db.backup(into)
    finally:
        db.close()
        into.close()
    for old in sorted(folder.glob("gradebook-*.db"))[:-BACKUPS_KEPT]:
        old.unlink()
    return copy


@dataclass
class Outcome:
    """One student's recorded grade."""
    student: str
    parts: dict[str, float]
    total: float
    needs_manual: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def outcome_of(result: dict, points: dict[str, float]) -> Outcome:
    parts = {part: 0.0 for part in points}
    outcome = Outcome(result["student"], parts, 0.0)
    for name, nb in result["notebooks"].items():
        for gid, (score, _) in sorted(nb["scores"].items()):
            parts[part_of(gid)] += score or 0.0
            if score is None:
                outcome.needs_manual.append(gid)
        outcome.reasons += nb["notes"]
        findings = [Finding.from_dict(f) for f in nb["findings"]]
        outcome.tampering += [str(f) for f in findings if f.costs]
        outcome.reasons += [str(f) for f in findings if not f.costs]
    outcome.total = sum(parts.values())
    late = result.get("late")
    if late:   # recorded by the parent from nbgrader's gradebook (see _record)
        outcome.total -= late["penalty"]
        outcome.reasons.append(f"submitted {late['seconds']:g} s after the due date: late "
                               f"penalty {late['penalty']:g} ({late['method']})")
    return outcome


def record(course_root: Path, assignment: str, results: list[dict],
           outcomes: list[Outcome]) -> None:
    """Gradebook, submitted/ and autograded/ copies, and feedback, written by the parent only."""
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    api = course.nbgrader_api(course_root)
    config = api.config
    with course.gradebook(course_root) as gradebook:
        for result in results:
            gradebook.update_or_create_student(result["student"])
            gradebook.update_or_create_submission(assignment, result["student"],
                                                  timestamp=submission_time(result))
    for result, outcome in zip(results, outcomes):
        student = result["student"]
        for name, nb in result["notebooks"].items():
            executed = nbformat.read(nb["executed"], as_version=4)
            quiet = _copy(executed)
            quiet.cells = [_without_stderr(c) for c in quiet.cells]
            resources = {"nbgrader": {"notebook": name, "assignment": assignment,
                                      "student": student, "db_url": api.coursedir.db_url}}
            SaveAutoGrades().preprocess(quiet, resources)
            AssignLatePenalties(config=config).preprocess(quiet, resources)
            target = course_root / "autograded" / student / assignment / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, target)
            target = course_root / "submitted" / student / assignment / f"{name}.ipynb"
            if nb["submitted"] and Path(nb["submitted"]).resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb["submitted"], target)
                _copy_exchange_files(Path(nb["submitted"]).parent, target.parent)
            target = course_root / "feedback" / student / assignment / f"{name}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            if nb["submitted"]:   # what nbgrader's release_feedback needs beside the page
                _copy_exchange_files(Path(nb["submitted"]).parent, target.parent)
            if nb.get("feedback"):
                shutil.copyfile(nb["feedback"], target)
            else:   # the worker failed: the parent writes it
                release = nbformat.read(course_root / config.CourseDirectory.release_directory
                                        / assignment / f"{name}.ipynb", as_version=4)
                source = nbformat.read(course_root / config.CourseDirectory.source_directory
                                       / assignment / f"{name}.ipynb", as_version=4)
                target.write_text(feedback_html(executed, release, outcome, source))

EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


def _copy_exchange_files(folder: Path, target: Path) -> None:
    """The files nbgrader's exchange writes beside a submission (when it came through one)."""
    for name in EXCHANGE_FILES:
        if assemble.plain_file(folder / name) and \
                (folder / name).resolve() != (target / name).resolve():
            shutil.copyfile(folder / name, target / name, follow_symlinks=False)


def submission_time(result: dict):
    """When the student handed in: the ``timestamp.txt`` that nbgrader's exchange writes next
    to a submission (``None`` for a plain folder: never late). A stamp that is a link, too
    large or not a time is not used: the result gets a note for the instructor instead (that
    student alone; the batch goes on)."""
    from nbgrader.utils import parse_utc

    for nb in result["notebooks"].values():
        stamp = Path(nb["submitted"]).parent / "timestamp.txt" if nb["submitted"] else None
        if stamp is None or not (stamp.exists() or stamp.is_symlink()):
            continue
        why = None
        if not assemble.plain_file(stamp) or stamp.stat().st_size > 256:
            why = "is not a small plain file"
        else:
            try:
                return parse_utc(stamp.read_bytes().decode("utf-8").strip())
            except Exception as error:   # not UTF-8, not a time: dateutil raises many kinds
                why = f"is not a time ({type(error).__name__})"
        note = (f"timestamp.txt {why}: the submission time is unknown and no late penalty was "
                "applied; check it by hand")
        if note not in nb["notes"]:
            nb["notes"].append(note)
        return None
    return None


def lateness(course_root: Path, assignment: str, result: dict) -> None:
    """Put nbgrader's late penalty (``LateSubmissionPlugin.penalty_method``), which
    :func:`record` assigned in the gradebook, into ``result``."""
    from nbgrader.api import MissingEntry

    config = course.load_config(course_root)
    with course.gradebook(course_root) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, result["student"])
        except MissingEntry:
            return
        seconds = submission.total_seconds_late
        penalty = sum(nb.late_submission_penalty or 0.0 for nb in submission.notebooks)
    if seconds > 0:
        method = config.LateSubmissionPlugin.get("penalty_method", "none")
        result["late"] = {"seconds": round(seconds, 1), "penalty": penalty,
                          "method": f"LateSubmissionPlugin.penalty_method = {method}"}


NOTHING_SUBMITTED = "nothing submitted: on the roster, with no submission in the gradebook"


def missing(course_root: Path, assignment: str, graded: set[str]) -> list[str]:
    """Students of the gradebook's roster (``course students add``) who have no submission
    of ``assignment``, neither in this batch nor graded before."""
    with course.gradebook(course_root) as gradebook:
        submitted = {s.student.id for s in gradebook.assignment_submissions(assignment)} \
            if assignment in {a.name for a in gradebook.assignments} else set()
        return sorted(s.id for s in gradebook.students if s.id not in submitted | graded)
