"""``course publish OUT``: the student edition of the course, a repository of its own.

This repository is the instructor's: ``solutions/`` holds every answer and every hidden test.
Students get a copy without them: the lecture notebooks, the student release of every
assignment, ``course_lib``, ``course_grading`` without ``grade/`` (``course check`` runs
``check/`` and ``kernel/``), the install files, the JupyterLab screenshots of ``docs/``, and a
README, Makefile and nbgrader configuration of their own (``grade/student_edition/``), and a
JupyterLab configuration without the instructor's tools (``jupyter_config/``: no Formgrader,
Course List or Create Assignment, a Validate button that runs ``course check``
(:mod:`course_grading.check.lab`), no news pop-up; ``make lab`` uses it). Nothing
else is copied: no ``solutions/``, no gradebook, no tests, no class grading (``grade/``), no
book or measurements (``course_site``).

``OUT`` must be empty, or an earlier edition (it holds :data:`MARKER`); an earlier edition is
replaced file by file, and its ``.git`` is kept, so publishing again and committing gives the
students one commit per release.
"""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from .. import course

TEMPLATES = Path(__file__).parent / "student_edition"
MARKER = ".course-student-edition"
# what of course_grading the student edition holds: everything but the folders that grade a
# class (grade/: this module included); `course check` runs check/ and kernel/
INSTRUCTOR_ONLY = ("grade",)
COPIED = ["requirements.lock", "environment.yml"]
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


class PublishError(Exception):
    """OUT cannot hold the student edition; the message says why."""


def _clear(out: Path) -> None:
    """Make ``out`` an empty folder (but for ``.git``), refusing one that is not an edition."""
    if out.exists() and not out.is_dir():
        raise PublishError(f"{out} is a file, not a folder")
    entries = [p for p in out.iterdir() if p.name != ".git"] if out.is_dir() else []
    if entries and not (out / MARKER).is_file():
        raise PublishError(f"{out} is not empty and holds no earlier student edition "
                           f"({MARKER}); give an empty or new folder")
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def student_pyproject(repo: Path) -> str:
    """pyproject.toml of the student edition: the repository's name, Python and pinned
    dependencies (torch and torchvision as the pair measured to work on a CPU), the two
    student packages and the ``course`` command; no extras."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    dependencies = "".join(f'    "{d}",\n' for d in project["dependencies"])
    return ('[build-system]\nrequires = ["setuptools>=68"]\n'
            'build-backend = "setuptools.build_meta"\n'
            f'\n[project]\nname = "{project["name"]}"\nversion = "{project["version"]}"\n'
            'description = "The transfer- and meta-learning course, student edition: the teaching '
            'library (course_lib) and `course check`."\nreadme = "README.md"\n'
            f'requires-python = "{project["requires-python"]}"\n'
            "# pinned as the instructor's repository pins them (see requirements.lock)\n"
            f"dependencies = [\n{dependencies}]\n"
            '\n[project.scripts]\ncourse = "course_grading.cli:main"\n'
            '\n[tool.setuptools.packages.find]\ninclude = ["course_lib*", "course_grading*"]\n')


def publish(out: Path | str, repo: Path = course.REPO) -> list[Path]:
    """Write the student edition into ``out``; return the files written (relative paths)."""
    out = Path(out).resolve()
    if out == repo.resolve() or repo.resolve() in out.parents:
        raise PublishError(f"{out} is inside the course repository; publish somewhere else")
    release = course.folder(repo, "release")
    if not release.is_dir():
        raise PublishError(f"no student release in {release}: run `course release` first")
    _clear(out)
    shutil.copytree(repo / "course_lib", out / "course_lib", ignore=_JUNK)
    shutil.copytree(repo / "course_grading", out / "course_grading",
                    ignore=lambda folder, names: [*_JUNK(folder, names), *(
                        n for n in names if Path(folder) == repo / "course_grading"
                        and n in INSTRUCTOR_ONLY)])
    shutil.copytree(release, out / "assignments", ignore=_JUNK)
    (out / "notebooks").mkdir()
    for notebook in sorted((repo / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, out / "notebooks" / notebook.name)
    for name in COPIED:
        shutil.copy2(repo / name, out / name)
    (out / "docs").mkdir()
    for image in sorted((repo / "docs").glob("lab-*.png")):   # the README's screenshots
        shutil.copy2(image, out / "docs" / image.name)
    (out / "pyproject.toml").write_text(student_pyproject(repo))
    course_id = course.load_config(repo).CourseDirectory.course_id
    (out / "nbgrader_config.py").write_text(
        (TEMPLATES / "nbgrader_config.py").read_text().replace("{course_id}", course_id))
    for name, target in (("README.md", "README.md"), ("Makefile", "Makefile"),
                         ("gitignore", ".gitignore"),
                         ("assignments_nbgrader_config.py", "assignments/nbgrader_config.py")):
        shutil.copy2(TEMPLATES / name, out / target)
    # JupyterLab with the student's tools only (`make lab` points JUPYTER_CONFIG_PATH here)
    shutil.copytree(TEMPLATES / "jupyter_config", out / "jupyter_config", ignore=_JUNK)
    (out / MARKER).write_text("The student edition of the course, written by `course publish`;"
                              " publishing again replaces everything here but .git.\n")
    return sorted(p.relative_to(out) for p in out.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(out).parts)
