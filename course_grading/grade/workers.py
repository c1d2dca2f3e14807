"""Local worker processes: each student graded by :func:`course_grading.grade.job.grade_one` in
a process of its own, forked from a server that imported the grader once."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import types
from pathlib import Path

import nbformat

from ..check import assemble
from ..check.score import not_run, scores_of
from ..kernel.sandbox import _die_with_parent
from .job import main


_CONTEXT = []

_START = threading.Lock()


def _forkserver():
    """Workers fork from a server that has imported the grader, and the modules it imports
    lazily, once (a fresh Python per student would spend a second or two on imports alone;
    nbgrader's own import took 1 s of each student's 2 s in a batch of the tiny assignment)."""
    if not _CONTEXT:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["course_grading.grade.job", "nbgrader.utils",
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


def worker(job: dict, timeout: float) -> dict:
    """Run :func:`grade_one` in a separate process; a crash or hang of the worker itself still
    gives a result (every test not run, with why). The worker runs only the grader's code (the
    student's runs in a kernel of its own), so a crashed worker is tried again, up to
    ``WORKER_ATTEMPTS`` times, and when it crashes every time the result also says
    ``not_graded`` (why): the grader's fault, for which the batch records no score. A timeout
    is not tried again and is graded as it stands."""
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
            return failed(job, why)   # the student's code ran out of time: graded as it is
    return {**failed(job, why), "not_graded": why}   # the grader crashed every time: its fault


def failed(job: dict, why: str) -> dict:
    """The result of a student whose grading could not finish: every test not run, with ``why``
    (the executed notebooks written under ``job["out"]``)."""
    result = {"student": job["student"], "notebooks": {}}
    for name, paths in job["notebooks"].items():
        executed = not_run(assemble.graded_notebook(
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
