"""``course grade`` on a Dask cluster: each submission one Dask task, on whatever worker is free.

``course grade ASSIGNMENT SUBMISSIONS --scheduler tcp://HOST:PORT`` sends the class to a running
Dask scheduler; ``--cluster local:N`` starts a local Dask cluster of N single-threaded worker
processes for the run. Either way a task is :func:`grade_on_worker`: the same
:func:`course_grading.grade.workers.worker` as local grading (the same sandbox, limits, tamper checks
and outputs), run in a scratch folder of the worker's own, with the executed notebooks and the
feedback pages sent back in the result. The instructor's process alone writes the gradebook and
the files, as results stream back (:func:`results`).

What a worker needs: the course's environment (this repository installed, as ``make setup``
does) and read access to the course directory and the submissions at the same paths as the
instructor's process — a shared file system, as on a Slurm or Kubernetes cluster with a shared
volume. Start workers with the Dask projects' own commands, e.g. ``dask scheduler`` on one
machine and ``dask worker tcp://HOST:8786 --nthreads 1`` on each of the others (on Slurm,
dask-jobqueue's ``SLURMCluster``; on Kubernetes, dask-kubernetes' ``KubeCluster``; both give an
address to pass as ``--scheduler``).

Faults: a task first checks that its worker's machine has the data sets the assignment
declares (with the kernels' ``COURSE_DATA``); when one is missing, that student is "not
graded", with the worker's message, and no score is written. When a worker dies, the scheduler
runs its tasks again on another worker (every student is still recorded once: the parent
records a result when its task returns, not before). A task that keeps killing its worker is
given up after Dask's ``distributed.scheduler.allowed-failures`` + 1 attempts (4 by default),
and that student is "not graded" too, with the reason: the student's code runs in a kernel of
its own, so the worker's death is the grader's fault, as for a local worker that crashed every
time. A killed instructor's process is resumed by running the same command again
(:class:`course_grading.grade.journal.Journal`).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

from ..check.machine import missing_data


def grade_on_worker(work, job: dict, timeout: float) -> dict:
    """On a Dask worker: grade one student's ``job`` with ``work`` (the grader's
    ``_worker(job, timeout)``) in a scratch folder of this worker's own, and return the result
    with each notebook's executed JSON and feedback HTML inline (the worker's files do not
    outlive the task, and the next task on the machine removes them if the worker is killed
    first)."""
    _allow_children()
    missing = missing_data([nb["source"] for nb in job["notebooks"].values()], job.get("env"))
    if missing:   # this machine cannot run the assignment: its fault, never the student's
        return {"student": job["student"], "notebooks": {},
                "not_ready": f"the Dask worker on {socket.gethostname()} cannot run it: {missing}"}
    scratch = scratch_folder("task")
    try:
        local = {**job, "workdir": str(scratch / "work"), "out": str(scratch / "out"),
                 "hide": [*job["hide"], str(scratch / "out")]}
        result = work(local, timeout)
        for nb in result["notebooks"].values():
            nb["executed_text"] = Path(nb.pop("executed")).read_text()
            if nb.get("feedback"):
                nb["feedback_text"] = Path(nb.pop("feedback")).read_text()
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scratch_folder(kind: str) -> Path:
    """A scratch folder named after its kind, this machine and this process, in the temporary
    folder (short paths: a kernel's sockets live there, and a socket's path has at most 107
    bytes); first removing the folders of that kind that processes on this machine left when
    they were killed (a worker mid-task, a grading command). ``kind``: ``"task"`` (a Dask
    worker's task) or ``"run"`` (one ``grade`` call)."""
    machine = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
    for folder in Path(tempfile.gettempdir()).glob(f"cg-{kind}-{machine}-*-*"):
        pid = folder.name.split("-")[3]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"cg-{kind}-{machine}-{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def _allow_children() -> None:
    """Dask's nanny starts each worker as a *daemonic* process, and Python forbids those to
    start processes of their own; grading does (a process per student, a kernel per notebook).
    Dask's setting ``distributed.worker.daemon: False`` avoids it for workers started with it;
    for any other worker the task lifts the flag itself. Nothing outlives the worker either way:
    each grading process asks the kernel to kill it when its parent dies
    (:func:`course_grading.kernel.sandbox._die_with_parent`), its kernel with it."""
    import multiprocessing

    process = multiprocessing.current_process()
    if process.daemon:
        process._config["daemon"] = False


def land(result: dict, out: Path) -> dict:
    """In the instructor's process: write a worker's inline notebooks and pages under ``out``
    and put their paths back in ``result`` (what :func:`course_grading.grade.record.record` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, nb in result["notebooks"].items():
        nb["executed"] = str(out / f"{name}.ipynb")
        Path(nb["executed"]).write_text(nb.pop("executed_text"))
        if "feedback_text" in nb:
            nb["feedback"] = str(out / f"{name}.html")
            Path(nb["feedback"]).write_text(nb.pop("feedback_text"))
    return result


def local_workers(cluster: str) -> int:
    """N of a ``"local:N"`` cluster; ValueError for anything else."""
    kind, _, n = cluster.partition(":")
    if kind != "local" or not n.isdigit() or int(n) < 1:
        raise ValueError(f"--cluster must be local:N with N ≥ 1 workers, not {cluster!r}")
    return int(n)


def reachable(scheduler: str, seconds: float = 10) -> None:
    """Raise ConnectionError unless a ``tcp://HOST:PORT`` scheduler accepts a connection within
    ``seconds`` (other schemes are left to Dask)."""
    scheme, _, address = scheduler.partition("://")
    host, _, port = address.rpartition(":")
    if scheme != "tcp":
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError) as error:
        raise ConnectionError(f"no Dask scheduler answers at {scheduler} ({error})") from None


@contextlib.contextmanager
def client(scheduler: str | None = None, cluster: str | None = None):
    """A Dask client: of the scheduler at ``scheduler`` (``tcp://HOST:PORT``), or of a local
    cluster that lives as long as the block (``cluster="local:N"``: N worker processes with one
    thread each — the grading itself runs in processes the task starts)."""
    from distributed import Client, LocalCluster

    if (scheduler is None) == (cluster is None):
        raise ValueError("give exactly one of a scheduler address and a cluster ('local:N')")
    if scheduler is not None:
        with Client(scheduler) as connected:
            yield connected
        return
    import dask

    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=local_workers(cluster), threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as connected:
        yield connected


def results(jobs: list[dict], timeout: float, connected, scratch: Path, work, failed):
    """Grade ``jobs`` on the cluster behind ``connected`` with ``work(job, timeout)``; yield each
    result as its task finishes, landed under ``scratch``. A student whose task the scheduler
    gave up on (it killed its worker too often), or whose worker's machine lacks a data set the
    assignment needs, gets ``failed(job, why)`` marked ``not_graded``: the student's code runs
    in a kernel of its own, so either is the grader's fault, and the batch records no score for
    it, as for a local worker that crashed every time. (The grader passes its own functions:
    this module imports nothing of it.)"""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    run = uuid.uuid4().hex[:8]   # a resumed run's tasks are new tasks, not an old run's
    futures = {connected.submit(grade_on_worker, work, job, timeout, pure=False,
                                key=f"grade-{job['student']}-{run}"): (i, job)
               for i, job in enumerate(jobs)}
    for future in as_completed(futures):
        i, job = futures[future]
        local = {**job, "workdir": str(scratch / str(i)), "out": str(scratch / "out" / str(i))}
        try:
            result = future.result()
        except KilledWorker:
            result = {"not_ready": "grading killed its worker process every time it ran (a "
                                   "crash, or memory beyond the worker's)"}
        if "not_ready" in result:   # the grader's fault, as for a local worker: no score
            yield {**failed(local, result["not_ready"]), "not_graded": result["not_ready"]}
        else:
            yield land(result, scratch / "out" / str(i))
        future.release()
