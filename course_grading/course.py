"""The course's nbgrader configuration and gradebook: the one place that loads either.

The repository root is an nbgrader course directory (``nbgrader_config.py``):
``solutions/<assignment>/`` holds the source notebooks with solutions and hidden tests,
``assignments/<assignment>/`` the student release generated from them, and ``submitted/``,
``autograded/``, ``feedback/`` and ``gradebook.db`` are local, git-ignored grading state.
Every other module asks here for the configuration (:func:`load_config`), nbgrader's API
(:func:`nbgrader_api`) and the gradebook (:func:`gradebook`).
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from course_lib.paths import REPO


CONFIG_FILE = "nbgrader_config.py"


class GradingError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's log or traceback."""


@contextlib.contextmanager
def in_course(course_root: Path):
    """Run with cwd = the course root and this interpreter's bin/ first on PATH.

    nbgrader resolves some paths against the working directory and shells out to
    ``alembic`` (installed next to this interpreter) when it creates a gradebook.
    """
    old_cwd, old_path = os.getcwd(), os.environ.get("PATH", "")
    os.chdir(course_root)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old_path])
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ["PATH"] = old_path


def root() -> Path:
    """The course directory a ``course`` command works on: the current folder when it holds
    ``nbgrader_config.py`` (where nbgrader reads it from too), else the repository."""
    here = Path.cwd()
    return here.resolve() if (here / CONFIG_FILE).is_file() else REPO


def load_config(course_root: Path | str = REPO):
    """The course's ``nbgrader_config.py`` with ``CourseDirectory.root`` set to ``course_root``."""
    from traitlets.config.loader import PyFileConfigLoader

    course_root = Path(course_root).resolve()
    config = PyFileConfigLoader(CONFIG_FILE, path=str(course_root)).load_config()
    config.CourseDirectory.root = str(course_root)
    return config


def _quiet_nbgrader() -> None:
    """Hide the SQLAlchemy warnings that nbgrader's gradebook code raises on every new
    submission (``SAWarning: Object of type <SubmittedAssignment> not in session``, from
    ``nbgrader/api.py``): they are about nbgrader's session handling, nothing an instructor can
    act on. Only warnings raised from nbgrader's own modules are hidden."""
    import warnings

    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")


def nbgrader_api(course_root: Path | str = REPO):
    """An ``NbGraderAPI`` for the course directory ``course_root``."""
    from nbgrader.apps import NbGraderAPI

    _quiet_nbgrader()
    return NbGraderAPI(config=load_config(course_root))


@contextlib.contextmanager
def gradebook(course_root: Path | str = REPO):
    """nbgrader's gradebook of the course at ``course_root``, opened and closed around a block."""
    from nbgrader.api import Gradebook

    api = nbgrader_api(course_root)
    with Gradebook(api.coursedir.db_url, api.config.CourseDirectory.course_id) as book:
        yield book


def folder(course_root: Path | str, kind: str, assignment: str = "") -> Path:
    """``solutions/<assignment>`` (``kind="source"``) or ``assignments/<assignment>``
    (``kind="release"``) of the course at ``course_root``, as its configuration names them."""
    directory = load_config(course_root).CourseDirectory
    name = {"source": directory.source_directory, "release": directory.release_directory}[kind]
    return Path(course_root) / name / assignment


def unreleased(course_root: Path | str, assignment: str) -> str | None:
    """None when ``assignment`` has a release here; else the line that says so and names the
    released assignments (what every ``course`` subcommand prints for an unknown name)."""
    release = folder(course_root, "release")
    if (release / assignment).is_dir():
        return None
    known = sorted(p.name for p in release.iterdir() if p.is_dir()) if release.is_dir() else []
    return f"no assignment {assignment!r}; the assignments are: {', '.join(known)}"


def check_result(result: dict, what: str) -> None:
    if not result.get("success"):
        raise GradingError(f"{what} failed:\n{result.get('error') or result.get('log', '')}")


def source_assignments(course_root: Path | str = REPO) -> list[str]:
    """Names of the assignment folders in the course's source directory (sorted)."""
    source = Path(course_root) / load_config(course_root).CourseDirectory.source_directory
    return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
