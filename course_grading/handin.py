"""``course submit ASSIGNMENT``: hand in the notebook you worked on, through nbgrader's exchange.

A student works in ``assignments/<assignment>/`` (the README says so, and the student edition's
nbgrader configuration makes it nbgrader's assignment folder, so JupyterLab's Assignments tab
submits the same files). Before anything is copied, the notebook is read as saved: with no
part answered (the file is the release as handed out, or the work was not saved), nothing is
handed in unless ``--anyway``; parts not answered yet are listed. Then nbgrader's own submit
copies the folder into the exchange, timestamped, and the latest submission counts.
"""
from __future__ import annotations

import logging
from pathlib import Path

from . import course
from .check import assemble
from .check.cells import grade_id


class HandInError(ValueError):
    """Nothing handed in; the message says why and what to do."""


def parts(notebook) -> tuple[list[str], list[str]]:
    """``(answered, not answered)``: the answer cells (nbgrader solution cells) whose text
    differs from the release's (nbgrader's checksum of the cell as handed out), and the rest."""
    from nbgrader.utils import compute_checksum, is_solution

    answered, blank = [], []
    for cell in notebook.cells:
        if is_solution(cell):
            unchanged = cell.metadata["nbgrader"].get("checksum") == compute_checksum(cell)
            (blank if unchanged else answered).append(grade_id(cell))
    return answered, blank


def submit(course_root: Path, assignment: str, anyway: bool = False) -> tuple[list[str], str]:
    """Hand in ``assignments/<assignment>/``; returns the parts not answered yet and nbgrader's
    line saying where it went."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeError
    from nbgrader.exchange.default import ExchangeSubmit

    folder = course.folder(course_root, "release", assignment)
    unknown = course.unreleased(course_root, assignment)
    if unknown:
        raise HandInError(unknown)
    answered, blank = [], []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            done, todo = parts(assemble.read_notebook(path))
        except (OSError, assemble.SubmissionError) as error:
            raise HandInError(f"cannot read {path}: {error}") from None
        answered, blank = answered + done, blank + todo
    if not answered and not anyway:
        raise HandInError(f"nothing handed in: no part of {assignment} is answered in "
                          f"{folder} as saved (save the notebook first: Ctrl+S); to hand it in "
                          f"as it is, run `course submit {assignment} --anyway`")
    config = course.load_config(course_root)
    config.CourseDirectory.assignment_id = assignment
    config.Exchange.assignment_dir = str(folder.parent)
    if "root" not in config.Exchange:
        raise HandInError("no exchange folder is set: add  c.Exchange.root = \"/path/to/exchange\""
                          f"  (your instructor gives the path) to {course_root / course.CONFIG_FILE}")
    quiet = logging.getLogger("course.submit")   # nbgrader's own log would repeat the error
    quiet.setLevel(logging.CRITICAL + 1)
    step = ExchangeSubmit(coursedir=CourseDirectory(config=config), log=quiet,
                          authenticator=Authenticator(config=config), config=config)
    try:
        step.start()
    except ExchangeError as error:
        raise HandInError(f"nbgrader's submit failed: {str(error).strip().splitlines()[-1]}") \
            from None
    return blank, f"handed in {folder} at {step.timestamp}"
