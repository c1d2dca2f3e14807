"""nbgrader round trip of every graded assignment, in a temporary course directory.

(a) the committed ``assignments/`` is exactly what ``generate_assignment`` makes of
    ``solutions/``; (b) the solutions, among cells of everyday notebook code, score full marks
    with nothing listed, and every cell of them runs without an error; (c) the untouched release
    scores 0 in nbgrader's own ``autograde`` (one assignment; in every assignment a part nobody
    solved scores 0 in (d)); (d) a submission that solves exactly one part scores exactly that
    part's points, so the parts are independent. A part that a person grades (a written answer:
    a cell that is both a solution and a grade cell) scores 0 when autograded; answered, it must
    be flagged for manual grading instead; (e) graded by hand in nbgrader's Formgrader (in
    headless Chromium), its points and comment reach both exports and the feedback.

Each assignment's class (the solution and one submission per part) is graded in one batch by
``course grade`` (:func:`course_grading.grader.grade`, parallel sandboxes), so each notebook
runs once per test run; the untouched release goes through nbgrader's own ``autograde``.
Scores are read from the gradebook through nbgrader's Python API (``course_grading.grading``),
never from a command's exit status.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_grading import course as course_dir
from course_grading.check import assemble, cells, reading
from course_grading.grade import assignments, batch, export, roster
import redteam

pytestmark = [
    pytest.mark.slow,
    # nbgrader's own gradebook code triggers these SQLAlchemy warnings; they are not ours
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
]

REPO = course_dir.REPO
ASSIGNMENTS = course_dir.source_assignments(REPO)


def notebook_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb"))


def solution_cells(notebook: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The cells students write, keyed by grade_id (= the name of the part they solve)."""
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def parts_of(assignment: str) -> list[tuple[str, str, str]]:
    """(assignment, notebook, part) for every solution cell of the assignment's notebooks."""
    return [(assignment, path.stem, part)
            for path in notebook_paths(REPO / "solutions" / assignment)
            for part in solution_cells(nbformat.read(path, as_version=4))]


PARTS = [p for a in ASSIGNMENTS for p in parts_of(a)]


def points(assignment: str) -> dict[str, float]:
    """Points per part over all notebooks of an assignment, from the source metadata."""
    total: dict[str, float] = {}
    for path in notebook_paths(REPO / "solutions" / assignment):
        for part, value in cells.part_points(path).items():
            total[part] = total.get(part, 0.0) + value
    return total


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A fresh course directory with the source notebooks and a freshly generated release."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / course_dir.CONFIG_FILE, root)
    shutil.copytree(REPO / "solutions", root / "solutions",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    assignments.release(course_root=root)
    with pytest.MonkeyPatch.context() as env:
        # The graded kernels inherit this: the tests' nets are tiny, and on a busy 2-core
        # machine two OpenMP threads per kernel made them 10-30x slower than one.
        env.setenv("OMP_NUM_THREADS", "1")
        yield root


def write_submission(inbox: Path, student: str, notebooks: dict) -> None:
    folder = inbox / student
    folder.mkdir(parents=True)
    for name, notebook in notebooks.items():
        nbformat.write(notebook, folder / f"{name}.ipynb")


_graded: dict[str, dict] = {}


def graded(course: Path, assignment: str, tmp_path_factory) -> dict:
    """The report of ``course grade`` on the assignment's class, graded once per test run:
    ``solution`` (the release with every answer from the source, and the cells of everyday
    notebook code of :func:`redteam.honest` after the first) and ``only-<part>`` for every
    part (the release with that one answer filled in from the source and nothing else)."""
    if assignment not in _graded:
        inbox = tmp_path_factory.mktemp(f"inbox-{assignment}")
        solved = {name: assemble.solved(release, nbformat.read(
            course / "solutions" / assignment / f"{name}.ipynb", as_version=4))
            for name, release in release_notebooks(course, assignment).items()}
        # the reference answers among everyday notebook code: the class's one full-marks hand-in
        # (each answer alone, with nothing else, is an only-<part> student)
        write_submission(inbox, "solution", {name: redteam.honest(notebook)
                                             for name, notebook in solved.items()})
        for _, notebook, part in parts_of(assignment):
            source = nbformat.read(course / "solutions" / assignment / f"{notebook}.ipynb",
                                   as_version=4)
            notebooks = release_notebooks(course, assignment)
            target = solution_cells(notebooks[notebook])
            assert part in target, f"the release of {notebook} has no cell with grade_id {part!r}"
            target[part].source = solution_cells(source)[part].source
            write_submission(inbox, f"only-{part}", notebooks)
        roster.add(course, [p.name for p in inbox.iterdir() if p.is_dir()])   # the class
        _graded[assignment] = batch.grade(assignment, inbox, course, progress=False)
    return _graded[assignment]


def manual_parts(assignment: str) -> set[str]:
    """Parts graded by a person: answer cells that are both solution and grade cells."""
    return {c.metadata["nbgrader"]["grade_id"]
            for path in notebook_paths(REPO / "solutions" / assignment)
            for c in nbformat.read(path, as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("solution")
            and c.metadata["nbgrader"].get("grade")}


def flagged_for_manual_grading(course: Path, assignment: str, student: str) -> set[str]:
    """grade_ids of the cells that autograding left to a person (``needs_manual_grade``)."""
    with course_dir.gradebook(course) as gradebook:
        submission = gradebook.find_submission(assignment, student)
        return {g.name for nb in submission.notebooks for g in nb.grades if g.needs_manual_grade}


def expected_scores(assignment: str, solved: set[str]) -> dict[str, float]:
    """Full points for the solved parts, none for the others, and their total. Autograding
    gives a part that a person grades no points, answered or not."""
    manual = {cells.part_of(grade_id) for grade_id in manual_parts(assignment)}
    scores = {part: value if part in solved and part not in manual else 0.0
              for part, value in points(assignment).items()}
    scores["total"] = sum(scores.values())
    return scores


def release_notebooks(course: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    return {p.stem: nbformat.read(p, as_version=4)
            for p in notebook_paths(course / "assignments" / assignment)}


# ---------------------------------------------------------------------------- (a)
def test_every_release_has_a_source():
    """Checks that assignments/ and solutions/ hold the same assignment folders."""
    released = sorted(p.name for p in (REPO / "assignments").iterdir() if p.is_dir())
    assert released == ASSIGNMENTS, (
        f"assignments/ holds {released} but solutions/ holds {ASSIGNMENTS}: run `make release` "
        "(and delete releases whose source is gone)")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_is_generated(course, assignment):
    """Checks that assignments/<name>/ holds exactly what generate_assignment writes."""
    committed, fresh = REPO / "assignments" / assignment, course / "assignments" / assignment
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert files(committed) == files(fresh), (
        f"assignments/{assignment} holds {files(committed)}, generation gives {files(fresh)}: "
        "run `make release`")
    for name in files(fresh):
        if not name.endswith(".ipynb"):
            assert (committed / name).read_bytes() == (fresh / name).read_bytes(), name
            continue
        old = json.loads((committed / name).read_text())
        new = json.loads((fresh / name).read_text())
        stale = [c.get("id") for c, d in zip(old["cells"], new["cells"]) if c != d]
        assert old == new, (f"assignments/{assignment}/{name} is stale (cells {stale}, or its "
                            "metadata or cell count, differ): run `make release`")


# ---------------------------------------------------------------------------- (b), (c)
def error_cells(executed: nbformat.NotebookNode) -> list[str]:
    """The first line of every code cell that ended in an error, with the error's name."""
    return [f"{c.source.splitlines()[0] if c.source else ''!r}: {o.get('ename')}"
            for c in executed.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_score_full_marks_among_everyday_code(course, assignment, tmp_path_factory):
    """Checks that the release with every answer from the source, and after the first answer
    the cells of everyday idioms of ``redteam.IDIOMS`` (autoreload, %%capture, !ls, inspect, pickle,
    gc, globals(), eval, setattr loops, _, a displayed dataclass or module, plots, tqdm,
    timing, help, seeds, warnings, a thread …), gets every point, flags every written answer
    for a person, lists nothing as tampering, and runs every cell without an error. (Each
    answer without the idioms is graded alone in test_each_part_scores_alone.)"""
    report = graded(course, assignment, tmp_path_factory)
    scores = assignments.part_scores(course, assignment, "solution")
    assert scores == expected_scores(assignment, set(points(assignment))), scores
    assert flagged_for_manual_grading(course, assignment, "solution") == manual_parts(assignment)
    outcome = {o["student"]: o for o in report["outcomes"]}["solution"]
    assert outcome["tampering"] == [], outcome["tampering"]
    for path in notebook_paths(course / "autograded" / "solution" / assignment):
        assert error_cells(nbformat.read(path, as_version=4)) == [], path.name


def test_untouched_release_scores_zero(course):
    """Checks that the student release, submitted as it is, gets no point from nbgrader's own
    autograde (the round trip through nbgrader alone), and no written part goes to a person.
    Once, on the assignment with a written part: that a part nobody solved scores 0 in every
    assignment is shown by ``course grade`` on the only-<part> students (each part is unsolved
    in all of them but its own; test_each_part_scores_alone)."""
    assignment = "black_box"
    assert manual_parts(assignment)
    assignments.submit(course, assignment, "untouched", release_notebooks(course, assignment))
    assert assignments.autograde(course, assignment, "untouched") == expected_scores(assignment, set())
    assert flagged_for_manual_grading(course, assignment, "untouched") == set(), (
        "an unanswered written part should score 0 without a person looking at it")


# ---------------------------------------------------------------------------- own work
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_own_work_table_matches_the_notebook(assignment):
    """Checks that own_work.toml names every answer cell of the assignment and only course
    functions that exist."""
    source = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    declared = reading.own_work(source)
    answers = set(solution_cells(nbformat.read(source, as_version=4)))
    assert set(declared) == answers
    for names in declared.values():
        for name in names:
            assert reading.reference_source(name, REPO), f"{name} is not in course_lib"


# ---------------------------------------------------------------------------- (d)
@pytest.mark.parametrize("assignment, notebook, part", PARTS,
                         ids=[f"{a}-{p}" for a, _, p in PARTS])
def test_each_part_scores_alone(course, assignment, notebook, part, tmp_path_factory):
    """Checks that solving exactly one part gives exactly that part's points."""
    graded(course, assignment, tmp_path_factory)
    scores = assignments.part_scores(course, assignment, f"only-{part}")
    assert scores == expected_scores(assignment, {part}), scores
    flagged = flagged_for_manual_grading(course, assignment, f"only-{part}")
    assert flagged == ({part} & manual_parts(assignment)), flagged


# ---------------------------------------------------------------------------- (e) by hand
def test_written_answer_graded_by_hand_in_the_formgrader(course, tmp_path_factory):
    """Checks manual grading in nbgrader's Formgrader, in headless Chromium: an instructor logs
    in with the server's token, opens the solution's black_box submission, gives its written
    `analysis` 1.5 of 2 points and a comment; then nbgrader's own export and `course export`
    include the points, the comment reaches the CSV and the student's feedback page, and
    nothing is left to grade for that student."""
    import os
    import subprocess
    import sys
    import time

    from browser import TOKEN, chromium, jupyter_env, jupyter_server
    from selenium.webdriver.common.keys import Keys


    assignment, student, part = "black_box", "solution", "analysis"
    assert part in manual_parts(assignment)
    graded(course, assignment, tmp_path_factory)
    before = assignments.part_scores(course, assignment, student)
    assert before[part] == 0 and part in flagged_for_manual_grading(course, assignment, student)
    comment = "Both ingredients named; give the number of steps from notebook 04 for (2)."
    home = tmp_path_factory.mktemp("formgrader")
    env = jupyter_env(home, f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    argv = [sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={course}"]
    shots = course_dir.REPO / "build" / "formgrader-screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with jupyter_server(argv, course, env, home / "server.log") as url, \
            chromium(home / "profile") as driver:
        driver.get(f"{url}/login?next=/formgrader/gradebook/{assignment}/{assignment}")
        driver.find_element("css selector", "input[type=password]").send_keys(TOKEN, Keys.ENTER)
        link = "return [...document.querySelectorAll('a')].find(a => a.textContent.trim() " \
               f"=== '{student}')?.href"
        href = _wait_for(lambda: driver.execute_script(link))
        driver.save_screenshot(str(shots / "1-assemble.png"))
        driver.get(href)
        # the page's script has fetched the grades and comments it saves into (on a busy
        # machine that can take seconds after the inputs are on the page)
        _wait_for(lambda: driver.execute_script(
            "return !!(window.formgrader && formgrader.grades && formgrader.grades.loaded "
            "&& formgrader.comments && formgrader.comments.loaded)"), 60)
        box = driver.find_element("id", part)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        box.send_keys("1.5", Keys.TAB)
        driver.find_element("id", f"{part}-comment").send_keys(comment, Keys.TAB)
        _wait_for(lambda: assignments.part_scores(course, assignment, student)[part] == 1.5, 60)
        driver.save_screenshot(str(shots / "2-graded-by-hand.png"))
    after = assignments.part_scores(course, assignment, student)
    assert after == {**before, part: 1.5, "total": before["total"] + 1.5}, after
    # its totals are the export's, late penalty off (tests/test_exchange.py has a late student)
    assert "course_grading.grade.formgrader | extension was successfully loaded" in \
        (home / "server.log").read_text()
    assert part not in flagged_for_manual_grading(course, assignment, student)

    out = tmp_path_factory.mktemp("export") / "grades.csv"   # nbgrader's own export
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(out)], cwd=course,
                   env=env, check=True, capture_output=True)
    rows = {r["student_id"]: r for r in _csv(out) if r["assignment"] == assignment}
    assert float(rows[student]["raw_score"]) == after["total"]

    result = export.export(course, assignment)
    row = {r["student"]: r for r in _csv(Path(result["csv"]))}[student]
    assert float(row[part]) == 1.5 and float(row["total"]) == after["total"]
    assert row["still_to_grade"] == "" and f"{part}: {comment}" in row["comments"]
    assert student not in result["still_to_grade"]
    page = (course / "feedback" / student / assignment / f"{assignment}.html").read_text()
    assert f"<td>{part}</td><td>1.5</td>" in page and comment in page
    assert "BEGIN HIDDEN TESTS" not in page


def _wait_for(probe, seconds: float = 30):
    """``probe()``'s first truthy value, polled until ``seconds`` have passed."""
    import time

    deadline = time.monotonic() + seconds
    while not (value := probe()):
        assert time.monotonic() < deadline, f"gave up waiting after {seconds} s"
        time.sleep(0.2)
    return value


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
