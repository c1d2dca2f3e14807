"""The red team against two real assignments, ``bayes`` and ``maml_protonets``.

Each assignment's class is graded in one ``course grade`` batch: two controls (the reference
answers; the untouched release), every trick of :func:`course_grading.redteam.tricks` (the
untouched release plus one first cell: earned points are points the trick won),
:func:`course_grading.redteam.on_top` (the reference answers plus a cell that reads the hidden
tests or writes into the course, the venv and the data) and a delegating student (every answer
handed to the course's implementation). Then the controls are graded alone. (Every
assignment's delegating answers are read in ``tests/test_integrity.py``; ``make bench`` grades
all of them.) Figures asserted: every attacker's score and the finding or note that names
what it did; the controls' CSV rows byte-identical with and without the attackers; the course
package, the venv and the data byte-identical after the batch; no hidden-test line in any
feedback file.
"""
from __future__ import annotations

import hashlib
import html
import shutil
from pathlib import Path

import nbformat
import pytest

from course_grading import course as course_dir
from course_grading.check import assemble, cells, reading
from course_grading.grade import assignments, batch, feedback, roster
import redteam

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ASSIGNMENTS = ["bayes", "maml_protonets"]


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("redteam")
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, root)
    for assignment in ASSIGNMENTS:
        shutil.copytree(course_dir.REPO / "solutions" / assignment, root / "solutions" / assignment)
    assignments.release(ASSIGNMENTS, course_root=root)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        yield root


def _class(course: Path, assignment: str) -> tuple[dict, dict]:
    """``(controls, attackers)``: ``{student: (notebook, expected score, finding text)}``."""
    release = nbformat.read(course / "assignments" / assignment / f"{assignment}.ipynb",
                            as_version=4)
    source_path = course / "solutions" / assignment / f"{assignment}.ipynb"
    source = nbformat.read(source_path, as_version=4)
    solved = assemble.solved(release, source)
    full = sum(cells.part_points(source_path).values())
    controls = {"solution": (solved, full, None), "untouched": (release, 0.0, None)}
    points = cells.part_points(source_path)
    attackers = {**redteam.tricks(release, source_path), **redteam.on_top(solved, full, points),
                 **redteam.delegation_spellings(release, source_path), **redteam.liars(release),
                 "delegating": (redteam.delegating(release, assignment), 0.0,
                                "asks you to write yourself")}
    attackers = {name: a for name, a in attackers.items() if (assignment, name) in CASES}
    return controls, attackers


def _grade(course: Path, assignment: str, students: dict, folder: Path) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    for student, (notebook, *_rest) in students.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook, folder / student / f"{assignment}.ipynb")
    roster.add(course, [p.name for p in folder.iterdir() if p.is_dir()])   # the class
    report = batch.grade(assignment, folder, course, workers=2, progress=False,
                         force=True)   # the controls again: every result recorded as it is
    report["rows"] = {line.split(",", 1)[0]: line
                      for line in Path(report["csv"]).read_text().splitlines()[1:]}
    report["by_student"] = {o["student"]: o for o in report["outcomes"]}
    return report


_batches: dict[str, dict] = {}


def red_batch(course: Path, assignment: str, tmp_path_factory) -> dict:
    if assignment not in _batches:
        controls, attackers = _class(course, assignment)
        protected = {path: _sha256(path) for path in redteam.protected_files()}
        inbox = tmp_path_factory.mktemp(f"inbox-{assignment}")
        mixed = _grade(course, assignment, {**controls, **attackers}, inbox)
        after = {path: _sha256(path) for path in redteam.protected_files()}
        feedback = {student: (course / "feedback" / student / assignment /
                              f"{assignment}.html").read_text() for student in mixed["by_student"]}
        alone = _grade(course, assignment, controls, inbox)
        _batches[assignment] = {"controls": controls, "attackers": attackers, "mixed": mixed,
                                "alone": alone, "protected": (protected, after),
                                "feedback": feedback}
    return _batches[assignment]


# bayes (the quicker notebook) meets every trick and every spelling of delegation;
# maml_protonets one of each kind (hooks, transformers, tracing, patching seen and unseen, a
# fake module, a racing thread, the oracles, reading the tests through the caller's frames,
# writing the course, delegating in the answer, through getattr and in a later cell)
SPELLINGS = [f"delegates_{s}" for s in ("alias_cells", "list", "reduce", "partial",
                                         "fresh_import", "rebind_after", "thread", "code_copy")]
EVERY = [*redteam.TRICKS, "oracle", "print_history", "writes_course", "steal_frames", "delegating",
         *SPELLINGS, "liar_object", "liar_tensor"]
KINDS = ["custom_exc", "ast_transformer", "settrace", "helper_vars", "helper_unseen", "oracle",
         "fake_module", "thread_race", "writes_course", "steal_frames", "delegating",
         "delegates_reduce", "delegates_rebind_after", "liar_object", "liar_tensor"]
CASES = [("bayes", name) for name in EVERY] + [("maml_protonets", name) for name in KINDS]


@pytest.mark.parametrize("assignment, student", CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_attacker_scores_and_is_listed(course, assignment, student, tmp_path_factory):
    """Checks one attacker's recorded score (0 for every trick on the untouched release: what
    it changed was put back before the tests) and that the report names what it did (a note
    when it only tried, tampering or delegation when the run saw it act during a test)."""
    result = red_batch(course, assignment, tmp_path_factory)
    _, expected, why = result["attackers"][student]
    outcome = result["mixed"]["by_student"][student]
    assert outcome["total"] == expected, outcome
    assert why is None or any(why in t for t in outcome["tampering"] + outcome["reasons"]), outcome


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_delegating_student_scores_zero_on_every_part(course, assignment, tmp_path_factory):
    """Checks that every part the delegating student handed to the course (each of which earns
    its points when nothing detects it) scores 0, with a reason naming the course function."""
    result = red_batch(course, assignment, tmp_path_factory)
    outcome = result["mixed"]["by_student"]["delegating"]
    declared = reading.own_work(course / "solutions" / assignment / f"{assignment}.ipynb")
    assert outcome["total"] == 0, outcome
    for part in redteam.DELEGATING[assignment]:
        assert any(f"0 points for {part}" in t and any(f in t for f in declared[part])
                   for t in outcome["tampering"]), (part, outcome["tampering"])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_controls_identical_and_unflagged(course, assignment, tmp_path_factory):
    """Checks that the controls' CSV rows are byte-identical with and without the attackers,
    with their expected totals and no tampering."""
    result = red_batch(course, assignment, tmp_path_factory)
    for student, (_, expected, _) in result["controls"].items():
        assert result["mixed"]["rows"][student] == result["alone"]["rows"][student]
        outcome = result["alone"]["by_student"][student]
        assert outcome["total"] == expected and outcome["tampering"] == [], outcome


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_course_venv_and_data_unchanged(course, assignment, tmp_path_factory):
    """Checks that course_lib, the venv's configuration and a data file are byte-identical
    after the batch (the writing attacker tried all of them)."""
    before, after = red_batch(course, assignment, tmp_path_factory)["protected"]
    assert len(before) >= 2 and before == after


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_hidden_test_in_feedback(course, assignment, tmp_path_factory):
    """Checks that no feedback file holds a line of the hidden tests (which the instructor's
    source does hold, so the check could fail)."""
    result = red_batch(course, assignment, tmp_path_factory)
    release = nbformat.read(course / "assignments" / assignment / f"{assignment}.ipynb",
                            as_version=4)
    source = nbformat.read(course / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    lines = feedback.hidden_lines(release, source)
    assert len(lines) > 10
    notebooks = {**result["controls"], **result["attackers"]}
    for student, text in result["feedback"].items():
        own = feedback.own_lines(notebooks[student][0])   # a student's own line is not a leak
        leaked = [line for line in lines - own if line in text or html.escape(line) in text]
        assert leaked == [], (student, leaked[:3])
