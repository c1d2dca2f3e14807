"""Unit tests of course_grading.submissions: finding, reading, checking and rebuilding a submission
(pure notebook logic, no kernel)."""
from __future__ import annotations

import json

import nbformat
import pytest

from course_grading.check import assemble, cells


def cell(kind, source, grade_id=None, **flags):
    c = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
    if grade_id:
        c.metadata.nbgrader = {"grade_id": grade_id, "grade": False, "solution": False,
                               "locked": False, **flags}
    return c


def source_and_release():
    source = nbformat.v4.new_notebook(cells=[
        cell("code", "import math", "setup", locked=True),
        cell("code", "def f():\n    return 1", "f", solution=True),
        cell("code", "assert f() == 1", "f-visible", grade=True, locked=True, points=1),
        cell("code", "'''hidden'''\n### BEGIN HIDDEN TESTS\nassert f() > 0\n### END HIDDEN TESTS",
             "f-hidden", grade=True, locked=True, points=1)])
    release = assemble._copy(source)
    release.cells[1].source = "def f():\n    raise NotImplementedError()"
    release.cells[3].source = "'''hidden'''"
    return source, release


def test_untouched_release_has_no_findings():
    """Checks no false alarm on the release itself, although its hidden-test cell differs
    from the source's."""
    _, release = source_and_release()
    assert assemble.check(release, release) == []


@pytest.mark.parametrize("change, cell_id, tampering", [
    (lambda nb: nb.cells[2].__setitem__("source", "assert True"), "f-visible", True),
    (lambda nb: nb.cells.pop(3), "f-hidden", True),
    (lambda nb: nb.cells[2].__setitem__("cell_type", "markdown"), "f-visible", True),
    (lambda nb: nb.cells[2].metadata.nbgrader.__setitem__("points", 9), "f-visible", True),
    (lambda nb: nb.cells.append(cell("code", "pass", "bonus", grade=True, points=5)), "bonus", True),
    (lambda nb: nb.cells.insert(2, assemble._copy(nb.cells[1])), "f", False),
    (lambda nb: nb.cells.pop(1), "f", False),
])
def test_check_finds(change, cell_id, tampering):
    """Checks each kind of change is found on the right cell and classed correctly."""
    _, release = source_and_release()
    submitted = assemble._copy(release)
    change(submitted)
    findings = assemble.check(submitted, release)
    assert any(f.cell == cell_id and f.costs == tampering for f in findings), findings


def test_a_notebook_of_another_assignment_is_named_as_such():
    """Checks that a notebook of another assignment (none of the release's cells) gets one
    note saying so, not a "forged metadata" finding per cell, and costs nothing beyond the
    unanswered parts it is graded as."""
    _, release = source_and_release()
    other = nbformat.v4.new_notebook(cells=[
        cell("code", "def g():\n    return 2", "g", solution=True),
        cell("code", "assert g() == 2", "g-visible", grade=True, locked=True, points=1)])
    findings = assemble.check(other, release)
    assert len(findings) == 1 and not findings[0].costs
    assert "not a notebook of this assignment" in str(findings[0])


def test_answer_edits_are_not_tampering():
    """Checks that writing the answer and adding own cells raises no finding."""
    source, release = source_and_release()
    submitted = assemble._copy(release)
    submitted.cells[1].source = "def helper():\n    return 1\ndef f():\n    return helper()"
    submitted.cells.insert(2, cell("code", "x = f()\nprint(x)"))
    assert assemble.check(submitted, release) == []


def test_graded_notebook_restores_tests_and_keeps_answers():
    """Checks release order, hidden tests restored, the answer and own cells kept, copies
    stripped of metadata, deleted tests put back."""
    source, release = source_and_release()
    submitted = assemble._copy(release)
    submitted.cells[1].source = "def f():\n    return 2"
    submitted.cells[2].source = "assert True"                  # edited test
    submitted.cells.pop(3)                                     # deleted hidden test
    submitted.cells.insert(2, cell("code", "print('mine')"))   # own cell after the answer
    submitted.cells.append(assemble._copy(submitted.cells[1]))       # a copy of the answer at the end
    submitted.cells[-1].source = "def f():\n    return 3"
    graded = assemble.graded_notebook(submitted, release, source)
    ids = [cells.grade_id(c) for c in graded.cells]
    assert ids == ["setup", "f", None, "f-visible", None, "f-hidden"]
    assert graded.cells[1].source == "def f():\n    return 2"      # the first copy is the answer
    assert graded.cells[2].source == "print('mine')"
    assert graded.cells[3].source == "assert f() == 1"             # the edit is undone
    assert graded.cells[4].source == "def f():\n    return 3"      # the copy runs, ungraded
    assert "BEGIN HIDDEN TESTS" in graded.cells[5].source


def test_nothing_submitted_grades_the_stubs():
    source, release = source_and_release()
    graded = assemble.graded_notebook(None, release, source)
    assert "NotImplementedError" in graded.cells[1].source
    assert "BEGIN HIDDEN TESTS" in graded.cells[3].source


def test_read_notebook_errors(tmp_path):
    """Checks invalid JSON, binary junk and a non-notebook give a SubmissionError with a reason."""
    (tmp_path / "a.ipynb").write_text('{"cells": [')
    (tmp_path / "b.ipynb").write_bytes(b"\xff\xfe\x00junk")
    (tmp_path / "c.ipynb").write_text(json.dumps({"cells": "nope", "nbformat": 4,
                                                  "nbformat_minor": 5, "metadata": {}}))
    for name, reason in [("a", "not valid notebook JSON"), ("b", "not a text file"),
                         ("c", "not valid notebook JSON")]:
        with pytest.raises(assemble.SubmissionError, match=reason):
            assemble.read_notebook(tmp_path / f"{name}.ipynb")


def test_odd_bytes_in_an_output_do_not_stop_grading(tmp_path):
    """Checks that a notebook whose output holds bytes that are not UTF-8, or a lone
    surrogate, is read (the odd characters replaced), so its answers are graded."""
    _, release = source_and_release()
    release.cells[1].outputs = [nbformat.v4.new_output("stream", text="BYTES SURROGATE end")]
    data = nbformat.writes(release).encode("utf-8")
    data = data.replace(b"BYTES", b"\xff\xfe").replace(b"SURROGATE", b"\\ud800")
    (tmp_path / "odd.ipynb").write_bytes(data)
    notebook = assemble.read_notebook(tmp_path / "odd.ipynb")
    text = notebook.cells[1].outputs[0].text
    assert text == "\ufffd\ufffd \ufffd end"
    assert notebook.cells[1].source == release.cells[1].source


def test_find_notebook_and_collect(tmp_path):
    """Checks a renamed notebook is found with a note, a missing one is reported, links
    (a notebook, a student's folder) are never followed, and the three submission layouts
    are collected."""
    _, release = source_and_release()
    folder = tmp_path / "alice"
    folder.mkdir()
    nbformat.write(release, folder / "hw (1).ipynb")
    path, note = assemble.find_notebook(folder, "hw", release)
    assert path.name == "hw (1).ipynb" and "graded hw (1).ipynb" in note
    assert assemble.find_notebook(tmp_path, "hw", release) == (None, "no hw.ipynb was submitted")
    (tmp_path / "bob" / "hw").mkdir(parents=True)
    (tmp_path / "mallory").symlink_to(tmp_path / "bob")           # a linked folder: skipped
    (tmp_path / "alice" / "linked.ipynb").symlink_to(folder / "hw (1).ipynb")
    assert assemble.collect(tmp_path, "hw") == {"alice": folder, "bob": tmp_path / "bob" / "hw"}
    assert assemble.find_notebook(folder, "hw", release)[0].name == "hw (1).ipynb"   # not the link
    (folder / "hw.ipynb").symlink_to(folder / "hw (1).ipynb")
    assert assemble.find_notebook(folder, "hw", release)[0] is None
    inbound = tmp_path / "exchange" / "course" / "inbound"
    for name in ["carol+hw+2026-01-01 10:00:00", "carol+hw+2026-01-02 09:00:00",
                 "dave+other+2026-01-01"]:
        (inbound / name).mkdir(parents=True)
    assert assemble.collect(tmp_path / "exchange", "hw") == {
        "carol": inbound / "carol+hw+2026-01-02 09:00:00"}
