"""A term's steps through nbgrader's exchange, as ``course`` subcommands.

``course deadline``, ``course handout``, ``course collect`` and ``course feedback`` call
nbgrader's API from the course directory with this interpreter's ``bin/`` on PATH (nbgrader
shells out to ``alembic``), so they run the same from a fresh clone whatever the shell's PATH;
each checks its input first and says in one line what is wrong (:class:`TermError`).
"""
from __future__ import annotations

from pathlib import Path

from .. import course


class TermError(ValueError):
    """A step refused before anything was written, or nbgrader's first line of why it failed."""


def _known(course_root: Path, assignment: str) -> None:
    unknown = course.unreleased(course_root, assignment)
    if unknown:
        raise TermError(unknown)


def _exchange(course_root: Path) -> Path:
    config = course.load_config(course_root)
    root = Path(config.Exchange.root) if "root" in config.Exchange else None
    if root is None or not root.is_dir():
        raise TermError(f"no exchange folder{f' at {root}' if root else ''}: set "
                        f"c.Exchange.root in {Path(course_root) / course.CONFIG_FILE} to a folder "
                        "that you and the students share")
    return root


def _api(course_root: Path, step: str, *args) -> dict:
    with course.in_course(course_root):
        result = getattr(course.nbgrader_api(course_root), step)(*args)
    if not result.get("success"):
        why = (result.get("error") or result.get("log") or "no reason given").strip()
        raise TermError(f"nbgrader's {step} failed: {why.splitlines()[-1]}")
    return result


def deadline(course_root: Path, assignment: str, when: str) -> str:
    """Set the due date (``"2027-01-15 23:59:00 UTC"``): later submissions get nbgrader's late
    penalty. Returns the date as recorded (UTC)."""
    from nbgrader.utils import parse_utc

    _known(course_root, assignment)
    try:
        due = parse_utc(when)
    except (ValueError, OverflowError, TypeError):
        raise TermError(f"{when!r} is not a date and time (e.g. \"2027-01-15 23:59:00 UTC\")") \
            from None
    with course.in_course(course_root), course.gradebook(course_root) as gradebook:
        gradebook.update_or_create_assignment(assignment, duedate=due)
    return f"{due:%Y-%m-%d %H:%M:%S} UTC"


def handout(course_root: Path, assignment: str) -> Path:
    """Put the release (``assignments/<assignment>``) in the exchange for students to fetch."""
    _known(course_root, assignment)
    _exchange(course_root)
    _api(course_root, "release_assignment", assignment)
    return course.folder(course_root, "release", assignment)


def collect(course_root: Path, assignment: str) -> list[str]:
    """Copy each student's latest submission into ``submitted/``; returns who has one there."""
    _known(course_root, assignment)
    _exchange(course_root)
    _api(course_root, "collect", assignment)
    submitted = Path(course_root) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def feedback(course_root: Path, assignment: str) -> list[str]:
    """Put every graded student's feedback page in the exchange (``nbgrader fetch_feedback``
    brings it to them); returns the students."""
    _known(course_root, assignment)
    _exchange(course_root)
    graded = sorted(p.parent.name for p in (Path(course_root) / "feedback").glob(f"*/{assignment}")
                    if any(p.glob("*.html")))
    if not graded:
        raise TermError(f"no feedback for {assignment} yet: grade it first "
                        f"(`course grade {assignment} submitted`)")
    _api(course_root, "release_feedback", assignment)
    return graded
