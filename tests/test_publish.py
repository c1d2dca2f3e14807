"""The student edition (``course publish``, :mod:`course_grading.grade.publish`).

Fast: what the edition holds and what it must not (no file of ``solutions/``, no gradebook, no
tests, no class grading, no book); no line that exists only in ``solutions/`` (solution code,
hidden tests) appears anywhere in it, and a planted one would be found; publishing again
replaces an edition but keeps its ``.git``, and refuses a folder that is not one.

Slow: the edition installed with pip in a fresh virtual environment, where ``course check``
runs an untouched and a solved assignment. The fresh environment borrows the already installed
dependencies (torch and the rest) from the test's own through a ``.pth`` file rather than
downloading 6 GB again; the student edition itself is installed by pip from its own
``pyproject.toml``, and the test checks that the environment imports it from the edition.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from course_grading import course as course_dir
from course_grading.check import assemble, cells, score
from course_grading.grade import publish

REPO = course_dir.REPO
TEXT = {".py", ".ipynb", ".md", ".toml", ".txt", ".yml", ".yaml", ".lock", ".cfg", ".json",
        ".html", ".csv", ""}
SKIP = {".git", ".venv", "build", "data", "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


def lines_of(path: Path) -> set[str]:
    """The stripped, non-trivial lines of a text file; of a notebook, its cells' sources."""
    if path.suffix not in TEXT:
        return set()
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return set()
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= 8}


def files_under(root: Path, skip=SKIP) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()
            and not skip.intersection(p.relative_to(root).parts)]


def solution_only_lines() -> set[str]:
    """Lines of ``solutions/`` found in no other file of the repository: what generating the
    release removes (solutions, hidden tests) and nothing that is public anyway."""
    solutions = set().union(*(lines_of(p) for p in files_under(REPO / "solutions")))
    elsewhere = set().union(*(lines_of(p) for p in files_under(REPO, SKIP | {"solutions"})))
    return solutions - elsewhere


def leaked(edition: Path, secret: set[str]) -> dict[str, list[str]]:
    found = {}
    for path in files_under(edition):
        hits = sorted(lines_of(path) & secret)
        if hits:
            found[str(path.relative_to(edition))] = hits[:3]
    return found


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student-edition")
    publish.publish(out)
    return out


def test_edition_holds_what_a_student_needs(edition):
    """Checks the lecture notebooks, every assignment's release, course_lib, course check,
    the install files and the student's README, Makefile and nbgrader configuration."""
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (edition / "notebooks").glob("*.ipynb")) == notebooks
    for assignment in course_dir.source_assignments(REPO):
        ours = edition / "assignments" / assignment / f"{assignment}.ipynb"
        assert ours.read_bytes() == (REPO / "assignments" / assignment / ours.name).read_bytes()
    assert (edition / "course_lib" / "maml.py").read_bytes() == \
        (REPO / "course_lib" / "maml.py").read_bytes()
    for name in ("README.md", "Makefile", "pyproject.toml", "requirements.lock",
                 "environment.yml", "nbgrader_config.py", ".gitignore",
                 "course_grading/cli.py", "course_grading/check/run.py",
                 "course_grading/kernel/guard.py"):
        assert (edition / name).is_file(), name
    readme = (edition / "README.md").read_text()
    assert "make setup" in readme and "make lab" in readme and "course check" in readme
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", readme)
    assert images and all((edition / image).is_file() for image in images), images


def test_edition_holds_no_instructor_file(edition):
    """Checks there is no solutions/, gradebook, test, class grading, red team or book."""
    present = {str(p.relative_to(edition)) for p in edition.rglob("*")}
    for name in ("solutions", "gradebook.db", "tests", "course_site", "autograded", "feedback",
                 "course_grading/grade", "course_grading/grade/publish.py", "redteam"):
        assert name not in present, name
    for path in edition.rglob("*.ipynb"):
        text = path.read_text()
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, path


def test_no_line_only_in_solutions_is_published(edition, tmp_path):
    """Checks that none of the lines that exist only in solutions/ (hundreds: every answer
    and hidden test) appears in any file of the edition, and that a planted one is found."""
    secret = solution_only_lines()
    assert len(secret) > 200, len(secret)
    assert leaked(edition, secret) == {}
    planted = tmp_path / "planted"
    publish.publish(planted)
    line = sorted(secret)[0]
    with open(planted / "course_lib" / "models.py", "a") as f:
        f.write(f"\n{line}\n")
    assert leaked(planted, secret) == {"course_lib/models.py": [line]}


def test_setup_installs_the_cpu_build_when_asked(edition):
    """Checks the student Makefile's install choice: ``make setup TORCH=cpu`` asks PyTorch's
    CPU index for the pinned pair before the rest (``==2.14.1`` admits ``2.14.1+cpu``, so the
    lock keeps it), the default asks PyPI only, and another value is refused before anything
    is written."""
    pinned = [line for line in (edition / "requirements.lock").read_text().splitlines()
              if line.startswith(("torch==", "torchvision=="))]
    assert len(pinned) == 2
    plan = lambda *args: subprocess.run(["make", "-n", "setup", *args], cwd=edition,
                                        capture_output=True, text=True, check=True).stdout
    cpu = plan("TORCH=cpu").splitlines()
    first = next(i for i, line in enumerate(cpu) if "download.pytorch.org/whl/cpu" in line)
    assert cpu[first].split()[-2:] == pinned
    assert first < next(i for i, line in enumerate(cpu) if "-c requirements.lock -e ." in line)
    assert "download.pytorch.org" not in plan()
    wrong = subprocess.run(["make", "setup", "TORCH=gpu"], cwd=edition, capture_output=True,
                           text=True)
    assert wrong.returncode != 0 and "TORCH must be pypi (the default) or cpu, not 'gpu'" in wrong.stdout
    assert not (edition / ".venv").exists()


def test_publishing_again_replaces_the_edition_and_keeps_git(tmp_path):
    """Checks that a second publish removes a stale file but keeps .git, and that a folder
    holding something else, or the repository itself, is refused."""
    out = tmp_path / "edition"
    publish.publish(out)
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "stale.txt").write_text("from an old release")
    publish.publish(out)
    assert not (out / "stale.txt").exists() and (out / ".git" / "HEAD").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(publish.PublishError, match="not empty"):
        publish.publish(other)
    with pytest.raises(publish.PublishError, match="inside the course repository"):
        publish.publish(REPO / "build" / "student")


# ---------------------------------------------------------------------------- installed
def _fresh_venv(root: Path) -> Path:
    """A new virtual environment whose dependencies come from this one (a .pth file)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = subprocess.run([str(root / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """The edition installed with pip into a fresh venv (as its `make setup` does, dependencies
    borrowed): ``(edition, venv's bin/)``."""
    root = tmp_path_factory.mktemp("installed")
    out = root / "edition"
    publish.publish(out)
    bin_ = _fresh_venv(root / "venv")
    subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "-e", str(out)], check=True)
    subprocess.run([str(bin_ / "python"), "-m", "ipykernel", "install", "--sys-prefix",
                    "--name", "python3"], check=True, capture_output=True)
    return out, bin_


def _untouched(edition: Path, assignment: str) -> Path:
    release = edition / "assignments" / assignment / f"{assignment}.ipynb"
    release.write_bytes((REPO / "assignments" / assignment / release.name).read_bytes())
    return release


@pytest.mark.slow
def test_student_edition_installs_and_checks(installed):
    """Checks that pip installs the edition into a fresh venv (its `course` command, imported
    from the edition) and that `course check bayes` there reports `not answered yet` on the
    untouched assignment and `passed` on every part once it is solved."""
    out, bin_ = installed
    where = subprocess.run([str(bin_ / "python"), "-c", "import course_lib, course_grading.cli;"
                            "print(course_lib.__file__, course_grading.cli.INSTRUCTOR)"],
                           cwd=out.parent, check=True, capture_output=True, text=True).stdout
    assert where.split() == [str(out / "course_lib" / "__init__.py"), "False"]
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_ / "course"), "check", "bayes"], cwd=out, env=env,
                              capture_output=True, text=True, timeout=300)

    parts = cells.part_points(REPO / "solutions" / "bayes" / "bayes.ipynb")
    release = _untouched(out, "bayes")
    untouched = check()
    assert untouched.returncode == 1, untouched.stdout + untouched.stderr
    assert untouched.stdout.count("not answered yet") == len(parts), untouched.stdout
    source = nbformat.read(REPO / "solutions" / "bayes" / "bayes.ipynb", as_version=4)
    nbformat.write(assemble.solved(nbformat.read(release, as_version=4), source), release)
    solved = check()
    assert solved.returncode == 0, solved.stdout + solved.stderr
    rows = [line for line in solved.stdout.splitlines() if line.split()[:1] and
            line.split()[0] in parts]
    assert len(rows) == len(parts) and all("passed" in row for row in rows), solved.stdout
    assert "all visible tests pass" in solved.stdout


# ---------------------------------------------------------------------------- in JupyterLab
LAB_SHOTS = REPO / "build" / "lab-screenshots"
NOTEBOOK = "const nb = jupyterapp.shell.currentWidget;"
BUSY = NOTEBOOK + """return !(nb && nb.content && nb.sessionContext?.session?.kernel?.status === 'idle')
  || nb.content.widgets.some(c => c.model.type === 'code' && c.promptNode?.textContent.includes('*'))"""
CELLS = NOTEBOOK + """return nb.content.widgets.map(c => ({
  id: (c.model.getMetadata('nbgrader') || {}).grade_id || null,
  source: c.model.sharedModel.getSource(),
  outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : []}))"""
SHOW = NOTEBOOK + "nb.content.widgets[arguments[0]].node.scrollIntoView({block: arguments[1]})"
# the student's answer to Part 1, typed as a student types it: JupyterLab indents after the
# `def` line and closes each bracket, and typing the closing bracket steps over it
ANSWER = ["def posterior_mean_var(y, theta, tau2, sigma2):",
          "v = tau2 * sigma2 / (sigma2 + y.shape[-1] * tau2)",
          "return v * (theta / tau2 + y.sum(-1) / sigma2), torch.tensor(v)"]


# what nbgrader's JupyterLab extension offers a student, and what only the instructor gets
STUDENT_TOOLS = ["nbgrader:open-assignment-list"]
INSTRUCTOR_TOOLS = ["nbgrader:open-formgrader", "nbgrader:open-formgrader-local",
                    "nbgrader:open-course-list", "nbgrader:open-create-assignment"]
NEWS = "@jupyterlab/apputils-extension:announcements"


def _as_make_lab(edition: Path) -> dict:
    """The Jupyter paths of the edition's `make lab` (its jupyter_config/ first) on a venv where
    pip installed JupyterLab and nbgrader (here: the borrowed dependencies' share/ and etc/)."""
    makefile = (edition / "Makefile").read_text()
    assert "export JUPYTER_CONFIG_PATH := $(CURDIR)/jupyter_config" in makefile
    prefix = Path(sys.prefix)
    return {"JUPYTER_CONFIG_PATH": f"{edition / 'jupyter_config'}:{prefix / 'etc' / 'jupyter'}",
            "JUPYTER_PATH": str(prefix / "share" / "jupyter")}


def _lab_settings(settings: Path) -> None:
    """Every cell in the page (no windowing), for the screenshots."""
    for name, value in {"notebook-extension/tracker": {"windowingMode": "none"}}.items():
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _idle(driver, seconds: float = 120) -> None:
    import time

    deadline = time.monotonic() + seconds
    time.sleep(0.5)
    while _busy(driver):
        assert time.monotonic() < deadline, f"the notebook was still busy after {seconds} s"
        time.sleep(0.3)


def _busy(driver) -> bool:
    from selenium.common.exceptions import JavascriptException

    try:
        return driver.execute_script(BUSY)
    except JavascriptException:   # JupyterLab is still loading
        return True


def _errors(cell: dict) -> list[str]:
    return ["\n".join(o["traceback"]) for o in cell["outputs"] if o["output_type"] == "error"]


def _stopped_at(cells: list[dict], part: str) -> int:
    """The index of the cell where Run All stopped, asserting that it is ``part``'s one-line
    "not written yet". A cell the busy kernel had already queued may still run after it; it can
    fail only on a later unwritten part, or on a name that a skipped cell defines (NameError:
    seen once in CI, a cell that uses ``empirical_bayes`` after Run All stopped before its
    definition), never on the course's code."""
    failed = [i for i, c in enumerate(cells) if _errors(c)]
    assert failed and f"{part} is not written yet" in _errors(cells[failed[0]])[0], \
        [_errors(cells[i]) for i in failed]
    later = [_errors(cells[i])[0] for i in failed[1:]]
    assert all("is not written yet" in e or "NameError" in e for e in later), later
    return failed[0]


def _text(cell: dict) -> str:
    return "".join(o.get("text", "") for o in cell["outputs"])


def _lines(printed: str) -> list[str]:
    return [line.rstrip() for line in printed.replace("\r", "").splitlines() if line.strip()]


VALIDATE = """const b = document.querySelector('.validate-button');
(b.matches('jp-button, button') ? b : b.querySelector('jp-button, button') || b).click();"""
# the Validate dialog: the command, what it printed, and whether nbgrader's own line shows
VALIDATION = """const m = document.querySelector('#validation-message');
if (!m) return null;
const pre = m.querySelectorAll('pre'), line = m.querySelector('div > p');
return [pre[0].innerText, pre[1].innerText, line ? getComputedStyle(line).display : 'absent'];"""


@pytest.mark.slow
def test_a_students_work_in_jupyterlab(installed, tmp_path):
    """Checks the README's flow for a student in JupyterLab, served from the installed edition
    and driven in headless Chromium: Run All stops at the first unwritten part with one line
    that names it (no traceback), a typed answer makes that part's visible test pass on the
    next Run All, the toolbar's Validate button shows exactly what `course check bayes` prints,
    and `!course check bayes` in a cell reports that part passed and the others not answered
    yet. Screenshots of each step go to build/lab-screenshots/."""
    from browser import TOKEN, chromium, jupyter_env, jupyter_server
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    out, bin_ = installed
    _untouched(out, "bayes")
    env = jupyter_env(tmp_path / "jupyter", f"{bin_}:{os.environ['PATH']}")
    env.update(_as_make_lab(out))
    _lab_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    argv = [str(bin_ / "python"), "-m", "jupyterlab", f"--ServerApp.root_dir={out}",
            "--LabApp.expose_app_in_browser=True"]   # window.jupyterapp, to run commands
    LAB_SHOTS.mkdir(parents=True, exist_ok=True)
    with jupyter_server(argv, out, env, tmp_path / "lab.log") as url, \
            chromium(tmp_path / "profile") as driver:
        driver.get(f"{url}/lab/tree/assignments/bayes/bayes.ipynb?token={TOKEN}")
        _idle(driver)
        tools = {c: driver.execute_script(f"return jupyterapp.commands.hasCommand('{c}')")
                 for c in STUDENT_TOOLS + INSTRUCTOR_TOOLS}
        assert tools == {c: c in STUDENT_TOOLS for c in tools}, tools
        assert not driver.execute_script(f"return jupyterapp.hasPlugin('{NEWS}')")
        assert "Formgrader" not in driver.page_source and "Create Assignment" not in driver.page_source
        driver.get(f"{url}/formgrader?token={TOKEN}")
        assert "Manage Assignments" not in driver.page_source
        driver.get(f"{url}/lab/tree/assignments/bayes/bayes.ipynb?token={TOKEN}")
        _idle(driver)
        run_all = "return jupyterapp.commands.execute('notebook:run-all-cells')"

        driver.execute_script(run_all)
        _idle(driver)
        cells = driver.execute_script(CELLS)
        first = _stopped_at(cells, "posterior_mean_var")
        assert _errors(cells[first])[0].count("\n") == 0, _errors(cells[first])
        assert "Traceback" not in _errors(cells[first])[0]
        driver.execute_script(SHOW, first, "center")
        driver.save_screenshot(str(LAB_SHOTS / "1-not-written-yet.png"))

        answer = [c["id"] for c in cells].index("posterior_mean_var")
        driver.execute_script(NOTEBOOK + "nb.content.activeCellIndex = arguments[0]; "
                              "nb.content.mode = 'edit'; nb.content.activeCell.editor.focus()",
                              answer)
        driver.execute_script(SHOW, answer, "center")
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL) \
            .send_keys(Keys.ENTER.join(ANSWER)).perform()
        cells = driver.execute_script(CELLS)
        assert cells[answer]["source"] == "\n    ".join(ANSWER), cells[answer]["source"]
        driver.save_screenshot(str(LAB_SHOTS / "2-answer-typed.png"))

        driver.execute_script(run_all)
        _idle(driver)
        cells = driver.execute_script(CELLS)
        visible = [c["id"] for c in cells].index("posterior_mean_var-visible")
        assert not _errors(cells[visible]), _errors(cells[visible])
        assert "posterior_mean_var: visible tests passed" in _text(cells[visible])
        _stopped_at(cells, "gaussian_entropy")   # the next unwritten part stops it now
        driver.execute_script(SHOW, visible, "center")
        driver.save_screenshot(str(LAB_SHOTS / "3-visible-test-passed.png"))

        # the Validate button: saves, runs `course check bayes`, shows what it printed
        driver.execute_script(VALIDATE)
        validated = WebDriverWait(driver, 300, poll_frequency=0.5).until(
            lambda d: d.execute_script(VALIDATION))
        driver.save_screenshot(str(LAB_SHOTS / "4-validate.png"))
        driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()

        # the README: save, then `!course check bayes` in a cell
        driver.execute_script("return jupyterapp.commands.execute('docmanager:save')")
        driver.execute_script(NOTEBOOK + "nb.content.activeCellIndex = arguments[0]",
                              len(cells) - 1)
        driver.execute_script("return jupyterapp.commands.execute('notebook:insert-cell-below')")
        driver.execute_script(NOTEBOOK + "nb.content.mode = 'edit'; "
                              "nb.content.activeCell.editor.focus()")
        ActionChains(driver).send_keys("!course check bayes").perform()
        driver.execute_script("return jupyterapp.commands.execute('notebook:run-cell')")
        _idle(driver, 300)
        cells = driver.execute_script(CELLS)
        driver.execute_script(SHOW, len(cells) - 1, "end")
        driver.save_screenshot(str(LAB_SHOTS / "5-course-check.png"))
    table = _text(cells[-1])
    command, shown, nbgraders_line = validated
    assert command == "$ course check bayes" and nbgraders_line == "none", validated
    assert _lines(shown) == _lines(table), (shown, table)
    rows = {line.split()[0]: line for line in table.splitlines() if line.split()[:1]}
    assert "passed" in rows["posterior_mean_var"], table
    assert "not answered yet" in rows["gaussian_entropy"], table
    assert "not answered yet" in rows["empirical_bayes"], table
    assert "some parts need work" in table


def test_check_sees_answers_in_the_released_file_itself():
    """Checks `course check`'s table when the student edited the released file in place (so the
    release it compares with is that same file): untouched parts are 'not answered yet', an
    answered one is not."""

    path = REPO / "assignments" / "bayes" / "bayes.ipynb"
    release = nbformat.read(path, as_version=4)
    assert all(not row["answered"] for row in score.part_status(release, release))
    edited = nbformat.read(path, as_version=4)
    answer = next(c for c in edited.cells if cells.grade_id(c) == "gaussian_entropy")
    answer.source = "def gaussian_entropy(var):\n    return 0.0"
    rows = {row["part"]: row["answered"] for row in score.part_status(edited, edited)}
    assert rows["gaussian_entropy"] and not rows["posterior_mean_var"]


def test_no_released_test_cell_echoes_a_value():
    """Checks that no test cell of any release ends in a bare expression (a hidden-test
    placeholder that is only a docstring would print it when run)."""
    import ast

    for path in sorted((REPO / "assignments").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                body = ast.parse(cell.source).body
                assert not (body and isinstance(body[-1], ast.Expr)
                            and isinstance(body[-1].value, ast.Constant)), (path.name, cell.source)


@pytest.mark.slow
def test_a_student_submits_the_folder_they_worked_in(installed, tmp_path):
    """Checks `course submit bayes` in the installed edition, through an exchange the instructor
    set up: the untouched assignment is not handed in (exit 2, one line, nothing in the
    exchange); with one part answered it is, from assignments/bayes/, with the answer and a
    warning naming the two parts not answered yet; nbgrader's own fetch refuses a second copy."""
    out, bin_ = installed
    release = _untouched(out, "bayes")
    config = (out / "nbgrader_config.py").read_text()
    course_id = course_dir.load_config(REPO).CourseDirectory.course_id
    exchange = tmp_path / "exchange"
    (exchange / course_id / "inbound").mkdir(parents=True)
    (exchange / course_id / "outbound").mkdir()
    (exchange / course_id / "outbound" / "bayes").symlink_to(REPO / "assignments" / "bayes")
    (out / "nbgrader_config.py").write_text(config + f'\nc.Exchange.root = "{exchange}"\n')
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    try:
        def run(*argv) -> subprocess.CompletedProcess:
            return subprocess.run([str(bin_ / argv[0]), *argv[1:]], cwd=out, env=env,
                                  capture_output=True, text=True, timeout=120)

        untouched = run("course", "submit", "bayes")
        assert untouched.returncode == 2 and "nothing handed in" in untouched.stderr, untouched
        assert len(untouched.stderr.strip().splitlines()) == 1, untouched.stderr
        assert not list((exchange / course_id / "inbound").iterdir())
        notebook = nbformat.read(release, as_version=4)
        answer = next(c for c in notebook.cells if cells.grade_id(c) == "gaussian_entropy")
        answer.source = "def gaussian_entropy(var):\n    return 0.5 * torch.log(2 * math.pi * math.e * var)"
        nbformat.write(notebook, release)
        handed = run("course", "submit", "bayes")
        assert handed.returncode == 0, handed
        assert "not answered yet: posterior_mean_var, empirical_bayes" in handed.stdout
        [entry] = (exchange / course_id / "inbound").iterdir()
        assert "+bayes+" in entry.name
        assert "2 * math.pi * math.e" in (entry / "bayes.ipynb").read_text()
        fetch = run("python", "-m", "nbgrader", "fetch_assignment", "bayes")
        assert fetch.returncode != 0 and "already have a copy" in fetch.stdout + fetch.stderr
    finally:
        (out / "nbgrader_config.py").write_text(config)


def test_validate_checks_the_notebook_it_was_pressed_on(tmp_path):
    """Checks the command the Validate button runs (the released file by its assignment's name,
    another copy by its path) and that what it printed reaches the dialog escaped, under the
    command."""
    from course_grading.check import lab

    root = tmp_path.resolve()
    (root / "assignments" / "bayes").mkdir(parents=True)
    released, copy = (root / "assignments" / "bayes" / f"{n}.ipynb" for n in ("bayes", "mine"))
    assert lab.command(root, released) == ["course", "check", "bayes"]
    assert lab.command(root, copy) == ["course", "check", "bayes", "assignments/bayes/mine.ipynb"]
    reply = lab.dialog(["course", "check", "bayes"], "part  <b>x</b> & y\n")
    entry, = json.loads(reply["value"])["failed"]
    assert reply["success"] is True and entry["source"] == "$ course check bayes"
    assert entry["error"].endswith("part  &lt;b&gt;x&lt;/b&gt; &amp; y\n"), entry["error"]
