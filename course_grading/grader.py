"""Grading a class: every submission in its own sandbox, in parallel, recorded in nbgrader's
gradebook, with a CSV, per-student feedback and a summary an instructor can act on.

``course grade ASSIGNMENT SUBMISSIONS`` (see :mod:`course_grading.cli`) calls :func:`grade`:

1. :func:`course_grading.submissions.collect` finds one folder per student;
2. a pool of ``workers`` runs :func:`grade_one` per student in a separate process: find and
   read the notebook, :func:`~course_grading.submissions.check` it, rebuild the graded notebook
   (hidden tests restored) and run it with :func:`course_grading.runner.run_notebook` in a
   sandbox kernel that cannot see the gradebook, the source notebooks, the submissions or
   the other students' folders;
3. the parent alone writes the gradebook (nbgrader's ``SaveAutoGrades``), the autograded
   notebooks, the feedback (hidden tests removed), ``grades.csv`` and ``report.json``.

A submission that cannot run still gets a recorded score: 0 for every test that did not
run and full credit for the ones that passed, with the reason in the CSV.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import html
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import grading, integrity, submissions
from .runner import HIDDEN_BEGIN, NOT_RUN, error_output, kernel_folders, run_notebook
from .sandbox import Limits, _die_with_parent, isolation

HIDDEN_END = "### END HIDDEN TESTS"


# ---------------------------------------------------------------------------- one notebook
def has_hidden_tests(cell) -> bool:
    return cell.cell_type == "code" and HIDDEN_BEGIN in cell.source


def scores_of(notebook: nbformat.NotebookNode) -> dict[str, tuple]:
    """``{grade_id: (score or None, max_score)}`` of an executed notebook, by nbgrader's rule
    (a test cell scores its points unless it produced an error). Unlike plain nbgrader, text
    on stderr (warnings, a student's debug prints) does not cost points."""
    from nbgrader.utils import determine_grade, is_grade

    scores = {}
    for cell in notebook.cells:
        if is_grade(cell):
            quiet = _without_stderr(cell)
            scores[submissions.grade_id(cell)] = determine_grade(quiet)
    return scores


def _without_stderr(cell):
    cell = submissions._copy(cell)
    if cell.cell_type == "code":
        cell.outputs = [o for o in cell.outputs
                        if not (o.output_type == "stream" and o.get("name") == "stderr")]
    return cell


def not_run(notebook: nbformat.NotebookNode, why: str) -> nbformat.NotebookNode:
    """``notebook`` with every code cell marked as not run (its tests score 0)."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [error_output(NOT_RUN, why)], None
    return notebook


def grade_one(job: dict) -> dict:
    """Grade one student's notebooks (runs in a worker process); returns a JSON-able result.

    ``job``: student, folder, notebooks (``name → {release, source}`` paths), workdir, out,
    limits, hide, mode, env.
    """
    start = time.monotonic()
    result = {"student": job["student"], "notebooks": {}}
    names = list(job["notebooks"])
    for name, paths in job["notebooks"].items():
        release = nbformat.read(paths["release"], as_version=4)
        source = nbformat.read(paths["source"], as_version=4)
        notes, findings, events = [], [], []
        path, note = submissions.find_notebook(Path(job["folder"]), name, release,
                                               [n for n in names if n != name])
        notes += [note] if note else []
        submitted = None
        if path is not None:
            try:
                submitted = submissions.read_notebook(path)
            except submissions.SubmissionError as error:
                notes.append(str(error))
        if submitted is not None:
            findings = submissions.check(submitted, release)
        graded = submissions.graded_notebook(submitted, release, source)
        if submitted is None:
            executed = not_run(graded, notes[-1] if notes else "nothing to grade")
        else:
            workdir = Path(job["workdir"]) / name[:8]
            workdir.mkdir(parents=True)
            declared = integrity.own_work(paths["source"])
            run = run_notebook(graded, workdir, Limits(**job["limits"]), job["hide"],
                               job["mode"], job["env"], declared)
            executed, events = run.notebook, run.events
            result["run_seconds"] = round(run.seconds, 2)
            verdict = integrity.police(graded, declared, run.integrity, grading.REPO, release)
            integrity.penalise(executed, verdict)
            findings += [submissions.Finding(*f) for f in verdict.findings]
            findings += [submissions.Finding(label, "an output shows hidden test code; it was "
                                                    "removed from the feedback", True)
                         for label in leaks(executed, release, source)]
        out = Path(job["out"]) / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(inert(executed), out)
        result["notebooks"][name] = {
            "executed": str(out), "submitted": str(path) if path else None,
            "scores": scores_of(executed), "notes": notes + events,
            "findings": [asdict(f) for f in findings]}
    outcome = _outcome(result, job["points"])
    for name, paths in job["notebooks"].items():
        nb = result["notebooks"][name]
        nb["feedback"] = str(Path(job["out"]) / f"{name}.html")
        Path(nb["feedback"]).write_text(feedback_html(
            nbformat.read(nb["executed"], as_version=4),
            nbformat.read(paths["release"], as_version=4), outcome,
            nbformat.read(paths["source"], as_version=4)))
    result["seconds"] = round(time.monotonic() - start, 2)
    return result


# ---------------------------------------------------------------------------- the class
@dataclass
class Outcome:
    """One student's recorded grade."""
    student: str
    parts: dict[str, float]
    total: float
    needs_manual: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _outcome(result: dict, points: dict[str, float]) -> Outcome:
    parts = {part: 0.0 for part in points}
    outcome = Outcome(result["student"], parts, 0.0)
    for name, nb in result["notebooks"].items():
        for gid, (score, _) in sorted(nb["scores"].items()):
            parts[grading.part_of(gid)] += score or 0.0
            if score is None:
                outcome.needs_manual.append(gid)
        outcome.reasons += nb["notes"]
        outcome.tampering += [f"{f['cell']}: {f['what']}" for f in nb["findings"] if f["tampering"]]
        outcome.reasons += [f"{f['cell']}: {f['what']}" for f in nb["findings"] if not f["tampering"]]
    outcome.total = sum(parts.values())
    late = result.get("late")
    if late:   # recorded by the parent from nbgrader's gradebook (see _record)
        outcome.total -= late["penalty"]
        outcome.reasons.append(f"submitted {late['seconds']:g} s after the due date: late "
                               f"penalty {late['penalty']:g} ({late['method']})")
    return outcome


_CONTEXT = []
_START = threading.Lock()


def _forkserver():
    """Workers fork from a server that has imported the grader, and the modules it imports
    lazily, once (a fresh Python per student would spend a second or two on imports alone;
    nbgrader's own import took 1 s of each student's 2 s in a batch of the tiny assignment)."""
    if not _CONTEXT:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["course_grading.grader", "nbgrader.utils",
                                        "IPython.core.inputtransformer2"])
        _CONTEXT.append(context)
    return _CONTEXT[0]


def _child(job_file: str, log: str) -> None:
    os.setsid()                      # its own process group, ended as a whole
    _die_with_parent()               # and gone with the process that started it (e.g. a Dask
                                     # worker killed mid-task), its kernel with it
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(out, 2)
    code = main([job_file])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # skip interpreter shutdown (zmq sockets linger for a second there)


WORKER_ATTEMPTS = 2   # a worker that crashed (not timed out) is the grader's fault: try again


def _worker(job: dict, timeout: float) -> dict:
    """Run :func:`grade_one` in a separate process; a crash or hang of the worker itself still
    gives a result (every test not run) instead of an ungraded student. The worker runs only
    the grader's code (the student's runs in a kernel of its own), so a crashed worker is tried
    again, up to ``WORKER_ATTEMPTS`` times; a timeout is not."""
    Path(job["workdir"]).mkdir(parents=True, exist_ok=True)
    job_file = Path(job["workdir"]) / "job.json"
    job_file.write_text(json.dumps(job))
    result_file = Path(job["out"]) / "result.json"
    for attempt in range(WORKER_ATTEMPTS):
        for name in job["notebooks"]:  # a fresh scratch folder per notebook and attempt
            shutil.rmtree(Path(job["workdir"]) / name[:8], ignore_errors=True)
        log = Path(job["workdir"]) / f"worker-{attempt}.log"
        worker = _forkserver().Process(target=_child, args=(str(job_file), str(log)))
        with _START:   # the worker needs nothing from __main__: do not make it import the caller
            main_module = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                worker.start()
            finally:
                sys.modules["__main__"] = main_module
        worker.join(timeout)
        why = f"grading took longer than {timeout:g} s" if worker.is_alive() else None
        _kill_group(worker.pid)
        worker.join()
        if why is None and worker.exitcode == 0 and result_file.is_file():
            return json.loads(result_file.read_text())
        if why is None:
            last = (log.read_text().strip().splitlines()[-1:] if log.exists() else []) \
                or [f"exit status {worker.exitcode}"]
            why = f"the grader's worker failed ({last[0][:200]})"
        if why.startswith("grading took longer"):
            break
    return failed(job, why)


def failed(job: dict, why: str) -> dict:
    """The result of a student whose grading could not finish: every test not run, with ``why``
    (the executed notebooks written under ``job["out"]``)."""
    result = {"student": job["student"], "notebooks": {}}
    for name, paths in job["notebooks"].items():
        executed = not_run(submissions.graded_notebook(
            None, nbformat.read(paths["release"], as_version=4),
            nbformat.read(paths["source"], as_version=4)), why)
        out = Path(job["out"]) / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(executed, out)
        result["notebooks"][name] = {"executed": str(out), "submitted": None,
                                     "scores": scores_of(executed), "notes": [why],
                                     "findings": []}
    return result


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Untrusted(RuntimeError):
    """Grading refused: no isolation on this machine and the submissions are not trusted."""


def hidden_paths(course_root: Path, extra=()) -> list[Path]:
    """What a student's kernel must not see: grading state and sources of this course and of
    the repository course_lib comes from, plus ``extra`` (submissions, scratch)."""
    config = grading.load_config(course_root)
    names = [config.CourseDirectory.source_directory, "gradebook.db", "submitted", "autograded",
             "feedback", "build", ".git", "nbgrader_config.py"]
    roots = {Path(course_root).resolve(), grading.REPO}
    return sorted({root / n for root in roots for n in names} | {Path(p).resolve() for p in extra})


def grade(assignment: str, submitted: Path | str, course_root: Path | str = grading.REPO,
          workers: int | None = None, limits: Limits = Limits(), progress: bool = True,
          env: dict | None = None, mode: str | None = None, scheduler: str | None = None,
          cluster: str | None = None, trust: bool = False) -> dict:
    """Grade every submission of ``assignment`` under ``submitted``; see the module docstring.

    Args:
        workers: parallel students (default: the machine's cores).
        scheduler, cluster: grade on a Dask cluster instead (:mod:`course_grading.cluster`):
            the address of a running scheduler, or ``"local:N"`` for a local one of N workers.
        limits: per-submission :class:`~course_grading.sandbox.Limits`.
        env: extra environment for the kernels (default ``COURSE_BUDGET=quick``).
        mode: ``"namespaces"`` or ``"process"`` (default: the best this machine allows).
        trust: grade in ``"process"`` mode (no isolation) all the same; without it, a machine
            without namespaces refuses (:class:`Untrusted`) before anything is written.

    Returns:
        the report (also written to ``build/grading/<assignment>/report.json``).
    """
    from tqdm.auto import tqdm

    if cluster is not None:
        from .cluster import local_workers
        local_workers(cluster)   # a bad "local:N" is said before anything is graded
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers!r}")
    mode = mode or isolation()
    if mode != "namespaces" and not trust:   # said before anything is written
        raise Untrusted("this machine cannot isolate a graded kernel (no Linux namespaces: "
                        "`unshare --user` fails), so a submission could read other students' "
                        "work and the hidden tests; grade in a container that allows "
                        "namespaces, or pass --trust-submissions if you trust every submission")
    course_root = Path(course_root).resolve()
    config = grading.load_config(course_root)
    source_dir = course_root / config.CourseDirectory.source_directory / assignment
    release_dir = course_root / config.CourseDirectory.release_directory / assignment
    if not source_dir.is_dir():
        raise FileNotFoundError(f"no assignment {assignment!r} in {source_dir.parent}")
    students = submissions.collect(submitted, assignment)
    grading.generate(course_root, assignment)   # the gradebook learns the source cells
    notebooks = {p.stem: {"release": str(release_dir / p.name), "source": str(p)}
                 for p in sorted(source_dir.glob("*.ipynb"))}
    points = {}
    for paths in notebooks.values():
        for part, value in grading.part_points(paths["source"]).items():
            points[part] = points.get(part, 0.0) + value
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
    todo = {job["student"]: job for job in jobs if earlier[job["student"]] is None}
    try:
        with _results(list(todo.values()), timeout, workers, scheduler, cluster, scratch) as finished:
            where = f"on {scheduler or cluster}" if scheduler or cluster else f"{workers} workers"
            resumed = f"; {len(results)} recorded before, not graded again" if results else ""
            for result in tqdm(finished, total=len(todo), disable=not progress,
                               desc=f"grading {assignment} ({where}{resumed})"):
                results.append(result)   # recorded while the others still run
                _record(course_root, assignment, [result], [_outcome(result, points)])
                _lateness(course_root, assignment, result)
                journal.add(todo[result["student"]], result)
        results.sort(key=lambda r: r["student"])
        outcomes = [_outcome(r, points) for r in results]
        report = _report(course_root, assignment, outcomes, points, mode, workers,
                         time.monotonic() - start, resumed=len(jobs) - len(todo))
        journal.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


class Journal:
    """Who of a batch is recorded, so that re-running a grading command that was killed
    resumes it: after a student's gradebook entry, files and late penalty are written, their
    result goes to ``build/grading/<assignment>/recorded/<student>.json`` under a key of all
    that decides the grade (the submission's files, the assignment's notebooks, the limits,
    the kernel's settings, the course's nbgrader configuration (late penalties), the grader's
    and course_lib's code). A student whose key matches is
    not graded again; the journal is removed when the batch is done, so a later run grades
    everyone afresh."""

    def __init__(self, course_root: Path, assignment: str):
        self.folder = course_root / "build" / "grading" / assignment / "recorded"
        code = sorted(p for package in (Path(__file__).parent, grading.REPO / "course_lib")
                      for p in package.rglob("*.py"))
        config = course_root / grading.CONFIG_FILE
        self.code = _digest(([config] if config.is_file() else []) + code)

    def key(self, job: dict) -> str:
        decides = {k: job[k] for k in ("student", "limits", "mode", "env")}
        files = sorted(p for p in Path(job["folder"]).rglob("*") if p.is_file())
        notebooks = sorted(Path(p) for paths in job["notebooks"].values() for p in paths.values())
        return _digest(notebooks + files, json.dumps(decides, sort_keys=True) + self.code)

    def _file(self, job: dict) -> Path:
        return self.folder / f"{job['student']}.json"

    def recorded(self, job: dict) -> dict | None:
        try:
            entry = json.loads(self._file(job).read_text())
        except (OSError, ValueError):
            return None
        return entry["result"] if entry.get("key") == self.key(job) else None

    def add(self, job: dict, result: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._file(job).with_suffix(".partial")
        partial.write_text(json.dumps({"key": self.key(job), "result": result}))
        os.replace(partial, self._file(job))   # whole or absent, whatever kills the process

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _digest(paths: list[Path], text: str = "") -> str:
    digest = hashlib.sha256(text.encode())
    for path in paths:
        digest.update(f"\0{path}\0".encode())
        with open(path, "rb") as file:   # in chunks: a submission may hold a large file
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


@contextlib.contextmanager
def _results(jobs: list[dict], timeout: float, workers: int, scheduler: str | None,
             cluster: str | None, scratch: Path):
    """The graded jobs' results as they finish: from ``workers`` local worker processes, or
    from a Dask cluster when ``scheduler`` or ``cluster`` names one."""
    if scheduler or cluster:
        from . import cluster as dask

        with dask.client(scheduler, cluster) as connected:
            yield dask.results(jobs, timeout, connected, scratch, _worker, failed)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_worker, job, timeout) for job in jobs]
        yield (future.result() for future in as_completed(futures))


# ---------------------------------------------------------------------------- recording
def _record(course_root: Path, assignment: str, results: list[dict],
            outcomes: list[Outcome]) -> None:
    """Gradebook, submitted/ and autograded/ copies, and feedback, written by the parent only."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    api = grading.nbgrader_api(course_root)
    config = grading.load_config(course_root)
    with Gradebook(api.coursedir.db_url, config.CourseDirectory.course_id) as gradebook:
        for result in results:
            gradebook.update_or_create_student(result["student"])
            gradebook.update_or_create_submission(assignment, result["student"],
                                                  timestamp=submission_time(result))
    for result, outcome in zip(results, outcomes):
        student = result["student"]
        for name, nb in result["notebooks"].items():
            executed = nbformat.read(nb["executed"], as_version=4)
            quiet = submissions._copy(executed)
            quiet.cells = [_without_stderr(c) for c in quiet.cells]
            resources = {"nbgrader": {"notebook": name, "assignment": assignment,
                                      "student": student, "db_url": api.coursedir.db_url}}
            SaveAutoGrades().preprocess(quiet, resources)
            AssignLatePenalties(config=config).preprocess(quiet, resources)
            target = course_root / "autograded" / student / assignment / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(executed, target)
            target = course_root / "submitted" / student / assignment / f"{name}.ipynb"
            if nb["submitted"] and Path(nb["submitted"]).resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(nb["submitted"], target)
                _copy_exchange_files(Path(nb["submitted"]).parent, target.parent)
            target = course_root / "feedback" / student / assignment / f"{name}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            if nb["submitted"]:   # what nbgrader's release_feedback needs beside the page
                _copy_exchange_files(Path(nb["submitted"]).parent, target.parent)
            if nb.get("feedback"):
                shutil.copyfile(nb["feedback"], target)
            else:   # the worker failed: the parent writes it
                release = nbformat.read(course_root / config.CourseDirectory.release_directory
                                        / assignment / f"{name}.ipynb", as_version=4)
                source = nbformat.read(course_root / config.CourseDirectory.source_directory
                                       / assignment / f"{name}.ipynb", as_version=4)
                target.write_text(feedback_html(executed, release, outcome, source))


EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


def _copy_exchange_files(folder: Path, target: Path) -> None:
    """The files nbgrader's exchange writes beside a submission (when it came through one)."""
    for name in EXCHANGE_FILES:
        if submissions.plain_file(folder / name) and \
                (folder / name).resolve() != (target / name).resolve():
            shutil.copyfile(folder / name, target / name, follow_symlinks=False)


def submission_time(result: dict):
    """When the student handed in: the ``timestamp.txt`` that nbgrader's exchange writes next
    to a submission (``None`` for a plain folder: never late). A stamp that is a link, too
    large or not a time is not used: the result gets a note for the instructor instead (that
    student alone; the batch goes on)."""
    from nbgrader.utils import parse_utc

    for nb in result["notebooks"].values():
        stamp = Path(nb["submitted"]).parent / "timestamp.txt" if nb["submitted"] else None
        if stamp is None or not (stamp.exists() or stamp.is_symlink()):
            continue
        why = None
        if not submissions.plain_file(stamp) or stamp.stat().st_size > 256:
            why = "is not a small plain file"
        else:
            try:
                return parse_utc(stamp.read_bytes().decode("utf-8").strip())
            except Exception as error:   # not UTF-8, not a time: dateutil raises many kinds
                why = f"is not a time ({type(error).__name__})"
        note = (f"timestamp.txt {why}: the submission time is unknown and no late penalty was "
                "applied; check it by hand")
        if note not in nb["notes"]:
            nb["notes"].append(note)
        return None
    return None


def _lateness(course_root: Path, assignment: str, result: dict) -> None:
    """Put nbgrader's late penalty (``LateSubmissionPlugin.penalty_method``), which
    :func:`_record` assigned in the gradebook, into ``result``."""
    from nbgrader.api import Gradebook, MissingEntry

    config = grading.load_config(course_root)
    with Gradebook(grading.nbgrader_api(course_root).coursedir.db_url,
                   config.CourseDirectory.course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, result["student"])
        except MissingEntry:
            return
        seconds = submission.total_seconds_late
        penalty = sum(nb.late_submission_penalty or 0.0 for nb in submission.notebooks)
    if seconds > 0:
        method = config.LateSubmissionPlugin.get("penalty_method", "none")
        result["late"] = {"seconds": round(seconds, 1), "penalty": penalty,
                          "method": f"LateSubmissionPlugin.penalty_method = {method}"}


def hidden_lines(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> set[str]:
    """Lines of the hidden tests that the release does not show (long enough to be telling)."""
    shown = {line.strip() for c in release.cells for line in c.source.splitlines()}
    found = set()
    for cell in source.cells:
        if has_hidden_tests(cell):
            body = cell.source.split(HIDDEN_BEGIN, 1)[1].split(HIDDEN_END, 1)[0]
            found |= {line.strip() for line in body.splitlines()
                      if len(line.strip()) >= 16 and line.strip() not in shown}
    return found


def _texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.get("text", "")]
    if output.output_type == "error":
        return ["\n".join(output.get("traceback", [])), str(output.get("evalue", ""))]
    return [str(v) for v in output.get("data", {}).values()]


def own_lines(notebook: nbformat.NotebookNode) -> set[str]:
    """The stripped lines of a notebook's cells other than hidden tests (what the student
    wrote or was shown)."""
    return {line.strip() for c in notebook.cells if not has_hidden_tests(c)
            for line in c.source.splitlines()}


def leaks(executed, release, source=None, lines: set[str] | None = None) -> list[str]:
    """Labels of the cells (other than hidden tests) whose outputs show hidden test code that
    the student did not write themselves (``optimizer.step()`` in a student's own traceback
    is their line, whatever a hidden test also holds)."""
    lines = hidden_lines(release, source) if lines is None else lines
    lines = lines - own_lines(executed)
    found = []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type == "code" and not has_hidden_tests(cell) and lines and any(
                line in text for o in cell.outputs for text in _texts(o) for line in lines):
            found.append(submissions.grade_id(cell) or f"cell {index}")
    return found


def student_view(executed: nbformat.NotebookNode, release: nbformat.NotebookNode,
                 lines: set[str] = frozenset()) -> nbformat.NotebookNode:
    """``executed`` as a student may see it: cells with hidden tests show the release's
    (visible) source and only whether they passed, never the hidden code or its traceback;
    an output of another cell that shows any of the hidden test ``lines`` is removed."""
    released = {submissions.grade_id(c): c for c in release.cells if submissions.grade_id(c)}
    view = submissions._copy(executed)
    for cell in view.cells:
        if cell.cell_type == "code" and not has_hidden_tests(cell) and lines:
            cell.outputs = [o if not any(line in text for text in _texts(o) for line in lines)
                            else nbformat.v4.new_output("stream", name="stdout", text=
                                "[output removed by the grader: it showed hidden test code]\n")
                            for o in cell.outputs]
        if has_hidden_tests(cell):
            gid = submissions.grade_id(cell)
            cell.source = released[gid].source if gid in released else "# hidden tests"
            errors = [o.ename for o in cell.outputs if o.output_type == "error"]
            verdict = f"hidden tests: failed ({errors[0]})" if errors else "hidden tests: passed"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict + "\n")]
    return view


_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          "pre{background:#f6f6f6;padding:.5em;overflow-x:auto}"
          ".out{background:#fff;border-left:3px solid #ccc}.err{border-left:3px solid #c33}"
          "td,th{padding:.2em 1em;border-bottom:1px solid #ddd}")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _output_html(output) -> str:
    if output.output_type == "stream":
        return f"<pre class=out>{html.escape(output.text)}</pre>"
    if output.output_type == "error":
        text = _ANSI.sub("", "\n".join(output.traceback) or f"{output.ename}: {output.evalue}")
        return f"<pre class='out err'>{html.escape(text)}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        png = _image(data["image/png"], "image/png")
        return f"<img alt='figure' src='data:image/png;base64,{png}'>" if png else \
            "<pre class=out>[an image that is not a PNG was left out]</pre>"
    return f"<pre class=out>{html.escape(str(data.get('text/plain', '')))}</pre>"


_SHOWN = ("text/plain", "image/png", "image/jpeg")   # what a graded notebook's outputs keep


def inert(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with nothing that a browser would run when the instructor opens it in the
    Formgrader or a student opens the feedback: outputs keep plain text and re-encoded PNG and
    JPEG images only (HTML, JavaScript, SVG, widgets become their plain text), and the student's
    markdown cells show HTML tags as text (a tag's ``<`` written as ``&lt;`` outside math;
    Markdown and math still render). Attachments other than PNG and JPEG images are dropped."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                data = output.get("data")
                if data is None:
                    continue
                kept = {k: v for k, v in data.items() if k in _SHOWN}
                for kind in ("image/png", "image/jpeg"):
                    if kind in kept and _image(kept[kind], kind) is None:
                        kept.pop(kind)
                    elif kind in kept:
                        kept[kind] = _image(kept[kind], kind)
                if not kept:
                    kept = {"text/plain": f"[an output of type {', '.join(sorted(data))} was "
                                          "left out by the grader]"}
                output["data"] = kept
                output.get("metadata", {}).pop("text/html", None)
        elif cell.cell_type == "markdown" and not submissions.is_locked(cell):
            cell.source = _tags_as_text(cell.source)
            attachments = cell.get("attachments", {})
            for key in list(attachments):
                images = {k: _image(v, k) for k, v in attachments[key].items()
                          if k in ("image/png", "image/jpeg")}
                images = {k: v for k, v in images.items() if v}
                if images:
                    attachments[key] = images
                else:
                    attachments.pop(key)
    return notebook


_MATH = re.compile(r"(\$\$.*?\$\$|\$[^$\n]*\$)", re.DOTALL)
_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def _tags_as_text(markdown: str) -> str:
    """Markdown with every HTML tag's ``<`` written ``&lt;`` (shown, not parsed), outside math."""
    parts = _MATH.split(markdown)
    return "".join(part if i % 2 else _TAG.sub("&lt;", part) for i, part in enumerate(parts))


_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8"}


def _image(text, kind: str = "image/png") -> str | None:
    """A notebook's base64 image, decoded and encoded again (so nothing but base64 reaches a
    page), or None when it is not one of ``kind``."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(str(text).encode("ascii", "strict"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if raw.startswith(_MAGIC[kind]) else None


def feedback_html(executed, release, outcome: Outcome, source=None) -> str:
    """Per-student feedback, one self-contained HTML page: points per part, the reasons and
    findings, then every cell of the graded notebook as the student may see it
    (:func:`student_view`). Plain HTML: nbconvert's exporter costs most of a second per
    notebook, which a class of hundreds pays on every grading run. Given the ``source``, no
    line of its hidden tests survives anywhere on the page (notes included)."""
    rows = "".join(f"<tr><td>{html.escape(part)}</td><td>{score:g}</td></tr>"
                   for part, score in outcome.parts.items())
    notes = "".join(f"<li>{html.escape(r)}</li>" for r in outcome.reasons + outcome.tampering)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback: "
             f"{html.escape(outcome.student)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Feedback for {html.escape(outcome.student)}</h1>",
             f"<table><tr><th>part</th><th>points</th></tr>{rows}<tr><th>total</th>"
             f"<th>{outcome.total:g}</th></tr></table>", f"<ul>{notes}</ul>" if notes else ""]
    lines = hidden_lines(release, source) - own_lines(executed) if source is not None \
        else frozenset()
    for cell in student_view(executed, release, lines).cells:
        if cell.cell_type == "code":
            parts.append(f"<pre>{html.escape(cell.source)}</pre>")
            parts += [_output_html(o) for o in cell.outputs]
        else:
            parts.append(f"<div><pre style='background:none'>{html.escape(cell.source)}</pre></div>")
    page = "\n".join(parts + ["</body></html>"])
    for line in sorted(lines, key=len, reverse=True):   # by construction, whatever the path
        page = page.replace(html.escape(line), "[hidden test code removed]")
    return page


NOTHING_SUBMITTED = "nothing submitted: on the roster, with no submission in the gradebook"


def missing(course_root: Path, assignment: str, graded: set[str]) -> list[str]:
    """Students of the gradebook's roster (``nbgrader db student add``) who have no submission
    of ``assignment``, neither in this batch nor graded before."""
    from nbgrader.api import Gradebook

    config = grading.load_config(course_root)
    with Gradebook(grading.nbgrader_api(course_root).coursedir.db_url,
                   config.CourseDirectory.course_id) as gradebook:
        submitted = {s.student.id for s in gradebook.assignment_submissions(assignment)} \
            if assignment in {a.name for a in gradebook.assignments} else set()
        return sorted(s.id for s in gradebook.students if s.id not in submitted | graded)


def _report(course_root: Path, assignment: str, outcomes: list[Outcome], points: dict,
            mode: str, workers: int, seconds: float, resumed: int = 0) -> dict:
    folder = course_root / "build" / "grading" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *points, "total", "max", "tampering", "needs_manual_grading",
                     "reasons"])
    for o in outcomes:
        writer.writerow([o.student, *(f"{o.parts[p]:g}" for p in points), f"{o.total:g}",
                         f"{sum(points.values()):g}", "; ".join(o.tampering),
                         "; ".join(o.needs_manual), "; ".join(o.reasons)])
    absent = missing(course_root, assignment, {o.student for o in outcomes})
    for student in absent:
        writer.writerow([student, *("0" for _ in points), "0", f"{sum(points.values()):g}",
                         "", "", NOTHING_SUBMITTED])
    (folder / "grades.csv").write_text(buffer.getvalue())
    report = {"assignment": assignment, "students": len(outcomes), "isolation": mode,
              "workers": workers, "seconds": round(seconds, 1), "resumed": resumed,
              "max": sum(points.values()), "outcomes": [asdict(o) for o in outcomes],
              "missing": absent}
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    report["csv"] = str(folder / "grades.csv")
    return report


def summary(report: dict) -> str:
    """A few lines for the instructor: who scored what, tampering, what could not run."""
    outcomes = report["outcomes"]
    totals = [o["total"] for o in outcomes]
    lines = [f"graded {report['students']} submission(s) of {report['assignment']} in "
             f"{report['seconds']:g} s with {report['workers']} worker(s); isolation: "
             f"{report['isolation']}"]
    if report.get("resumed"):
        lines.append(f"  resumed an interrupted run: {report['resumed']} student(s) recorded "
                     "by it were not graded again")
    if report["isolation"] != "namespaces":
        lines.append("  warning: graded with --trust-submissions and no Linux namespaces, so "
                     "student code could read files and use the network; grade untrusted work "
                     "in a container (see the README)")
    if totals:
        lines.append(f"  mean {sum(totals) / len(totals):.2f} / {report['max']:g}, "
                     f"{sum(t == report['max'] for t in totals)} full marks")
    for o in outcomes:
        if o["tampering"]:
            lines.append(f"  TAMPERING {o['student']}: " + "; ".join(o["tampering"]))
    for o in outcomes:
        if o["reasons"]:
            lines.append(f"  note {o['student']}: " + "; ".join(o["reasons"]))
    if report.get("missing"):
        lines.append(f"  nothing submitted (0 in the CSV): {', '.join(report['missing'])}")
    lines.append(f"  grades: {report['csv']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Worker entry: ``python -m course_grading.grader JOB.json`` writes ``<out>/result.json``."""
    job = json.loads(Path(argv[0]).read_text())
    result = grade_one(job)
    Path(job["out"]).mkdir(parents=True, exist_ok=True)
    (Path(job["out"]) / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
