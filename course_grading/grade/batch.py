"""Grading a class: every submission in its own sandbox, in parallel, recorded in nbgrader's
gradebook, with a CSV, per-student feedback and a summary an instructor can act on.

``course grade ASSIGNMENT SUBMISSIONS`` (see :mod:`course_grading.cli`) calls :func:`grade`:

1. :func:`course_grading.check.assemble.collect` finds one folder per student;
2. a pool of ``workers`` runs :func:`~.job.grade_one` per student in a separate process: find and
   read the notebook, :func:`~course_grading.check.assemble.check` it, rebuild the graded notebook
   (hidden tests restored) and run it with :func:`course_grading.check.run.run_notebook` in a
   sandbox kernel that cannot see the gradebook, the source notebooks, the submissions or
   the other students' folders;
3. the parent alone writes the gradebook (nbgrader's ``SaveAutoGrades``), the autograded
   notebooks, the feedback (hidden tests removed), ``grades.csv`` and ``report.json``.

A submission that cannot run still gets a recorded score: 0 for every test that did not
run and full credit for the ones that passed, with the reason in the CSV. When the grader
itself fails (its worker crashed on every attempt), the student is "not graded": nothing is
recorded, an earlier grade stays, and the report and the command's exit status say so.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from .. import course
from ..check import assemble
from ..check.cells import assignment_points
from ..check.machine import MachineNotReady, missing_data
from ..check.run import kernel_folders
from ..kernel.sandbox import Limits, isolation, warm_server
from .journal import Journal
from .record import backup, lateness, outcome_of, record
from .assignments import prepared
from .regrade import Graded, keep_hand_grades, lowered, submission_digest, written_answers
from .roster import students as roster
from .report import write_report
from .workers import failed, worker


class Untrusted(RuntimeError):
    """Grading refused: no isolation on this machine and the submissions are not trusted."""


class NotOnRoster(ValueError):
    """Grading refused: no folder of the batch belongs to a student on the roster."""


OFF_ROSTER = ("not on the roster: nothing recorded (`course students add {student}` puts them "
              "on it; then grade again)")


def hidden_paths(course_root: Path, extra=()) -> list[Path]:
    """What a student's kernel must not see: grading state and sources of this course and of
    the repository course_lib comes from, plus ``extra`` (submissions, scratch)."""
    config = course.load_config(course_root)
    names = [config.CourseDirectory.source_directory, "gradebook.db", "submitted", "autograded",
             "feedback", "build", ".git", "nbgrader_config.py"]
    roots = {Path(course_root).resolve(), course.REPO}
    return sorted({root / n for root in roots for n in names} | {Path(p).resolve() for p in extra})


def grade(assignment: str, submitted: Path | str, course_root: Path | str = course.REPO,
          workers: int | None = None, limits: Limits = Limits(), progress: bool = True,
          env: dict | None = None, mode: str | None = None, scheduler: str | None = None,
          cluster: str | None = None, trust: bool = False, force: bool = False) -> dict:
    """Grade every submission of ``assignment`` under ``submitted``; see the module docstring.

    Args:
        workers: parallel students (default: the machine's cores).
        scheduler, cluster: grade on a Dask cluster instead (:mod:`.cluster`):
            the address of a running scheduler, or ``"local:N"`` for a local one of N workers.
        limits: per-submission :class:`~course_grading.kernel.sandbox.Limits`.
        env: extra environment for the kernels (default ``COURSE_BUDGET=quick``).
        mode: ``"namespaces"`` or ``"process"`` (default: the best this machine allows).
        trust: grade in ``"process"`` mode (no isolation) all the same; without it, a machine
            without namespaces refuses (:class:`Untrusted`) before anything is written.
        force: record a result of an unchanged submission that lowers a recorded score
            (:mod:`.regrade`); without it that student is not graded and keeps the grade.

    Only students on the roster (:mod:`.roster`) are graded; another folder is listed as not
    graded, and a batch with no student of the roster is refused (:class:`NotOnRoster`).

    Raises (before anything is written): Untrusted, FileNotFoundError (no such assignment or
    folder), ValueError (a bad ``cluster`` or ``workers``), ConnectionError (no scheduler at
    ``scheduler``), MachineNotReady (a data set the assignment needs is missing here),
    NotOnRoster, PermissionError (``build/grading/<assignment>`` cannot be written).

    Returns:
        the report (also written to ``build/grading/<assignment>/report.json``).
    """
    from tqdm.auto import tqdm

    if cluster is not None:
        from .cluster import local_workers
        local_workers(cluster)   # a bad "local:N" is said before anything is graded
    if scheduler is not None:
        from .cluster import reachable
        reachable(scheduler)     # and a scheduler nobody runs
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers!r}")
    mode = mode or isolation()
    if mode != "namespaces" and not trust:   # said before anything is written
        raise Untrusted("this machine cannot isolate a graded kernel (no Linux namespaces: "
                        "`unshare --user` fails), so a submission could read other students' "
                        "work and the hidden tests; grade in a container that allows "
                        "namespaces, or pass --trust-submissions if you trust every submission")
    course_root = Path(course_root).resolve()
    source_dir = course.folder(course_root, "source", assignment)
    release_dir = course.folder(course_root, "release", assignment)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"no assignment {assignment!r} in {source_dir.parent}")
    students = assemble.collect(submitted, assignment)
    missing = missing_data(source_dir.glob("*.ipynb"))   # the machine's fault: nobody graded
    if missing:
        raise MachineNotReady(f"nothing was graded or written: this machine cannot run "
                              f"{assignment}.\n{missing}")
    on_roster = set(roster(course_root))
    not_graded = {s: OFF_ROSTER.format(student=s) for s in students if s not in on_roster}
    if students and len(not_graded) == len(students):
        raise NotOnRoster(f"nothing was graded: no student of {submitted} is on the roster "
                          f"({', '.join(list(students)[:5])}{', …' if len(students) > 5 else ''}"
                          "); add the class with `course students add NAME ...`")
    students = {s: folder for s, folder in students.items() if s not in not_graded}
    writable(course_root / "build" / "grading" / assignment)   # said before anything is written
    backup(course_root, assignment)     # before anything of this batch is written
    prepared(course_root, assignment)   # the gradebook learns the source cells
    notebooks = {p.stem: {"release": str(release_dir / p.name), "source": str(p)}
                 for p in sorted(source_dir.glob("*.ipynb"))}
    points = assignment_points(paths["source"] for paths in notebooks.values())
    workers = workers or os.cpu_count() or 1
    from .cluster import scratch_folder
    scratch = scratch_folder("run")   # and the scratch of earlier runs that were killed
    kernel_env = {"COURSE_BUDGET": "quick", **kernel_folders(), **(env or {})}
    if "COURSE_DATA" in os.environ:
        kernel_env.setdefault("COURSE_DATA", os.environ["COURSE_DATA"])
    hide = [str(p) for p in hidden_paths(course_root, [submitted, scratch])]
    jobs = [{"student": s, "folder": str(folder), "notebooks": notebooks,
             "workdir": str(scratch / str(i)), "out": str(scratch / "out" / str(i)),
             "limits": asdict(limits), "hide": hide, "mode": mode, "env": kernel_env,
             "points": points}
            for i, (s, folder) in enumerate(students.items())]
    timeout = limits.notebook_seconds * len(notebooks) + 120
    start = time.monotonic()
    journal = Journal(course_root, assignment)
    earlier = {job["student"]: journal.recorded(job) for job in jobs}   # by a killed run
    results = [result for result in earlier.values() if result is not None]
    # the biggest hand-ins first (they tend to run longest), so the batch does not end on
    # one long notebook while the other workers sit idle
    todo = {job["student"]: job for job in sorted(jobs, key=_size, reverse=True)
            if earlier[job["student"]] is None}
    graded = Graded(course_root, assignment)
    try:
        with finishing(list(todo.values()), timeout, workers, scheduler, cluster,
                       scratch) as finished:
            where = f"on {scheduler or cluster}" if scheduler or cluster else f"{workers} workers"
            resumed = f"; {len(results)} recorded before, not graded again" if results else ""
            for result in tqdm(finished, total=len(todo), disable=not progress,
                               desc=f"grading {assignment} ({where}{resumed})"):
                student = result["student"]
                if result.get("not_graded"):   # the grader's fault: nothing recorded
                    not_graded[student] = result["not_graded"] + " (the grader's fault: " \
                        "no score was recorded; grade this student again)"
                    continue
                digest = submission_digest(todo[student]["folder"])
                lower = None if force else lowered(course_root, assignment, result, graded,
                                                    digest)
                if lower:   # a re-grade that would lose points: the recorded grade stands
                    not_graded[student] = lower
                    continue
                results.append(result)   # recorded while the others still run
                record(course_root, assignment, [result], [outcome_of(result, points)])
                lateness(course_root, assignment, result)
                answers = written_answers(result)
                notes = keep_hand_grades(course_root, assignment, student,
                                         graded.answers(student), answers)
                next(iter(result["notebooks"].values()))["notes"].extend(notes)
                graded.add(student, digest, answers)
                journal.add(todo[student], result)
        results.sort(key=lambda r: r["student"])
        outcomes = [outcome_of(r, points) for r in results]
        report = write_report(course_root, assignment, outcomes, points, mode, workers,
                              time.monotonic() - start, resumed=len(jobs) - len(todo),
                              not_graded=not_graded)
        journal.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def writable(folder: Path) -> None:
    """Make ``folder`` (where the CSV, report and backups go) or say, before anything is written,
    that it cannot be written (PermissionError). The owner's write bit decides, not
    ``os.access``, which is always true for root."""
    import stat

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"cannot make {folder}: {error.strerror or error}") from None
    if not folder.stat().st_mode & stat.S_IWUSR:
        raise PermissionError(f"{folder} is read-only: nothing was graded; make it writable "
                              "(chmod u+w) and grade again")


def _size(job: dict) -> int:
    """Bytes of a student's notebooks (links and unreadable files count 0)."""
    total = 0
    for path in Path(job["folder"]).glob("*.ipynb"):
        with contextlib.suppress(OSError):
            total += 0 if path.is_symlink() else path.stat().st_size
    return total


@contextlib.contextmanager
def finishing(jobs: list[dict], timeout: float, workers: int, scheduler: str | None,
             cluster: str | None, scratch: Path):
    """The graded jobs' results as they finish: from ``workers`` local worker processes (their
    kernels forked from one warm server where namespaces isolate them:
    :mod:`course_grading.kernel.warm`), or from a Dask cluster when ``scheduler`` or
    ``cluster`` names one."""
    if scheduler or cluster:
        from . import cluster as dask

        with dask.client(scheduler, cluster) as connected:
            yield dask.results(jobs, timeout, connected, scratch, worker, failed)
        return
    isolated = bool(jobs) and all(job["mode"] == "namespaces" for job in jobs)
    warm = warm_server(jobs[0]["limits"]["memory_mb"]) if isolated else None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(worker, {**job, "warm": warm}, timeout) for job in jobs]
        yield (future.result() for future in as_completed(futures))
