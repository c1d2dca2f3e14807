"""A student's submission as the grader sees it: find it, read it, check it against the
release, and rebuild the notebook that is graded.

Every function here is pure notebook logic (no kernel, no gradebook), so the odd cases a
real class produces are unit-tested one by one:

- :func:`collect`: the submissions of a class, from a folder per student or nbgrader's exchange;
- :func:`find_notebook`: a renamed notebook is still found;
- :func:`read_notebook`: invalid JSON becomes a :class:`SubmissionError` with a readable reason;
- :func:`check`: tampering with read-only or test cells (edited, deleted, re-typed cells,
  forged nbgrader metadata), compared with the student release, so hidden tests, which the
  release does not contain, never raise a false alarm (what the code in a cell does is
  :mod:`course_grading.check.reading`'s business);
- :func:`graded_notebook`: the notebook that is run — the release's cells in the release's
  order, read-only and test cells taken from the source (hidden tests restored), the
  student's answers and extra cells where the student put them.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from .cells import FLAGS, grade_id, is_answer, is_locked, nbgrader_meta
from .findings import Finding


class SubmissionError(ValueError):
    """A submission that cannot be graded as it is; the message says why, for the instructor."""


def collect(folder: Path | str, assignment: str) -> dict[str, Path]:
    """``{student: folder holding their notebooks}`` for every submission under ``folder``.

    Layouts: ``folder/<student>/<assignment>/*.ipynb`` (nbgrader's ``submitted``),
    ``folder/<student>/*.ipynb`` (a folder per student), and nbgrader's exchange,
    ``folder[/<course>]/inbound/<student>+<assignment>+<timestamp>/`` (the latest one wins).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no submissions folder {folder}")
    inbound = [p for p in [folder / "inbound", *folder.glob("*/inbound")] if p.is_dir()]
    found: dict[str, Path] = {}
    if inbound:
        for entry in sorted(p for box in inbound for p in box.iterdir()
                            if p.is_dir() and not p.is_symlink()):
            student, _, rest = entry.name.partition("+")
            name, _, stamp = rest.partition("+")
            if name == assignment and (student not in found or stamp >= found[student][0]):
                found[student] = (stamp, entry)
        return {s: p for s, (_, p) in sorted(found.items())}
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                          and not p.name.startswith(".")):   # a linked folder is not followed
        inner = student / assignment
        found[student.name] = inner if inner.is_dir() and not inner.is_symlink() else student
    return found


def plain_file(path: Path) -> bool:
    """A regular file that is not a link (a submission's links are never followed: an archive
    can carry one to the instructor's files)."""
    return Path(path).is_file() and not Path(path).is_symlink()


def find_notebook(folder: Path, name: str, release: nbformat.NotebookNode,
                  others=()) -> tuple[Path | None, str | None]:
    """The submitted file for release notebook ``name`` (without ``.ipynb``) and a note.

    A notebook saved under another name is found when it is the only candidate, or else the
    one that holds most of the release's graded cells; ``others`` are the assignment's other
    notebook names, which are not candidates.
    """
    expected = folder / f"{name}.ipynb"
    if plain_file(expected):
        return expected, None
    if expected.is_symlink():
        return None, f"{name}.ipynb is a link, not a file: it was not followed or graded"
    candidates = sorted(p for p in folder.glob("*.ipynb")
                        if p.stem not in others and p.stem != name and plain_file(p))
    if not candidates:
        return None, f"no {name}.ipynb was submitted"
    ids = {grade_id(c) for c in release.cells} - {None}

    def overlap(path):
        try:
            return len(ids & {grade_id(c) for c in json.loads(path.read_text()).get("cells", [])})
        except (ValueError, OSError, AttributeError):
            return -1

    chosen = max(candidates, key=overlap)
    return chosen, f"{name}.ipynb was missing; graded {chosen.name} in its place"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a submitted notebook; :class:`SubmissionError` if it is not a valid one (a
    missing or unreadable file raises OSError as usual)."""
    if Path(path).is_symlink():
        raise SubmissionError(f"{Path(path).name} is a link, not a file: it was not followed")
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:   # a few odd bytes (a printed binary string) are replaced by
        text = data.decode("utf-8", "replace")   # U+FFFD; a binary file fails as JSON below
    try:
        notebook = nbformat.from_dict(encodable(nbformat.reads(text, as_version=4)))
    except Exception as error:   # NotJSONError, a schema error, a missing key …
        if text != data.decode("utf-8", "ignore") and "\ufffd" in text[:64]:
            raise SubmissionError(f"{Path(path).name} is not a text file") from None
        raise SubmissionError(f"{Path(path).name} is not valid notebook JSON "
                              f"({(str(error).splitlines() or [''])[0][:120]})") from None
    if not isinstance(notebook.get("cells"), list):
        raise SubmissionError(f"{Path(path).name} has no list of cells")
    for cell in notebook.cells:
        if cell.get("cell_type") not in ("code", "markdown", "raw") or not isinstance(
                cell.get("source"), str):
            raise SubmissionError(f"{Path(path).name} holds a cell nbformat cannot read")
    return notebook


def encodable(value):
    """``value`` (JSON-like) with every lone surrogate replaced by U+FFFD: JSON can spell one
    (``"\\ud800"``) and a kernel can print one, but no UTF-8 file or page can hold it, so one
    odd character never stops a student's grading."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {k: encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(v) for v in value]
    return value


def check(submitted: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[Finding]:
    """Everything about ``submitted`` that differs from what a student may change in ``release``."""
    findings = []
    by_id: dict[str, list] = {}
    for cell in submitted.cells:
        if grade_id(cell):
            by_id.setdefault(grade_id(cell), []).append(cell)
    released = {grade_id(c): c for c in release.cells if grade_id(c)}
    if by_id and not set(by_id) & set(released):   # the wrong file, not a forgery
        return [Finding("notebook", "is not a notebook of this assignment: it holds none of "
                        f"its cells ({', '.join(sorted(by_id)[:3])}, … belong elsewhere); "
                        "nothing of it was graded", False)]
    for gid, cells in by_id.items():
        if len(cells) > 1:
            findings.append(Finding(gid, f"appears {len(cells)} times (a copied cell); the "
                                         "first copy is graded", False))
        if gid not in released:
            findings.append(Finding(gid, "carries nbgrader metadata the release does not have "
                                         "(forged metadata)", True))
    for gid, original in released.items():
        cells = by_id.get(gid)
        if not cells:
            what = "was deleted; the original was put back" if is_locked(original) else \
                "is missing; the empty answer was graded"
            findings.append(Finding(gid, what, is_locked(original)))
            continue
        cell = cells[0]
        flags = {k: nbgrader_meta(cell).get(k) for k in FLAGS}
        if flags != {k: nbgrader_meta(original).get(k) for k in FLAGS}:
            findings.append(Finding(gid, "has nbgrader metadata that differs from the release "
                                         "(forged metadata)", True))
        if cell.cell_type != original.cell_type:
            findings.append(Finding(gid, f"was turned from {original.cell_type} into "
                                         f"{cell.cell_type}", is_locked(original)))
        elif is_locked(original) and cell.source.rstrip() != original.source.rstrip():
            findings.append(Finding(gid, "read-only cell was edited; the original was graded", True))
    return findings   # what the code in the cells does: course_grading.check.reading


def graded_notebook(submitted: nbformat.NotebookNode | None, release: nbformat.NotebookNode,
                    source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook to run: the release's cells in order, with

    - read-only and test cells from ``source`` (hidden tests restored, edits undone),
    - each answer cell's source from the student's first cell with its grade_id (the release's
      stub when there is none), with the release's metadata,
    - the student's other cells (their own code, try-it cells, copies) after the graded cell
      they followed, without nbgrader metadata.

    ``submitted=None`` (nothing readable was handed in) gives the release with its stubs.
    """
    original = {grade_id(c): c for c in source.cells if grade_id(c)}
    answers: dict[str, nbformat.NotebookNode] = {}
    extras: dict[str | None, list] = {}
    anchor = None
    released_ids = [grade_id(c) for c in release.cells if grade_id(c)]
    for cell in (submitted.cells if submitted is not None else []):
        gid = grade_id(cell)
        if gid in released_ids and gid not in answers:
            answers[gid] = cell
            anchor = gid
        else:
            plain = nbformat.from_dict(json.loads(json.dumps(cell)))
            plain.metadata.pop("nbgrader", None)
            if plain.cell_type == "code":
                plain.setdefault("outputs", [])
                plain.setdefault("execution_count", None)
            extras.setdefault(anchor, []).append(plain)
    cells = list(extras.get(None, []))
    for cell in release.cells:
        gid = grade_id(cell)
        if gid is None:          # a release cell without metadata (a try-it cell)
            if submitted is None:
                cells.append(_copy(cell))
            continue
        if is_locked(cell):
            chosen = _copy(original.get(gid, cell))
        else:
            chosen = _copy(cell)
            if gid in answers:
                chosen.source = answers[gid].source
        if chosen.cell_type == "code":
            chosen.outputs, chosen.execution_count = [], None
        cells.append(chosen)
        cells.extend(extras.get(gid, []))
    notebook = _copy(release)
    notebook.cells = cells
    return notebook


def _copy(node):
    return nbformat.from_dict(json.loads(json.dumps(node)))


def solved(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release as a student who wrote the reference answers would hand it in (answer cells
    from ``source``, everything else untouched): the honest submission of benchmarks and tests."""
    answers = {grade_id(c): c.source for c in source.cells if is_answer(c)}
    notebook = _copy(release)
    for cell in notebook.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return notebook
