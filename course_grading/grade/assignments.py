"""nbgrader's round trips: the student release of every assignment, and autograding with
nbgrader's own ``autograde`` (the tests compare ``course grade`` with it).

Command line (``make release`` runs the first)::

    python -m course_grading.grade.assignments release [ASSIGNMENT ...]
    python -m course_grading.grade.assignments autograde ASSIGNMENT STUDENT
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nbformat

from ..check.cells import grade_id, is_graded, part_of
from ..course import (REPO, check_result, folder, gradebook, in_course, nbgrader_api,
                      source_assignments)


def generate(course_root: Path | str, assignment: str) -> Path:
    """Write the student release of one assignment (``nbgrader generate_assignment --force``).

    The release is a pure function of the source notebooks (solutions and hidden tests
    removed, outputs cleared, checksums of the graded cells added), so it has the same bytes
    on every run. Returns the release folder.
    """
    course_root = Path(course_root).resolve()
    api = nbgrader_api(course_root)
    with in_course(course_root):
        check_result(api.generate_assignment(assignment, force=True, create=True),
                     f"generate_assignment {assignment}")
    return course_root / api.coursedir.release_directory / assignment


def prepared(course_root: Path | str, assignment: str) -> Path:
    """:func:`generate`, unless the release and the gradebook already match the source: the
    sources' and the release's bytes are those recorded when it last ran (a stamp in
    ``build/grading/<assignment>/``) and the gradebook knows every graded cell of every
    notebook. Grading one class in several batches then pays nbgrader's generation once."""
    course_root = Path(course_root).resolve()
    stamp = course_root / "build" / "grading" / assignment / "generated.sha256"
    source, release = folder(course_root, "source", assignment), folder(course_root, "release",
                                                                         assignment)
    if stamp.is_file() and stamp.read_text() == _digest(source, release) and \
            _in_gradebook(course_root, assignment, source):
        return release
    generate(course_root, assignment)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(_digest(source, release))
    return release


def _digest(*folders: Path) -> str:
    """sha256 of the names and bytes of every file under ``folders``."""
    digest = hashlib.sha256()
    for root in folders:
        for path in sorted(p for p in root.rglob("*") if p.is_file()
                           and ".ipynb_checkpoints" not in p.parts):
            digest.update(f"{path.relative_to(root.parent)}\0".encode())
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _in_gradebook(course_root: Path, assignment: str, source: Path) -> bool:
    """Whether the gradebook holds the assignment with exactly the source's graded cells."""
    from nbgrader.api import MissingEntry

    wanted = {path.stem: {grade_id(c) for c in nbformat.read(path, as_version=4).cells
                          if is_graded(c)} for path in sorted(source.glob("*.ipynb"))}
    try:
        with gradebook(course_root) as book:
            known = {nb.name: {c.name for c in nb.grade_cells}
                     for nb in book.find_assignment(assignment).notebooks}
    except MissingEntry:
        return False
    return known == wanted


def release(assignments=None, course_root: Path | str = REPO) -> list[Path]:
    """Regenerate ``assignments/<name>/`` from ``solutions/<name>/`` for each assignment.

    Args:
        assignments: names of assignment folders (default: every folder in ``solutions/``).
        course_root: the course directory (default: this repository).

    Returns:
        the release folders written.

    Raises:
        FileNotFoundError: a name that is not a folder of ``solutions/`` (before anything is
            written).
    """
    if isinstance(assignments, str):
        assignments = [assignments]
    known = source_assignments(course_root)
    names = list(assignments) if assignments else known
    unknown = [name for name in names if name not in known]
    if unknown:
        raise FileNotFoundError(f"no assignment {unknown[0]!r} in "
                                f"{folder(course_root, 'source')}; the assignments are: "
                                f"{', '.join(known)}")
    return [generate(course_root, name) for name in names]


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
    scores = {}
    with gradebook(course_root) as book:
        submission = book.find_submission(assignment, student)
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
    with in_course(course_root):
        check_result(api.autograde(assignment, student, force=True, create=True),
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

USAGE = """usage: python -m course_grading.grade.assignments release [ASSIGNMENT ...]
       python -m course_grading.grade.assignments autograde ASSIGNMENT STUDENT"""


def main(argv: list[str]) -> int:
    if argv[:1] == ["release"]:
        try:
            written = release(argv[1:] or None)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
        for released in written:
            print(f"released {released.relative_to(REPO)}")
        return 0
    if argv[:1] == ["autograde"] and len(argv) == 3:
        for part, score in autograde(REPO, argv[1], argv[2]).items():
            print(f"{part:28s} {score:g}")
        return 0
    print(USAGE, file=sys.stderr)
    return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
