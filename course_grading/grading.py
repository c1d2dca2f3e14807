"""Grading tools: the student release of every assignment and autograding, via nbgrader's API.

The repository root is an nbgrader course directory (see ``nbgrader_config.py``):
``solutions/<assignment>/`` holds the source notebooks with solutions and hidden tests,
``assignments/<assignment>/`` the student release generated from them, and
``submitted/``, ``autograded/`` and ``gradebook.db`` are local, git-ignored grading state.

Parts and points
    Each graded part of an assignment is one solution cell whose ``grade_id`` names the part
    (e.g. ``fine_tune``) and test cells named ``<part>-<anything>`` (``fine_tune-visible``,
    ``fine_tune-hidden``). A part's score is the sum over its test cells, so
    :func:`autograde` can report points per part.

Command line (the Makefile's ``make release`` runs the first)::

    python -m course_grading.grading release [ASSIGNMENT ...]
    python -m course_grading.grading autograde ASSIGNMENT STUDENT

Used by ``tests/test_grading.py``.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import nbformat

from course_lib.paths import REPO

CONFIG_FILE = "nbgrader_config.py"


class GradingError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's log or traceback."""


# ---------------------------------------------------------------------------- nbgrader API
@contextlib.contextmanager
def _in_course(course_root: Path):
    """Run with cwd = the course root and this interpreter's bin/ first on PATH.

    nbgrader resolves some paths against the working directory and shells out to
    ``alembic`` (installed next to this interpreter) when it creates a gradebook.
    """
    old_cwd, old_path = os.getcwd(), os.environ.get("PATH", "")
    os.chdir(course_root)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old_path])
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ["PATH"] = old_path


def load_config(course_root: Path | str = REPO):
    """The course's ``nbgrader_config.py`` with ``CourseDirectory.root`` set to ``course_root``."""
    from traitlets.config.loader import PyFileConfigLoader

    course_root = Path(course_root).resolve()
    config = PyFileConfigLoader(CONFIG_FILE, path=str(course_root)).load_config()
    config.CourseDirectory.root = str(course_root)
    return config


def nbgrader_api(course_root: Path | str = REPO):
    """An ``NbGraderAPI`` for the course directory ``course_root``."""
    from nbgrader.apps import NbGraderAPI

    return NbGraderAPI(config=load_config(course_root))


def _check(result: dict, what: str) -> None:
    if not result.get("success"):
        raise GradingError(f"{what} failed:\n{result.get('error') or result.get('log', '')}")


# ---------------------------------------------------------------------------- release
def source_assignments(course_root: Path | str = REPO) -> list[str]:
    """Names of the assignment folders in the course's source directory (sorted)."""
    source = Path(course_root) / load_config(course_root).CourseDirectory.source_directory
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))


def generate(course_root: Path | str, assignment: str) -> Path:
    """Write the student release of one assignment (``nbgrader generate_assignment --force``).

    The release is a pure function of the source notebooks (solutions and hidden tests
    removed, outputs cleared, checksums of the graded cells added), so it has the same bytes
    on every run. Returns the release folder.
    """
    course_root = Path(course_root).resolve()
    api = nbgrader_api(course_root)
    with _in_course(course_root):
        _check(api.generate_assignment(assignment, force=True, create=True),
               f"generate_assignment {assignment}")
    return course_root / api.coursedir.release_directory / assignment


def release(assignments=None, course_root: Path | str = REPO) -> list[Path]:
    """Regenerate ``assignments/<name>/`` from ``solutions/<name>/`` for each assignment.

    Args:
        assignments: names of assignment folders (default: every folder in ``solutions/``).
        course_root: the course directory (default: this repository).

    Returns:
        the release folders written.
    """
    if isinstance(assignments, str):
        assignments = [assignments]
    names = list(assignments) if assignments else source_assignments(course_root)
    return [generate(course_root, name) for name in names]


# ---------------------------------------------------------------------------- grading
def part_of(grade_id: str) -> str:
    """The part a graded cell belongs to: its grade_id up to the last ``-``."""
    return grade_id.rsplit("-", 1)[0]


def part_points(notebook) -> dict[str, float]:
    """Points per part of a notebook (a path or a NotebookNode), from its cell metadata."""
    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(notebook, as_version=4)
    points: dict[str, float] = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            part = part_of(meta["grade_id"])
            points[part] = points.get(part, 0.0) + float(meta.get("points", 0))
    return points


def submit(course_root: Path | str, assignment: str, student: str, notebooks: dict) -> Path:
    """Place a student's notebooks in ``submitted/<student>/<assignment>/`` (as ``collect`` does).

    Args:
        notebooks: ``{notebook name without .ipynb: NotebookNode}``.
    """
    folder = Path(course_root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, notebook in notebooks.items():
        nbformat.write(notebook, folder / f"{name}.ipynb")
    return folder


def cell_scores(course_root: Path | str, assignment: str, student: str) -> dict[str, tuple]:
    """``{grade_id: (score, max_score)}`` of every graded cell of a graded submission."""
    from nbgrader.api import Gradebook

    config = load_config(course_root)
    api = nbgrader_api(course_root)
    scores = {}
    with Gradebook(api.coursedir.db_url, config.CourseDirectory.course_id) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                scores[grade.name] = (float(grade.score), float(grade.max_score))
    return scores


def autograde(course_root: Path | str, assignment: str, student: str) -> dict[str, float]:
    """Autograde ``submitted/<student>/<assignment>/`` and return the points per part.

    Runs ``nbgrader autograde`` through the Python API (the notebook is executed, hidden tests
    included) and reads the gradebook. The assignment must have been generated in the same
    course directory first (:func:`generate`), which records its cells in the gradebook.

    Returns:
        ``{part: points scored, ..., "total": sum}``.
    """
    course_root = Path(course_root).resolve()
    api = nbgrader_api(course_root)
    with _in_course(course_root):
        _check(api.autograde(assignment, student, force=True, create=True),
               f"autograde {assignment} for {student}")
    return part_scores(course_root, assignment, student)


def part_scores(course_root: Path | str, assignment: str, student: str) -> dict[str, float]:
    """``{part: points scored, ..., "total": sum}`` of a graded submission, from the gradebook
    (whichever grader recorded it: nbgrader's ``autograde`` or ``course grade``)."""
    scores: dict[str, float] = {}
    for grade_id, (score, _) in sorted(cell_scores(course_root, assignment, student).items()):
        scores[part_of(grade_id)] = scores.get(part_of(grade_id), 0.0) + score
    scores["total"] = sum(scores.values())
    return scores


# ---------------------------------------------------------------------------- command line
USAGE = """usage: python -m course_grading.grading release [ASSIGNMENT ...]
       python -m course_grading.grading autograde ASSIGNMENT STUDENT"""


def main(argv: list[str]) -> int:
    if argv[:1] == ["release"]:
        for folder in release(argv[1:] or None):
            print(f"released {folder.relative_to(REPO)}")
        return 0
    if argv[:1] == ["autograde"] and len(argv) == 3:
        for part, score in autograde(REPO, argv[1], argv[2]).items():
            print(f"{part:28s} {score:g}")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
