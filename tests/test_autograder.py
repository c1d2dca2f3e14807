"""The adversarial suite: `course grade` against crafted submissions, with clean controls.

A tiny two-part assignment (``tiny``: ``add`` 2 points, ``norm`` 3 points) keeps a batch
under a minute on 2 cores, so the whole suite runs in CI. Every attacker has an expected
recorded score and, where it tampers, an expected finding. The batch is graded

1. once with every attacker's *honest* version (full solutions), then with the attacks:
   no grade may be stale;
2. once with the controls alone: the controls' rows are byte-identical to (1).

Figures asserted: 0 batch crashes, 0 lost or stale grades, tampering detected k/k with 0
false alarms on controls, controls identical with and without attackers, no hidden-test text
in any student-facing file. (That grading the same class again gives the same bytes is
``tests/test_cluster.py``'s figure: it grades the attackers whose outcome could vary from run
to run -- time, memory, processes, floods, random output -- and honest students locally and
on a Dask cluster, twice more.)
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from course_grading import cli, course as course_dir
from course_grading.check import assemble, cells
from course_grading.grade import assignments, batch, report, roster
from course_grading.kernel.sandbox import Limits, isolation
from course_lib import paths

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.filterwarnings("ignore::nbformat.warnings.DuplicateCellId"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

LIMITS = Limits(cell_seconds=4, notebook_seconds=60, memory_mb=1024, file_mb=5, output_kb=64,
                probe_seconds=3)
# files of the course a graded kernel must not change (course_lib, the repository's config)
COURSE_FILES = [str(paths.REPO / "course_lib" / "__init__.py"), str(paths.REPO / "pyproject.toml")]
HIDDEN_ADD = "assert add(-5, 5) == 0 and add(0.5, 0.25) == 0.75"
HIDDEN_NORM = "assert math.isclose(norm([1, 2, 2]), 3.0)"


# ---------------------------------------------------------------------------- the assignment
def _cell(kind, source, grade_id=None, **flags):
    cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
    if grade_id:
        cell.metadata.nbgrader = {"grade_id": grade_id, "grade": False, "solution": False,
                                  "locked": False, "schema_version": 3, **flags}
    return cell


def tiny_source() -> nbformat.NotebookNode:
    test = dict(grade=True, locked=True)
    cells = [
        _cell("markdown", "# Tiny assignment", "intro", locked=True),
        _cell("code", "import math", "setup", locked=True),
        _cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              "add", solution=True),
        _cell("code", "assert add(1, 2) == 3", "add-visible", points=1, **test),
        _cell("code", f'"""Hidden checks of add."""\n### BEGIN HIDDEN TESTS\n{HIDDEN_ADD}\n'
                      "### END HIDDEN TESTS", "add-hidden", points=1, **test),
        _cell("code", "def norm(v):\n    ### BEGIN SOLUTION\n    return math.sqrt(sum(x * x for x in v))"
                      "\n    ### END SOLUTION", "norm", solution=True),
        _cell("code", "assert math.isclose(norm([3, 4]), 5.0)", "norm-visible", points=1, **test),
        _cell("code", f'"""Hidden checks of norm."""\n### BEGIN HIDDEN TESTS\n{HIDDEN_NORM}\n'
                      "### END HIDDEN TESTS", "norm-hidden", points=2, **test),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinycourse")
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, root)
    (root / "solutions" / "tiny").mkdir(parents=True)
    nbformat.write(tiny_source(), root / "solutions" / "tiny" / "tiny.ipynb")
    assignments.release("tiny", course_root=root)
    return root


def release(course) -> nbformat.NotebookNode:
    return nbformat.read(course / "assignments" / "tiny" / "tiny.ipynb", as_version=4)


def answered(course, add=None, norm=None, extra=()) -> nbformat.NotebookNode:
    """The release with the given answer sources (None: the solution) and extra cells after
    the add part's answer."""
    nb = release(course)
    answers = {"add": add or "def add(a, b):\n    return a + b",
               "norm": norm or "def norm(v):\n    return math.sqrt(sum(x * x for x in v))"}
    for cell in nb.cells:
        if cells.grade_id(cell) in answers:
            cell.source = answers[cells.grade_id(cell)]
    position = [cells.grade_id(c) for c in nb.cells].index("add") + 1
    for offset, source in enumerate(extra):
        nb.cells.insert(position + offset, nbformat.v4.new_code_cell(source))
    return nb


def edit(nb, grade_id, **changes):
    for cell in nb.cells:
        if cells.grade_id(cell) == grade_id:
            for key, value in changes.items():
                if key == "nbgrader":
                    cell.metadata.nbgrader.update(value)
                else:
                    cell[key] = value
    return nb


# ---------------------------------------------------------------------------- the class
def attackers(course, sensitive: dict) -> dict:
    """``{student: (files, expected score, expected tampering cells, expected reason text)}``;
    ``files`` maps file names to a notebook or to raw bytes."""
    wrong_add = "def add(a, b):\n    return a + b if a >= 0 else -1"   # fails a hidden test only
    A = {}
    A["full_solution"] = ({"tiny.ipynb": answered(course)}, 5, set(), None)
    A["untouched"] = ({"tiny.ipynb": release(course)}, 0, set(), None)
    A["infinite_loop"] = ({"tiny.ipynb": answered(course, add="def add(a, b):\n    while True:\n        pass")},
                          3, set(), "ran past")
    A["ignores_interrupt"] = ({"tiny.ipynb": answered(
        course, norm="import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")},
        2, set(), "did not stop when interrupted")
    A["raising"] = ({"tiny.ipynb": answered(course, add="def add(a, b):\n    raise ValueError('no')")},
                    3, set(), None)
    A["os_exit"] = ({"tiny.ipynb": answered(course, norm="import os\nos._exit(3)")}, 2, set(),
                    "kernel died")
    A["memory_bomb"] = ({"tiny.ipynb": answered(course, extra=[
        "hog = []\nwhile True:\n    hog.append(bytearray(2**31))"])}, 5, set(), None)
    A["line_flood"] = ({"tiny.ipynb": answered(course, extra=["for i in range(100_000):\n    print(i)"])},
                       5, set(), None)
    A["giant_line"] = ({"tiny.ipynb": answered(course, extra=["print('x' * 30_000_000)"])}, 5, set(), None)
    A["edited_test"] = ({"tiny.ipynb": edit(answered(course, add=wrong_add), "add-hidden",
                                            source="assert True")}, 4, {"add-hidden"}, None)
    deleted = answered(course, add=wrong_add)
    deleted.cells = [c for c in deleted.cells if cells.grade_id(c) != "add-hidden"]
    A["deleted_test"] = ({"tiny.ipynb": deleted}, 4, {"add-hidden"}, None)
    retyped = answered(course, norm="def norm(v):\n    return 0.0")
    for gid in ("norm-visible", "norm-hidden"):
        retyped = edit(retyped, gid, cell_type="markdown")
        for cell in retyped.cells:
            if cells.grade_id(cell) == gid:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    A["test_to_markdown"] = ({"tiny.ipynb": retyped}, 2, {"norm-visible", "norm-hidden"}, None)
    forged = edit(answered(course, norm="def norm(v):\n    return 0.0"), "norm-visible",
                  nbgrader={"points": 50})
    forged.cells.append(_cell("code", "pass", "bonus", grade=True, points=100, locked=True))
    A["forged_metadata"] = ({"tiny.ipynb": forged}, 2, {"norm-visible", "bonus"}, None)
    duplicated = answered(course)
    twice = [c for c in duplicated.cells if cells.grade_id(c) in ("add", "add-visible")]
    duplicated.cells[3:3] = [assemble._copy(c) for c in twice]
    A["duplicated_cells"] = ({"tiny.ipynb": duplicated}, 5, set(), "appears 2 times")
    A["renamed"] = ({"tiny (copy 1).ipynb": answered(course)}, 5, set(), "graded tiny (copy 1).ipynb")
    A["invalid_json"] = ({"tiny.ipynb": b'{"cells": [{"cell_type": "code", "sour'}, 0, set(),
                         "not valid notebook JSON")
    probe = ("import os\nfor path in {paths!r}:\n    try:\n        with open(path, 'rb') as f:\n"
             "            print('read', path, f.read()[:2000])\n    except OSError as e:\n"
             "        print('blocked', path, type(e).__name__)")
    A["reads_hidden"] = ({"tiny.ipynb": answered(course, extra=[probe.format(
        paths=[sensitive["source"], sensitive["gradebook"], sensitive["neighbour"]])])}, 5, set(), None)
    writer = ("for path in {paths!r}:\n    try:\n        with open(path, 'ab') as f:\n"
              "            f.write(b'owned')\n    except OSError as e:\n        print('blocked', e)")
    A["writes_gradebook"] = ({"tiny.ipynb": answered(course, extra=[writer.format(
        paths=[sensitive["gradebook"], sensitive["neighbour"]])])}, 5, set(), None)
    # refused by the kernel's guard (and read-only in namespaces): a note, as it changed nothing
    A["writes_course"] = ({"tiny.ipynb": answered(course, extra=[writer.format(
        paths=COURSE_FILES + [os.path.join(sys.prefix, "pyvenv.cfg")])])}, 5, set(),
        "read-only")
    A["monkey_patch"] = ({"tiny.ipynb": answered(
        course, norm="math.isclose = lambda *args, **kwargs: True\ndef norm(v):\n    return 0.0")},
        2, set(), None)   # put back before the tests without a word: norm's own 0.0 fails
    # a patch no static reading sees: put back before the tests all the same
    A["unseen_patch"] = ({"tiny.ipynb": answered(
        course, norm="m = [math][0]\nm.isclose = lambda *args, **kwargs: True\n"
                     "def norm(v):\n    return 0.0")}, 2, set(), None)
    # a patch made by the answer while a test calls it: that test fails as tampering
    A["patch_in_test"] = ({"tiny.ipynb": answered(
        course, norm="def norm(v):\n    math.isclose = lambda *args, **kwargs: True\n"
                     "    return 0.0")}, 2, {"norm-visible", "norm-hidden"}, None)
    # the guard's wrapper taken off the kernel: no later reply is signed, so nothing scores
    A["unguarded"] = ({"tiny.ipynb": answered(course, extra=[
        "from ipykernel.ipkernel import IPythonKernel\n"
        "IPythonKernel.do_execute = IPythonKernel.do_execute.__wrapped__"])}, 0,
        {"add-visible", "add-hidden", "norm", "norm-visible", "norm-hidden"}, None)
    # reads linecache while the hidden test calls it, and the namespace after the tests
    spy = answered(course, add="import linecache\nSEEN = []\ndef add(a, b):\n"
                               "    SEEN.extend(l for e in list(linecache.cache.values()) for l in e[2])\n"
                               "    return a + b")
    spy.cells.append(_cell("code", "print('SEEN', SEEN)\nprint('NAMES', sorted(globals()))"))
    A["reads_remnants"] = ({"tiny.ipynb": spy}, 5, set(), None)
    A["nondeterministic"] = ({"tiny.ipynb": answered(course, extra=[
        "import random, time, os\nprint(random.random(), time.time(), os.urandom(4).hex())"])},
        5, set(), None)
    A["stderr_noise"] = ({"tiny.ipynb": answered(
        course, add="import sys\ndef add(a, b):\n    print('debug', a, b, file=sys.stderr)\n    return a + b")},
        5, set(), None)
    A["background_process"] = ({"tiny.ipynb": answered(course, extra=[
        "import subprocess\nsubprocess.Popen(['sleep', '987'], start_new_session=True)"])},
        5, set(), None)
    A["huge_file"] = ({"tiny.ipynb": answered(course, extra=[
        "try:\n    open('big.bin', 'wb').write(b'0' * 50 * 2**20)\nexcept OSError as e:\n    print(e)"])},
        5, set(), None)
    return A


def controls(course) -> dict:
    """Ten honest students: every combination of right and wrong answers, plus some noise
    that is not tampering (extra cells, helper functions, copies of nothing graded)."""
    C = {}
    wrong = {"add": "def add(a, b):\n    return a - b", "norm": "def norm(v):\n    return sum(v)"}
    for i in range(10):
        add = None if i % 2 == 0 else wrong["add"]
        norm = None if i % 3 != 2 else wrong["norm"]
        extra = [f"# my notes {i}\nx = {i}"] if i % 4 == 1 else []
        nb = answered(course, add, norm, extra)
        expected = (0 if add else 2) + (0 if norm else 3)
        C[f"control_{i:02d}"] = ({"tiny.ipynb": nb}, expected, set(), None)
    return C


def write_class(folder: Path, students: dict) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for student, (files, *_rest) in students.items():
        (folder / student).mkdir(parents=True)
        for name, content in files.items():
            path = folder / student / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                nbformat.write(content, path)


def run_batch(course, folder) -> tuple[dict, str]:
    roster.add(course, [p.name for p in folder.iterdir() if p.is_dir()])   # the class
    # force: the same submissions are graded again to compare runs, so every result is
    # recorded as it comes out (a lower one held back would hide a difference)
    report = batch.grade("tiny", folder, course, workers=2, limits=LIMITS, progress=False,
                         force=True)
    return report, Path(report["csv"]).read_text()


def rows(csv_text: str) -> dict[str, str]:
    lines = csv_text.splitlines()
    return {line.split(",", 1)[0]: line for line in lines[1:]}


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    sensitive = {"source": str(course / "solutions" / "tiny" / "tiny.ipynb"),
                 "gradebook": str(course / "gradebook.db"),
                 "neighbour": str(inbox / "control_00" / "tiny.ipynb")}
    course_files = {path: _sha256(path) for path in COURSE_FILES}
    attack, control = attackers(course, sensitive), controls(course)
    honest = {s: ({"tiny.ipynb": answered(course)}, 5, set(), None) for s in attack}
    write_class(inbox, honest)  # each attacker's honest first hand-in (see test_no_stale_grades)
    first, _ = run_batch(course, inbox)
    write_class(inbox, {**attack, **control})
    neighbour = hashlib.sha256(Path(sensitive["neighbour"]).read_bytes()).hexdigest()
    runs = [run_batch(course, inbox)]
    if isolation() == "namespaces":
        assert hashlib.sha256(Path(sensitive["neighbour"]).read_bytes()).hexdigest() == neighbour
    write_class(inbox, control)
    alone = run_batch(course, inbox)
    return {"attack": attack, "control": control, "first": first, "runs": runs, "alone": alone,
            "sensitive": sensitive, "course_files": course_files}


needs_namespaces = pytest.mark.skipif(isolation() != "namespaces",
                                      reason="no Linux namespaces here: files are not hidden")


# ---------------------------------------------------------------------------- the figures
def test_every_student_has_a_recorded_grade(graded, course):
    """Checks 0 batch crashes and 0 lost grades: every student is in the CSV, the report and
    the gradebook, with a number for every graded cell."""
    report, text = graded["runs"][0]
    students = set(graded["attack"]) | set(graded["control"])
    assert set(rows(text)) == students
    assert {o["student"] for o in report["outcomes"]} == students
    for student in students:
        scores = assignments.cell_scores(course, "tiny", student)
        assert len(scores) == 4 and all(s is not None for s, _ in scores.values()), (student, scores)


@pytest.mark.parametrize("student", [
    "full_solution", "untouched", "infinite_loop", "ignores_interrupt", "raising", "os_exit",
    "memory_bomb", "line_flood", "giant_line", "edited_test", "deleted_test", "test_to_markdown",
    "forged_metadata", "duplicated_cells", "renamed", "invalid_json", "reads_hidden",
    "writes_gradebook", "monkey_patch", "nondeterministic", "stderr_noise", "background_process",
    "huge_file", "writes_course", "unseen_patch", "patch_in_test", "unguarded",
    "reads_remnants"])
def test_attacker_gets_expected_score_and_reason(graded, course, student):
    """Checks one crafted submission's recorded score (CSV and gradebook), tampering findings
    and reason."""
    _, expected, tampered, reason = graded["attack"][student]
    outcome = {o["student"]: o for o in graded["runs"][0][0]["outcomes"]}[student]
    assert outcome["total"] == expected, outcome
    gradebook_total = sum(s for s, _ in assignments.cell_scores(course, "tiny", student).values())
    assert gradebook_total == expected
    assert {t.split(":")[0] for t in outcome["tampering"]} == tampered, outcome["tampering"]
    if reason:
        assert any(reason in r for r in outcome["reasons"]), outcome["reasons"]


def test_no_stale_grades(graded):
    """Checks that every attacker first graded honestly (5 points) gets the attack's score on
    re-grading, never the previous run's."""
    first = {o["student"]: o["total"] for o in graded["first"]["outcomes"]}
    assert all(first[s] == 5 for s in graded["attack"])
    now = {o["student"]: o["total"] for o in graded["runs"][0][0]["outcomes"]}
    assert all(now[s] == graded["attack"][s][1] for s in graded["attack"])


def test_tampering_detected_without_false_alarms(graded):
    """Checks tampering detected k/k on the tampering attackers and 0 alarms on controls."""
    outcomes = {o["student"]: o for o in graded["runs"][0][0]["outcomes"]}
    tamperers = [s for s, (_, _, cells, _) in graded["attack"].items() if cells]
    assert len(tamperers) >= 5
    assert all(outcomes[s]["tampering"] for s in tamperers)
    assert not any(outcomes[s]["tampering"] for s in graded["control"])
    text = graded["runs"][0][1]
    table = {r["student"]: r for r in csv.DictReader(io.StringIO(text))}
    assert all(table[s]["tampering"] for s in tamperers)


def test_controls_identical_with_and_without_attackers(graded):
    """Checks that each control's CSV row is byte-identical whether attackers share the batch."""
    with_attackers, alone = rows(graded["runs"][0][1]), rows(graded["alone"][1])
    for student, (_, expected, _, _) in graded["control"].items():
        assert with_attackers[student] == alone[student]
        assert with_attackers[student].split(",")[3] == f"{expected:g}"


def test_a_later_batch_keeps_the_earlier_students_rows(graded):
    """Checks that grading the controls alone rewrites their rows and keeps every attacker's
    row of the run before, byte for byte (grading one late folder loses nobody's grade)."""
    before, after = rows(graded["runs"][-1][1]), rows(graded["alone"][1])
    assert set(after) == set(before) and len(graded["attack"]) >= 20
    assert all(after[student] == before[student] for student in graded["attack"])
    assert graded["alone"][0]["kept"] == len(graded["attack"])
    assert graded["runs"][-1][0]["kept"] == 0


def test_feedback_has_no_hidden_tests(graded, course):
    """Checks that no student-facing file (feedback) contains hidden-test text, while the
    instructor's autograded copies do contain it (so the check could fail)."""
    feedback = list((course / "feedback").rglob("*.html"))
    assert len(feedback) >= len(graded["attack"])
    for path in feedback:
        text = path.read_text()
        for secret in (HIDDEN_ADD, HIDDEN_NORM, "BEGIN HIDDEN TESTS"):
            assert secret not in text and secret.replace("'", "&#x27;") not in text, path
    autograded = (course / "autograded" / "full_solution" / "tiny" / "tiny.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in autograded


@needs_namespaces
def test_kernel_cannot_read_or_write_grading_state(graded, course):
    """Checks that the reading attacker saw none of the source, gradebook (an empty file in
    its place) or a neighbour's file, and that the writing attacker changed nothing."""
    executed = nbformat.read(course / "autograded" / "reads_hidden" / "tiny" / "tiny.ipynb",
                             as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      and not cells.grade_id(c) for o in c.outputs)
    # the course folder of this test lies in /tmp, which the kernel sees empty: all three are
    # missing (a course outside /tmp shows its gradebook as an empty file: /dev/null)
    assert printed.count("blocked") == 3, printed
    for secret in ("BEGIN HIDDEN", "SQLite format", "def add"):
        assert secret not in printed, printed
    assert assignments.cell_scores(course, "tiny", "control_00")


def test_kernel_cannot_change_the_course(graded, course):
    """Checks that the attacker writing to course_lib, the repository and the venv was refused
    every time and listed for the instructor (a note: nothing changed, so nothing is lost), and
    that those files are byte-identical after the batch."""
    executed = nbformat.read(course / "autograded" / "writes_course" / "tiny" / "tiny.ipynb",
                             as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      and not cells.grade_id(c) for o in c.outputs)
    assert printed.count("blocked by the grader") == len(COURSE_FILES) + 1, printed
    outcome = {o["student"]: o for o in graded["runs"][0][0]["outcomes"]}["writes_course"]
    assert sum("read-only" in t for t in outcome["reasons"]) == len(COURSE_FILES) + 1
    assert {path: _sha256(path) for path in COURSE_FILES} == graded["course_files"]


def test_hidden_tests_leave_nothing_to_read(graded, course):
    """Checks that an answer reading linecache while the hidden tests call it, and a last cell
    printing the namespace, saw no line of a hidden test (the autograded copy, which is the
    instructor's, is read: the feedback would scrub it anyway)."""
    printed = _printed(course, "reads_remnants")
    assert "SEEN" in printed and "assert add(1, 2) == 3" in printed   # it did read linecache
    for secret in (HIDDEN_ADD, HIDDEN_NORM, "BEGIN HIDDEN"):
        assert secret not in printed, printed


def test_outputs_are_capped(graded, course):
    """Checks that a flood of lines and one giant line leave a small autograded notebook."""
    for student in ("line_flood", "giant_line"):
        path = course / "autograded" / student / "tiny" / "tiny.ipynb"
        assert path.stat().st_size < 20 * LIMITS.output_kb * 1024, path.stat().st_size
        assert "cut by the grader" in path.read_text()


def test_no_process_survives(graded):
    """Checks that the background `sleep 987` started by a submission is gone."""
    alive = [p for p in Path("/proc").glob("[0-9]*/cmdline")
             if b"sleep\x00987" in _read(p)]
    assert alive == []


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


# ---------------------------------------------------------------------------- course check
def test_check_reports_parts(course, capsys):
    """Checks `course check` on an unanswered, a half-right, a full and a tricking notebook:
    the table, 'not answered yet', 'graded after submission', the note on a trick (free),
    and the exit status."""
    folder = course / "check"
    folder.mkdir(exist_ok=True)
    cases = {"blank": (release(course), 1), "half": (answered(course, norm="def norm(v):\n    return 0.0"), 1),
             "full": (answered(course), 0), "trick": (answered(course, extra=["print(In)"]), 0)}
    for name, (nb, status) in cases.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
        assert cli.check("tiny", str(folder / f"{name}.ipynb"), course, LIMITS) == status
        out = capsys.readouterr().out
        if name == "blank":
            assert out.count("not answered yet") == 2
        if name == "half":
            assert "FAILED AssertionError" in out
        if name == "trick":   # the student sees what grading reads, and that it costs nothing
            assert "note: cell 3: read in the code: line 1: uses In" in out, out
            assert "all visible tests pass" in out and "warning" not in out, out
        assert "graded after submission" in out


# ---------------------------------------------------------------------------- course release
def test_release_says_what_changed(course, capsys):
    """Checks `course release` reports an unchanged release, then a changed notebook."""
    assert cli.release(["tiny"], course) == 0
    assert "nothing changed" in capsys.readouterr().out
    source = course / "solutions" / "tiny" / "tiny.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nRead every part first."
    nbformat.write(nb, source)
    try:
        assert cli.release(["tiny"], course) == 0
        assert "changed: assignments/tiny/tiny.ipynb" in capsys.readouterr().out
    finally:
        nbformat.write(tiny_source(), source)
        cli.release(["tiny"], course)


def test_command_line_rejects_unknown_assignment(capsys):
    """Checks `course check` names the known assignments when given an unknown one."""
    assert cli.main(["check", "no_such_assignment"]) == 2
    assert "transfer" in capsys.readouterr().err


def test_command_line_errors_are_messages(tmp_path, capsys):
    """Checks that a missing notebook, an unknown assignment (to grade, export or release), a
    missing submissions folder and another assignment's notebook given to `course check` give
    a one-line message and exit status 2."""
    assert cli.main(["check", "transfer", str(tmp_path / "missing.ipynb")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["grade", "no_such_assignment", str(tmp_path)]) == 2
    assert "no assignment 'no_such_assignment'" in capsys.readouterr().err
    assert cli.main(["grade", "transfer", str(tmp_path / "nowhere")]) == 2
    assert "no submissions folder" in capsys.readouterr().err
    assert cli.main(["export", "no_such_assignment"]) == 2
    assert "no assignment 'no_such_assignment'" in capsys.readouterr().err
    assert cli.main(["release", "no_such_assignment"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no assignment 'no_such_assignment'" in err
    other = course_dir.REPO / "assignments" / "maml_protonets" / "maml_protonets.ipynb"
    assert cli.main(["check", "bayes", str(other)]) == 2   # said before any kernel starts
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a notebook of bayes" in err


def test_grade_command_passes_the_budget(tmp_path, monkeypatch, capsys):
    """Checks that `course grade` runs the kernels at the quick budget unless --budget names
    another, and that an unknown budget is refused before anything is graded."""

    seen = []
    monkeypatch.setattr(batch, "grade", lambda *a, env=None, **k: seen.append(env) or {})
    monkeypatch.setattr(report, "summary", lambda report: "")
    assert cli.main(["grade", "transfer", str(tmp_path)]) == 0
    assert cli.main(["grade", "transfer", str(tmp_path), "--budget", "default"]) == 0
    assert seen == [{"COURSE_BUDGET": "quick"}, {"COURSE_BUDGET": "default"}]
    with pytest.raises(SystemExit):
        cli.main(["grade", "transfer", str(tmp_path), "--budget", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err and len(seen) == 2
    from course_lib.budget import BUDGETS
    assert cli.BUDGETS == tuple(sorted(BUDGETS))


# ---------------------------------------------------------------------------- isolation
PLANT = ("import os\nfor folder in ('/tmp', '/dev/shm', '/var/tmp', os.path.expanduser('~')):\n"
         "    with open(os.path.join(folder, 'left-by-a-student'), 'w') as f:\n"
         "        f.write('a message to the next student')\nprint('planted')")
PROBE = ("import os, socket\nfor path in {sockets!r}:\n    s = socket.socket(socket.AF_UNIX)\n"
         "    try:\n        s.connect(path)\n        print('CONNECTED', path)\n"
         "    except OSError as e:\n        print('refused', type(e).__name__)\n"
         "    finally:\n        s.close()\n"
         "for path in {files!r}:\n    print('FOUND' if os.path.exists(path) else 'absent', path)\n"
         "print('SEEN', {{d: sorted(os.listdir(d)) for d in ('/tmp', '/dev/shm', '/var/tmp')}})")
PLANTED = [f"{d}/left-by-a-student" for d in ("/tmp", "/dev/shm", "/var/tmp")]


def unix_sockets() -> list[str]:
    """Paths of the Unix sockets bound on this machine now (``/proc/net/unix``)."""
    rows = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    return sorted({row[-1] for row in rows if len(row) >= 8 and row[-1].startswith("/")})


def _printed(course, student) -> str:
    executed = nbformat.read(course / "autograded" / student / "tiny" / "tiny.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                   and not cells.grade_id(c) for o in c.outputs)


@needs_namespaces
def test_no_socket_or_file_of_the_grader_or_another_student_is_reachable(course, tmp_path,
                                                                        monkeypatch):
    """Checks from inside graded kernels: a student's files in /tmp, /dev/shm, /var/tmp and HOME
    reach neither the next student's kernel nor the machine after the batch, and no Unix
    socket bound on the machine (the grader's forkserver, the test's own listener, the first
    batch's kernels, the warm server the prober's own kernel was forked from) accepts a
    connection; the same probe in an unisolated kernel does connect (so the check can fail)."""
    import socket

    from course_grading.check.run import run_notebook
    from course_grading.kernel.sandbox import warm_server

    served = []

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "grader.sock"))
    listener.listen(8)
    inbox = tmp_path / "inbox"
    write_class(inbox, {"a_planter": ({"tiny.ipynb": answered(course, extra=[PLANT])}, 5, set(), None)})
    run_batch(course, inbox)   # the forkserver is up from here on
    warm = warm_server(LIMITS.memory_mb)   # the warm-kernel server the next batch will use
    monkeypatch.setattr(batch, "warm_server",
                        lambda memory_mb: served.append(warm_server(memory_mb)) or served[-1])
    sockets = unix_sockets() + ([warm] if isolation() == "namespaces" and warm not in
                                unix_sockets() else [])
    assert str(tmp_path / "grader.sock") in sockets and any("/pymp-" in s for s in sockets), sockets
    probe = answered(course, extra=[PROBE.format(sockets=sockets, files=PLANTED)])
    write_class(inbox, {"a_planter": ({"tiny.ipynb": answered(course, extra=[PLANT])}, 5, set(), None),
                        "b_prober": ({"tiny.ipynb": probe}, 5, set(), None)})
    roster.add(course, [p.name for p in inbox.iterdir() if p.is_dir()])   # the class
    report = batch.grade("tiny", inbox, course, workers=1, limits=LIMITS, progress=False)
    assert served == [warm] or isolation() != "namespaces", served
    assert {o["student"]: o["total"] for o in report["outcomes"]} == {"a_planter": 5, "b_prober": 5}
    assert "planted" in _printed(course, "a_planter")
    printed = _printed(course, "b_prober")
    assert printed.count("refused") == len(sockets) and "CONNECTED" not in printed, printed
    assert printed.count("absent") == len(PLANTED) and "FOUND" not in printed, printed
    assert [p for p in PLANTED if Path(p).exists()] == []
    (tmp_path / "k").mkdir()
    unisolated = run_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        PROBE.format(sockets=[str(tmp_path / "grader.sock")], files=[]))]),
        tmp_path / "k", LIMITS, mode="process")
    assert "CONNECTED" in unisolated.notebook.cells[0].outputs[0].text


def test_files_a_student_supplies_cost_that_student_alone(course, tmp_path):
    """Checks a batch where one submission is a link to the instructor's source notebook, one
    has a timestamp.txt that is not a time, one a timestamp.txt that links to the source, one
    lone surrogates in a markdown cell and an output, and one an image output whose data tries
    to break out of the <img> tag: every student is graded, nothing of the source reaches a
    feedback page, and no page holds an event handler."""
    import base64

    source = course / "solutions" / "tiny" / "tiny.ipynb"
    inbox = tmp_path / "inbox"
    write_class(inbox, {s: ({"tiny.ipynb": answered(course)}, 5, set(), None)
                        for s in ("bad_stamp", "link_stamp", "surrogate", "image", "plain")})
    (inbox / "linked").mkdir()
    (inbox / "linked" / "tiny.ipynb").symlink_to(source)
    (inbox / "bad_stamp" / "timestamp.txt").write_text("the day before the deadline")
    (inbox / "link_stamp" / "timestamp.txt").symlink_to(source)
    text = (inbox / "surrogate" / "tiny.ipynb").read_text()
    (inbox / "surrogate" / "tiny.ipynb").write_text(text.replace("# Tiny assignment", "# Tiny \\ud800"))
    nb = answered(course, extra=["print('\\udc00 odd')"])
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 16).decode()
    cell = nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": png + "' onerror='alert(1)' x='"})])
    nb.cells.append(cell)
    nbformat.write(nb, inbox / "image" / "tiny.ipynb")
    roster.add(course, [p.name for p in inbox.iterdir() if p.is_dir()])   # the class
    report = batch.grade("tiny", inbox, course, workers=2, limits=LIMITS, progress=False)
    totals = {o["student"]: o["total"] for o in report["outcomes"]}
    assert totals == {"bad_stamp": 5, "link_stamp": 5, "surrogate": 5, "image": 5, "plain": 5,
                      "linked": 0}, totals
    reasons = {o["student"]: " ".join(o["reasons"]) for o in report["outcomes"]}
    assert "is a link" in reasons["linked"]
    assert "timestamp.txt is not a time" in reasons["bad_stamp"]
    assert "timestamp.txt is not a small plain file" in reasons["link_stamp"]
    secret = HIDDEN_ADD.split(" and ")[0]
    for student in totals:
        folder = course / "feedback" / student / "tiny"
        for path in folder.iterdir():
            page = path.read_text(errors="replace")
            assert secret not in page and "onerror" not in page, path
    assert not (course / "submitted" / "linked" / "tiny" / "tiny.ipynb").exists()
