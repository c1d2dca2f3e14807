"""nbgrader's cell vocabulary, read in one place: answers, read-only cells, tests, hidden tests,
parts and points.

Each graded part of an assignment is one answer cell whose ``grade_id`` names the part
(e.g. ``fine_tune``) and test cells named ``<part>-<anything>`` (``fine_tune-visible``,
``fine_tune-hidden``); a part's points are the sum over its test cells.
"""
from __future__ import annotations

import nbformat


FLAGS = ("grade", "solution", "locked", "points", "task")
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


def nbgrader_meta(cell) -> dict:
    """The cell's ``nbgrader`` metadata (empty for a cell nbgrader does not know)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def label(cell, index: int) -> str:
    """How a report names a cell: its grade_id, or ``cell N``."""
    return grade_id(cell) or f"cell {index}"


def is_answer(cell) -> bool:
    """A cell the student writes in (nbgrader's solution cell; a written answer is also a
    grade cell, graded by a person)."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_graded(cell) -> bool:
    """A cell that scores points: a test, or a written answer a person grades."""
    return bool(nbgrader_meta(cell).get("grade"))


def points_of(cell) -> float:
    return float(nbgrader_meta(cell).get("points", 0))


def is_locked(cell) -> bool:
    """Read-only cells: statements, setup and tests (not the cells students answer in)."""
    return bool(nbgrader_meta(cell).get("locked")) and not is_answer(cell)


def is_test(cell) -> bool:
    """A test cell (graded, read-only code)."""
    return cell.cell_type == "code" and is_graded(cell) and not is_answer(cell)


def is_given(cell) -> bool:
    """A read-only code cell that is not a test (imports, data, helpers the tests use)."""
    return cell.cell_type == "code" and is_locked(cell) and not is_graded(cell)


def is_student_cell(cell) -> bool:
    """A code cell the student can change: an answer, their own cell, a release's try-it cell."""
    return cell.cell_type == "code" and not is_locked(cell)


def has_hidden_tests(cell) -> bool:
    return cell.cell_type == "code" and HIDDEN_BEGIN in cell.source


def hidden_part(cell) -> str:
    """The code between a test cell's hidden-test markers."""
    return cell.source.split(HIDDEN_BEGIN, 1)[1].split(HIDDEN_END, 1)[0]


def part_of(grade_id: str) -> str:
    """The part a graded cell belongs to: its grade_id up to the last ``-``."""
    return grade_id.rsplit("-", 1)[0]


def assignment_points(notebooks) -> dict[str, float]:
    """Points per part over all the notebooks (paths or NotebookNodes) of an assignment."""
    points: dict[str, float] = {}
    for notebook in notebooks:
        for part, value in part_points(notebook).items():
            points[part] = points.get(part, 0.0) + value
    return points


def part_points(notebook) -> dict[str, float]:
    """Points per part of a notebook (a path or a NotebookNode), from its cell metadata."""
    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(notebook, as_version=4)
    points: dict[str, float] = {}
    for cell in notebook.cells:
        if is_graded(cell):
            part = part_of(grade_id(cell))
            points[part] = points.get(part, 0.0) + points_of(cell)
    return points
