"""No grade lost to a re-grade or a stray folder: the roster, ``--force`` and hand grades.

A tiny course (``tiny`` plus a written answer, ``why``, graded by hand) and a class of three on
the roster, graded again and again as an instructor would: with a folder that is not on the
roster, with a limit that makes the same submission score lower, after a person graded the
written answer, and after a student changed it.
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import replace

import nbformat
import pytest

from course_grading import cli, course as course_dir
from course_grading.grade import assignments, batch, roster
from test_autograder import LIMITS, _cell, answered, tiny_source, write_class

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

WHY = "Because a sum of squares is never negative."
SLOW_ADD = "import time\ndef add(a, b):\n    time.sleep(1.0)\n    return a + b"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("regrade")
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, root)
    (root / "solutions" / "tiny").mkdir(parents=True)
    source = tiny_source()
    source.cells.append(_cell("markdown", f"### BEGIN SOLUTION\n{WHY}\n### END SOLUTION", "why",
                              grade=True, solution=True, points=2))
    nbformat.write(source, root / "solutions" / "tiny" / "tiny.ipynb")
    assignments.release("tiny", course_root=root)
    return root


def hand_in(course, why=WHY, add=None):
    nb = answered(course, add=add)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "why"]
    cell.source = why
    return {"tiny.ipynb": nb}


def grade_of(course, student, grade_id):
    with course_dir.gradebook(course) as gradebook:
        grade = gradebook.find_grade(grade_id, "tiny", "tiny", student)
        comment = gradebook.find_comment(grade_id, "tiny", "tiny", student)
        return grade.auto_score, grade.manual_score, grade.needs_manual_grade, comment.manual_comment


def total(course, student):
    """The automatic points the gradebook holds (the written answer is graded by hand)."""
    with course_dir.gradebook(course) as gradebook:
        submission = gradebook.find_submission("tiny", student)
        return sum(g.auto_score or 0 for nb in submission.notebooks for g in nb.grades)


def graded(report):
    """The report, with its CSV's rows as they are now (a later batch rewrites the file)."""
    report["rows"] = {r["student"]: r for r in csv.DictReader(open(report["csv"]))}
    return report


@pytest.fixture(scope="module")
def term(course, tmp_path_factory):
    """The instructor's steps, in order; each step's report."""
    inbox = tmp_path_factory.mktemp("inbox")
    steps = {}
    assert roster.add(course, ["ada", "bob", "cy", "ada"]) == ["ada", "bob", "cy"]
    write_class(inbox, {"ada": (hand_in(course),), "bob": (hand_in(course, add=SLOW_ADD),),
                        "cy": (hand_in(course),), "stray": (hand_in(course),)})
    steps["first"] = graded(batch.grade("tiny", inbox, course, workers=2, limits=LIMITS,
                                        progress=False))
    steps["first_feedback"] = (course / "feedback" / "ada" / "tiny" / "tiny.html").read_text()
    with course_dir.gradebook(course) as gradebook:   # a person grades ada's written answer
        grade = gradebook.find_grade("why", "tiny", "tiny", "ada")
        grade.manual_score, grade.needs_manual_grade = 1.5, False
        gradebook.find_comment("why", "tiny", "tiny", "ada").manual_comment = "Right, and why?"
        gradebook.db.commit()
    steps["graded_by_hand"] = grade_of(course, "ada", "why")
    tight = replace(LIMITS, cell_seconds=0.5)   # bob's add now runs out of time
    steps["tight"] = graded(batch.grade("tiny", inbox, course, workers=2, limits=tight,
                                        progress=False))
    steps["after_tight"] = {"bob": total(course, "bob"), "ada": grade_of(course, "ada", "why")}
    steps["forced"] = batch.grade("tiny", inbox, course, workers=2, limits=tight, progress=False,
                                  force=True)
    steps["after_forced"] = total(course, "bob")
    write_class(inbox, {"ada": (hand_in(course, why="Squares are never negative, so."),),
                        "cy": (hand_in(course, add="def add(a, b):\n    return a - b"),)})
    steps["changed"] = batch.grade("tiny", inbox, course, workers=2, limits=LIMITS, progress=False)
    steps["after_changed"] = {"ada": grade_of(course, "ada", "why"), "cy": total(course, "cy")}
    return steps


def test_a_folder_off_the_roster_is_not_graded_and_does_not_join_it(term, course):
    """Checks that 'stray' is listed as not graded with what to do, gets no gradebook entry,
    no CSV row, and is not added to the roster."""
    first = term["first"]
    assert "not on the roster" in first["not_graded"]["stray"]
    assert "course students add stray" in first["not_graded"]["stray"]
    assert {o["student"] for o in first["outcomes"]} == {"ada", "bob", "cy"}
    assert "stray" not in first["rows"]
    assert roster.students(course) == ["ada", "bob", "cy"]


def test_a_regrade_that_lowers_a_score_needs_force(term):
    """Checks that the same submission graded under a tighter limit keeps its recorded 5 points
    (listed as not graded, with the scores that would drop and --force), keeps its CSV row, and
    that --force records the lower score."""
    tight = term["tight"]
    why = tight["not_graded"]["bob"]
    assert "would now score lower" in why and "--force" in why and "add-visible 1 → 0" in why
    assert term["after_tight"]["bob"] == 5
    assert tight["rows"]["bob"]["total"] == "5"
    assert "bob" not in {o["student"] for o in tight["outcomes"]}
    assert term["after_forced"] < 5
    assert "bob" not in term["forced"]["not_graded"]


def test_a_hand_grade_survives_a_regrade(term):
    """Checks that a written answer graded by hand keeps its points, comment and 'graded' state
    through a re-grade of the same submission, and is flagged again (with a note) once its
    text changes."""
    assert term["graded_by_hand"] == (None, 1.5, False, "Right, and why?")
    assert term["after_tight"]["ada"] == (None, 1.5, False, "Right, and why?")
    assert term["after_changed"]["ada"] == (None, 1.5, True, "Right, and why?")
    ada = {o["student"]: o for o in term["changed"]["outcomes"]}["ada"]
    assert any("why was graded by hand" in r and "grade it again" in r for r in ada["reasons"])


def test_a_new_submission_is_recorded_even_when_lower(term):
    """Checks that a changed submission (a wrong add) is graded and recorded without --force."""
    assert "cy" not in term["changed"]["not_graded"]
    assert term["after_changed"]["cy"] == 3


def test_no_student_on_the_roster_is_refused_before_anything_is_written(course, tmp_path):
    """Checks that a batch of folders none of which is on the roster is refused with what to
    do, and writes no backup, gradebook entry or CSV."""
    write_class(tmp_path / "inbox", {"zed": (hand_in(course),)})
    backups = course / "build" / "grading" / "tiny" / "backups"
    before = sorted(backups.iterdir())
    gradebook = (course / "gradebook.db").read_bytes()
    with pytest.raises(batch.NotOnRoster, match="course students add"):
        batch.grade("tiny", tmp_path / "inbox", course, limits=LIMITS, progress=False)
    assert sorted(backups.iterdir()) == before
    assert (course / "gradebook.db").read_bytes() == gradebook


def test_the_roster_changes_only_as_asked(term, course):
    """Checks roster refusals (a bad id, an unknown id, a student with grades without --force)
    and that --force removes a graded student after a backup."""
    with pytest.raises(roster.RosterError, match="cannot be a student id"):
        roster.add(course, ["../etc"])
    with pytest.raises(roster.RosterError, match="not on the roster: nobody"):
        roster.remove(course, ["nobody"])
    with pytest.raises(roster.RosterError, match="would delete recorded grades: cy"):
        roster.remove(course, ["cy"])
    assert roster.students(course) == ["ada", "bob", "cy"]
    assert roster.remove(course, ["cy"], force=True) == ["cy"]
    assert roster.students(course) == ["ada", "bob"]
    assert list((course / "build" / "grading" / "roster" / "backups").glob("gradebook-*.db"))


@pytest.mark.parametrize("argv, says", [
    (["students", "add", "../x"], "cannot be a student id"),
    (["students", "add"], "name at least one student id"),
    (["students", "remove", "no_such_student_here"], "not on the roster"),
])
def test_bad_roster_input_is_one_line_and_exit_2(argv, says, capsys):
    """Checks the ``course students`` refusals: one line, exit status 2."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_feedback_says_a_written_answer_is_not_graded_yet(term):
    """Checks that the feedback written before a person graded ada's written answer says so."""
    assert "why is still to be graded by a person" in term["first_feedback"]
