"""The class roster: nbgrader's students table, changed only by ``course students add/remove``.

``course grade`` grades the folders of students on the roster and lists any other folder as
not graded, so a test folder or a typo never joins the class (and every assignment's
``final.csv``) for good. Removing a student who has a recorded submission would delete their
grades: it needs ``--force``, and the gradebook is backed up first.
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import course
from .record import backup

# a student's id names their folders (submitted/<id>/, feedback/<id>/) and the exchange's
# <id>+<assignment>+<time> entries
STUDENT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}")


class RosterError(ValueError):
    """A roster change refused (a bad id, grades that removing would delete), before anything
    is written."""


def students(course_root: Path) -> list[str]:
    """The roster's student ids, sorted (none while there is no gradebook)."""
    if not (Path(course_root) / "gradebook.db").is_file():
        return []
    with course.gradebook(course_root) as gradebook:
        return sorted(s.id for s in gradebook.students)


def valid(names: list[str]) -> list[str]:
    """``names`` without repeats, or RosterError naming the first that cannot be an id."""
    for name in names:
        if not STUDENT_ID.fullmatch(name):
            raise RosterError(f"{name!r} cannot be a student id: use letters, digits and "
                              "_ . @ - (up to 100, not starting with . @ or -)")
    return list(dict.fromkeys(names))


def add(course_root: Path, names: list[str]) -> list[str]:
    """Put ``names`` on the roster; returns those that were not on it yet."""
    names = valid(names)
    on = set(students(course_root))
    with course.in_course(course_root), course.gradebook(course_root) as gradebook:
        for name in names:
            gradebook.update_or_create_student(name)
    return [n for n in names if n not in on]


def remove(course_root: Path, names: list[str], force: bool = False) -> list[str]:
    """Take ``names`` off the roster (an id not on it is an error). A student with a recorded
    submission keeps their grades unless ``force``; then the gradebook is backed up first."""
    names = valid(names)
    on = set(students(course_root))
    unknown = [n for n in names if n not in on]
    if unknown:
        raise RosterError(f"not on the roster: {', '.join(unknown)} "
                          "(`course students list` shows who is)")
    graded = submissions(course_root, names)
    if graded and not force:
        raise RosterError("removing would delete recorded grades: " + "; ".join(
            f"{n} ({', '.join(a)})" for n, a in graded.items())
            + ". Export them first (`course export`), then remove with --force")
    if graded:
        backup(course_root, "roster")
    with course.gradebook(course_root) as gradebook:
        for name in names:
            gradebook.remove_student(name)
    return names


def submissions(course_root: Path, names: list[str]) -> dict[str, list[str]]:
    """``{student: [assignment, ...]}`` for those of ``names`` with a recorded submission."""
    with course.gradebook(course_root) as gradebook:
        found = {n: sorted(s.assignment.name for s in gradebook.find_student(n).submissions)
                 for n in names}
    return {n: a for n, a in found.items() if a}
