"""A term's round trip through nbgrader's own exchange (a folder; no JupyterHub), on the tiny
two-part assignment of ``tests/test_autograder.py`` (add: 2 points, norm: 3).

The instructor releases ``tiny`` with a due date; ada, bob and dee fetch it. ada answers well,
bob submits a good answer and then a bad one (the latest counts), dee submits a good answer
after the due date (nbgrader's ``LateSubmissionPlugin.penalty_method = "zero"``), and cy, on
the roster, submits nothing. The instructor collects, grades with ``course grade``, releases
the feedback that grading wrote (hidden tests removed), and each student fetches their own
feedback and nobody else's. Asserted: every score, the late penalty, the latest submission's
timestamp, the missing student's row, and every file on the way.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from course_grading import course as course_dir
from course_grading.check import assemble, cells
from course_grading.grade import assignments, batch
from test_autograder import LIMITS, tiny_source

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

GOOD = {"add": "def add(a, b):\n    return a + b",
        "norm": "def norm(v):\n    return math.sqrt(sum(x * x for x in v))"}
BAD = {"add": "def add(a, b):\n    return a - b", "norm": GOOD["norm"]}   # norm only: 3 points


def _config(course: Path, exchange: Path, home: Path | None = None, student: str = "*",
            assignment: str = "tiny") -> Config:
    """nbgrader's settings for the instructor (``home`` None) or for one student's folder."""
    config = course_dir.load_config(course) if home is None else Config()
    config.CourseDirectory.course_id = course_dir.load_config(course).CourseDirectory.course_id
    config.CourseDirectory.root = str(course if home is None else home)
    config.CourseDirectory.student_id = student
    config.CourseDirectory.assignment_id = assignment
    config.Exchange.root = str(exchange)
    config.Exchange.cache = str((home or course) / ".nbgrader_cache")
    config.Exchange.assignment_dir = str(home or course)   # where fetch and submit work
    config.LateSubmissionPlugin.penalty_method = "zero"
    return config


def _student(name: str, course: Path, exchange: Path, homes: Path, action: str,
             assignment: str = "tiny") -> Path:
    """Run one of nbgrader's student-side exchange steps as ``name``, in their own folder."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import (ExchangeFetchAssignment, ExchangeFetchFeedback,
                                           ExchangeSubmit)

    home = homes / name
    home.mkdir(parents=True, exist_ok=True)
    config = _config(course, exchange, home, name, assignment)
    step = {"fetch": ExchangeFetchAssignment, "submit": ExchangeSubmit,
            "fetch_feedback": ExchangeFetchFeedback}[action]
    step(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config),
         config=config).start()
    return home


def _answer(home: Path, answers: dict) -> None:
    path = home / "tiny" / "tiny.ipynb"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cells.grade_id(cell) in answers:
            cell.source = answers[cells.grade_id(cell)]
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    from nbgrader.api import Gradebook
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = tmp_path_factory.mktemp("term")
    course, exchange, homes = root / "course", root / "exchange", root / "students"
    (course / "solutions" / "tiny").mkdir(parents=True)
    exchange.mkdir()
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, course)
    with open(course / course_dir.CONFIG_FILE, "a") as f:   # the instructor's own settings
        f.write(f'\nc.Exchange.root = "{exchange}"\n'
                'c.LateSubmissionPlugin.penalty_method = "zero"\n')
    nbformat.write(tiny_source(), course / "solutions" / "tiny" / "tiny.ipynb")
    assignments.release("tiny", course_root=course)
    config = _config(course, exchange)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    with Gradebook(api.coursedir.db_url, config.CourseDirectory.course_id) as gradebook:
        for student in ("ada", "bob", "cy", "dee"):
            gradebook.update_or_create_student(student)
    assert api.release_assignment("tiny")["success"]

    for student in ("ada", "bob", "dee"):
        _student(student, course, exchange, homes, "fetch")
    fetched = (homes / "ada" / "tiny" / "tiny.ipynb").read_text()
    _answer(homes / "ada", GOOD)
    _student("ada", course, exchange, homes, "submit")
    _answer(homes / "bob", GOOD)
    _student("bob", course, exchange, homes, "submit")
    time.sleep(1.1)   # bob's second submission is clearly the later one
    _answer(homes / "bob", BAD)
    _student("bob", course, exchange, homes, "submit")
    due = datetime.now(timezone.utc)
    with Gradebook(api.coursedir.db_url, config.CourseDirectory.course_id) as gradebook:
        gradebook.update_or_create_assignment("tiny", duedate=due)
    time.sleep(1.1)
    _answer(homes / "dee", GOOD)
    _student("dee", course, exchange, homes, "submit")
    inbound = sorted(p.name for p in (exchange / config.CourseDirectory.course_id
                                      / "inbound").iterdir())

    assert api.collect("tiny")["success"]
    report = batch.grade("tiny", course / "submitted", course, workers=2, limits=LIMITS,
                          progress=False)
    released = {s: api.release_feedback("tiny", s)["success"] for s in ("ada", "bob", "dee")}
    for student in ("ada", "bob", "dee"):
        _student(student, course, exchange, homes, "fetch_feedback")
    return {"course": course, "homes": homes, "report": report, "due": due,
            "inbound": inbound, "fetched": fetched, "released": released, "api": api}


def test_students_fetch_the_release(term):
    """Checks that what a student fetched is the release, with no hidden test or solution."""
    release = (term["course"] / "assignments" / "tiny" / "tiny.ipynb").read_text()
    assert term["fetched"] == release
    assert "BEGIN HIDDEN TESTS" not in release and "sqrt" not in release


def test_every_submission_reaches_the_exchange(term):
    """Checks ada once, bob twice and dee once in the exchange's inbound, cy never."""
    owners = [name.split("+")[0] for name in term["inbound"]]
    assert sorted(owners) == ["ada", "bob", "bob", "dee"]


def test_collect_keeps_the_latest_submission(term):
    """Checks that the instructor's submitted/ holds bob's second (bad) answer and its
    timestamp, the later of his two."""
    folder = term["course"] / "submitted" / "bob" / "tiny"
    assert "return a - b" in (folder / "tiny.ipynb").read_text()
    stamps = sorted(n.split("+")[2] for n in term["inbound"] if n.startswith("bob+"))
    assert (folder / "timestamp.txt").read_text().strip() == stamps[-1]


def test_scores_late_penalty_and_missing_student(term):
    """Checks ada 5, bob 3 (his latest), dee 0 after the 'zero' late penalty (5 raw), cy 0
    with the reason, in the report, the CSV and nbgrader's gradebook."""
    outcomes = {o["student"]: o for o in term["report"]["outcomes"]}
    assert {s: o["total"] for s, o in outcomes.items()} == {"ada": 5, "bob": 3, "dee": 0}
    assert sum(outcomes["dee"]["parts"].values()) == 5
    assert any("after the due date: late penalty 5" in r for r in outcomes["dee"]["reasons"])
    assert term["report"]["missing"] == ["cy"]
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(
        Path(term["report"]["csv"]).read_text()))}
    assert rows["cy"]["total"] == "0" and "nothing submitted" in rows["cy"]["reasons"]
    assert rows["dee"]["total"] == "0" and rows["ada"]["total"] == "5"
    from nbgrader.api import Gradebook

    config = course_dir.load_config(term["course"])
    with Gradebook(term["api"].coursedir.db_url, config.CourseDirectory.course_id) as gradebook:
        dee = gradebook.find_submission("tiny", "dee")
        assert dee.total_seconds_late > 0 and dee.late_submission_penalty == 5
        assert gradebook.find_submission("tiny", "ada").total_seconds_late == 0
        assert gradebook.find_submission("tiny", "bob").score == 3


def test_the_formgrader_shows_the_totals_of_the_export(term, monkeypatch):
    """Checks the scores the Formgrader's pages read (nbgrader's API, as the course's server
    extension makes it, which `make setup` enables) against the CSV: dee's late hand-in is 0 per
    notebook, per submission, per student and over the term, with the penalty 5 alongside;
    without the extension the Formgrader said 5 (so the check can fail)."""
    import sys

    from nbgrader.apps.api import NbGraderAPI

    from course_grading.grade import formgrader

    api = term["api"]
    with course_dir.in_course(term["course"]):
        assert {s["student"]: s["score"] for s in api.get_submissions("tiny")}["dee"] == 5
        for name in formgrader._PENALTIES:   # put back after this test
            monkeypatch.setattr(NbGraderAPI, name, getattr(NbGraderAPI, name))
        formgrader.penalise_formgrader()
        formgrader.penalise_formgrader()     # twice: still once
        shown = {s["student"]: s["score"] for s in api.get_submissions("tiny")}
        dee = {"submission": api.get_submission("tiny", "dee"),
               "notebook": next(n for n in api.get_notebook_submissions("tiny", "tiny")
                                if n["student"] == "dee"),
               "student's notebook": api.get_student_notebook_submissions("dee", "tiny")[0],
               "student's submission": next(s for s in api.get_student_submissions("dee")
                                            if s["name"] == "tiny"),
               "student": api.get_student("dee"),
               "students": next(s for s in api.get_students() if s["id"] == "dee")}
    rows = {r["student"]: float(r["total"]) for r in csv.DictReader(io.StringIO(
        Path(term["report"]["csv"]).read_text())) if r["student"] in shown}
    assert shown == rows == {"ada": 5, "bob": 3, "dee": 0}, (shown, rows)
    assert {k: (v["score"], v[formgrader.PENALTY]) for k, v in dee.items()} == \
        {k: (0, 5) for k in dee}, dee
    enabled = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "course_grading.json"
    assert json.loads(enabled.read_text())["ServerApp"]["jpserver_extensions"] == \
        {formgrader.MODULE: True}


def test_each_student_fetches_only_their_own_feedback(term):
    """Checks that feedback was released for the three who submitted, that each fetched one
    feedback file, theirs (their own answer and score), and none of it shows a hidden test."""
    assert term["released"] == {"ada": True, "bob": True, "dee": True}
    answers = {"ada": "return a + b", "bob": "return a - b", "dee": "return a + b"}
    for student, answer in answers.items():
        pages = list((term["homes"] / student / "tiny" / "feedback").rglob("*.html"))
        assert len(pages) == 1, (student, pages)
        text = pages[0].read_text()
        assert answer in text and "BEGIN HIDDEN TESTS" not in text
        others = [s for s in answers if s != student and answers[s] != answer]
        assert all(answers[o] not in text for o in others)
    assert not (term["homes"] / "cy").exists()



def _page_text(path: Path) -> str:
    """A page's text as a reader sees it (tags removed, entities decoded)."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_the_formgraders_generate_feedback_shows_no_hidden_test(term):
    """Checks nbgrader's own Generate Feedback (the Formgrader's button) with the course's
    configuration: bob's page says his hidden add tests failed, renders the Markdown, and shows
    no hidden test code; with nbgrader's default preprocessors the same page would show it
    (so the check can fail). Runs last on this term: it rewrites bob's feedback page."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    course, api = term["course"], term["api"]
    page = course / "feedback" / "bob" / "tiny" / "tiny.html"
    with course_dir.in_course(course):
        assert api.generate_feedback("tiny", "bob")["success"]
    text = _page_text(page)
    assert "hidden tests: failed" in text and "add(0.5, 0.25)" not in text
    assert "norm([1, 2, 2])" not in text
    assert "<h1" in page.read_text() and "# Tiny assignment" not in text
    configured = api.config.GenerateFeedback.preprocessors
    assert configured[0].__name__ == "StudentView"
    api.config.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor]
    try:
        with course_dir.in_course(course):
            assert api.generate_feedback("tiny", "bob", force=True)["success"]
        assert "add(0.5, 0.25)" in _page_text(page)
    finally:
        api.config.GenerateFeedback.preprocessors = configured


# ---------------------------------------------------------------------------- the README's term
def readme_term() -> list[str]:
    """The command lines of the README's code block under "A term through nbgrader's exchange"."""
    text = (course_dir.REPO / "README.md").read_text()
    section = text[text.index("### A term through nbgrader's exchange"):]
    start = section.index("```bash\n") + len("```bash\n")
    return [line for line in section[start:section.index("\n```", start)].splitlines()
            if line.strip()]


def test_the_readmes_term_runs_as_printed(tmp_path):
    """Checks the README's term block line by line, as printed, in a course directory of its own
    (the repository's configuration and bayes, its .venv) with a PATH that lacks the venv:
    every line exits 0 with no library warning; between handout and collect ada fetches bayes, answers it and submits,
    bob only fetches; ada is graded full marks, bob is on the roster with nothing submitted,
    and ada's feedback reaches her."""
    course, exchange, homes = tmp_path / "course", tmp_path / "exchange", tmp_path / "homes"
    (course / "solutions").mkdir(parents=True)
    exchange.mkdir()
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, course)
    with open(course / course_dir.CONFIG_FILE, "a") as f:
        f.write(f'\nc.Exchange.root = "{exchange}"\n')
    shutil.copytree(course_dir.REPO / "solutions" / "bayes", course / "solutions" / "bayes")
    shutil.copytree(course_dir.REPO / "assignments" / "bayes", course / "assignments" / "bayes")
    (course / ".venv").symlink_to(course_dir.REPO / ".venv")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    lines = readme_term()
    assert [line.split()[1] for line in lines] == ["students", "deadline", "handout", "collect",
                                                    "grade", "feedback"]
    said = {}
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=course, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        assert "Warning" not in done.stderr, (line, done.stderr[-2000:])   # e.g. SAWarning
        said[line.split()[1]] = done.stdout
        if line.split()[1] == "handout":   # the students' part
            for student in ("ada", "bob"):
                _student(student, course, exchange, homes, "fetch", "bayes")
            path = homes / "ada" / "bayes" / "bayes.ipynb"
            source = nbformat.read(course / "solutions" / "bayes" / "bayes.ipynb", as_version=4)
            nbformat.write(assemble.solved(nbformat.read(path, as_version=4), source), path)
            _student("ada", course, exchange, homes, "submit", "bayes")
    assert "ada" in said["collect"] and "bob" not in said["collect"].split("(")[1]
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(
        (course / "build" / "grading" / "bayes" / "grades.csv").read_text()))}
    assert rows["ada"]["total"] == rows["ada"]["max"] and float(rows["ada"]["max"]) > 0, rows
    assert rows["bob"]["total"] == "0" and "nothing submitted" in rows["bob"]["reasons"]
    _student("ada", course, exchange, homes, "fetch_feedback", "bayes")
    assert list((homes / "ada" / "bayes" / "feedback").rglob("bayes.html"))
