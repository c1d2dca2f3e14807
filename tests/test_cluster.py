"""``course grade`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes
on loopback, started here (no mocks), grade a class of the tiny assignment (honest students and
the attackers that strain the worker: loops, memory, processes, floods, random output). The
grading command is killed mid-batch and run again, and a worker is killed while the second run
goes on: the grades must be byte-identical to local grading of the same class. A task that
kills its worker every time is given up after Dask's bounded retries.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from course_grading import cli
from course_grading.grade import batch, cluster, roster, workers
from test_autograder import LIMITS, attackers, controls, course, write_class  # noqa: F401

pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
DASK = str(Path(sys.executable).parent / "dask")


# the attackers whose grading strains the process that runs it (time, memory, processes, output,
# files, unreadable or renamed notebooks, random output); tests/test_autograder.py grades all of
# them locally
STRAINING = ("infinite_loop", "ignores_interrupt", "os_exit", "memory_bomb", "background_process",
             "huge_file", "line_flood", "writes_gradebook", "reads_hidden", "invalid_json",
             "renamed", "nondeterministic", "full_solution")


@pytest.fixture(scope="module")
def inbox(course, tmp_path_factory):  # noqa: F811
    """A class of 6 honest students and the 13 straining attackers, and its local grades."""
    folder = tmp_path_factory.mktemp("inbox")
    sensitive = {"source": str(course / "solutions" / "tiny" / "tiny.ipynb"),
                 "gradebook": str(course / "gradebook.db"),
                 "neighbour": str(folder / "control_00" / "tiny.ipynb")}
    straining = {s: a for s, a in attackers(course, sensitive).items() if s in STRAINING}
    honest = dict(sorted(controls(course).items())[:6])
    assert len(straining) == len(STRAINING) and len(honest) == 6
    write_class(folder, {**straining, **honest})
    roster.add(course, [p.name for p in folder.iterdir() if p.is_dir()])   # the class
    report = batch.grade("tiny", folder, course, workers=2, limits=LIMITS, progress=False)
    return folder, Path(report["csv"]).read_text()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1, started once for this file
    (the test that kills a worker runs last): (address, worker processes, the workers'
    temporary folder)."""
    tmp_path = tmp_path_factory.mktemp("dask")
    file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}   # this file's functions
    scratch = Path(tempfile.mkdtemp(prefix="cgw-"))   # the workers' (short: kernels' sockets)
    started = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", str(file)],
                                stdout=log, stderr=log, start_new_session=True, env=env)]
    deadline = time.monotonic() + 60
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [subprocess.Popen([DASK, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                 "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
                                stdout=log, stderr=log, start_new_session=True,
                                env={**env, "TMPDIR": str(scratch)})
               for i in range(2)]
    started += workers
    from distributed import Client
    try:
        with Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            yield client.scheduler.address, workers, scratch
    finally:
        for process in started:
            with_group(process, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def with_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def test_command_line_rejects_a_bad_cluster(tmp_path, capsys):
    """checks `--cluster` must be local:N (N ≥ 1), and `--scheduler` must name a scheduler that
    answers: a one-line message and exit status 2, before anything is graded."""
    for bad in ("slurm:4", "local:0", "local"):
        assert cli.main(["grade", "transfer", str(tmp_path), "--cluster", bad]) == 2
        assert "local:N" in capsys.readouterr().err
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()   # a port nobody listens on
    start = time.monotonic()
    assert cli.main(["grade", "transfer", str(tmp_path), "--scheduler",
                     f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Dask scheduler answers" in err, err
    assert time.monotonic() - start < 10


def crash_or_echo(job: dict, timeout: float) -> dict:
    """Stands in for the grader on a worker (imported there from this file): a student named
    ``crash…`` kills the worker's process, and notes each attempt; any other is graded at once."""
    if job["student"].startswith("crash"):
        with open(job["attempts"], "a") as attempts:
            attempts.write("attempt\n")
        os._exit(1)
    return {"student": job["student"], "notebooks": {}}


@pytest.mark.slow
def test_a_task_that_kills_its_worker_is_not_graded_nor_retried_forever(course, dask_cluster,  # noqa: F811
                                                                        tmp_path):
    """checks Dask's bounded retries: a student whose grading kills its worker's process every
    time is tried ``allowed-failures + 1`` times, then marked not graded (the grader's fault:
    no score is recorded) with the reason; every other student's result comes back once, graded
    or, if Dask gave up on it beside the crashing one, not graded for the same reason."""
    import dask
    from distributed import Client

    address, *_ = dask_cluster
    tiny = {"tiny": {"release": str(course / "assignments" / "tiny" / "tiny.ipynb"),
                     "source": str(course / "solutions" / "tiny" / "tiny.ipynb")}}
    attempts = tmp_path / "attempts.txt"
    jobs = [{"student": name, "notebooks": tiny, "hide": [], "attempts": str(attempts)}
            for name in ("crash_me", "alice", "bob", "carol")]
    with Client(address) as connected:
        results = list(cluster.results(jobs, 60, connected, tmp_path / "scratch", crash_or_echo,
                                       workers.failed))
    assert sorted(r["student"] for r in results) == ["alice", "bob", "carol", "crash_me"]
    crashed = next(r for r in results if r["student"] == "crash_me")["notebooks"]["tiny"]
    assert "killed its worker process" in crashed["notes"][0]
    assert "killed its worker process" in next(r for r in results
                                               if r["student"] == "crash_me")["not_graded"]
    # a task queued on the same worker when it died is suspect to Dask too and can be given up
    # on as well: then it is not graded either (no score written), never scored 0 for it
    assert all("killed its worker process" in r.get("not_graded", "killed its worker process")
               for r in results)
    tries = dask.config.get("distributed.scheduler.allowed-failures") + 1
    assert attempts.read_text().count("attempt") == tries


@pytest.mark.slow
def test_a_killed_grading_command_resumes_on_a_cluster_that_loses_a_worker(  # noqa: F811
        course, inbox, dask_cluster, tmp_path):
    """checks `course grade --scheduler` on two real workers when things die mid-batch: the
    instructor's grading process is killed after a few students, and the same command run
    again grades only the students not yet recorded; while it runs, one worker is killed
    (with what it started). Every student is recorded once, none lost and none graded twice,
    with grades.csv byte-identical to local grading of the same class, and the scratch folder
    of the task the dead worker was running does not stay behind. (It runs last: the other
    tests share the cluster.)"""
    folder, local = inbox
    address, workers, scratch = dask_cluster
    recorded = course / "build" / "grading" / "tiny" / "recorded"
    command = ("import json, sys; from course_grading.grade import batch; "
               "from course_grading.kernel import sandbox; "
               "batch.grade('tiny', sys.argv[1], sys.argv[2], progress=False, scheduler=sys.argv[3],"
               " limits=sandbox.Limits(**json.loads(sys.argv[4])), force=True)")
    limits = json.dumps({k: getattr(LIMITS, k) for k in LIMITS.__dataclass_fields__})
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, "-c", command, str(folder), str(course), address,
                                  limits], stdout=log, stderr=log, start_new_session=True,
                                 env={**os.environ, "TMPDIR": str(tmp_path)})   # its scratch
        _wait_for_records(recorded, 4, lambda: first.poll() is None,
                          lambda: (tmp_path / "first.log").read_text())
        with_group(first, signal.SIGKILL)
        first.wait()
    before = len(list(recorded.glob("*.json")))
    report = {}
    run = threading.Thread(target=lambda: report.update(batch.grade(
        "tiny", folder, course, limits=LIMITS, progress=False, scheduler=address, force=True)))
    run.start()
    _wait_for_records(recorded, before + 2, run.is_alive, lambda: "the resumed run ended early")
    with_group(workers[0], signal.SIGKILL)   # each worker is busy with a student
    run.join(600)
    assert not run.is_alive() and workers[0].wait() != 0
    assert 4 <= before == report["resumed"] < report["students"] == len(STRAINING) + 6
    assert Path(report["csv"]).read_text() == local
    assert not recorded.exists()   # the batch is done: a later run grades everyone afresh
    assert not list(scratch.glob("cg-task-*"))   # the dead worker's scratch removed by the other


def _wait_for_records(recorded: Path, count: int, alive, why) -> None:
    """Poll until ``count`` students are recorded, while ``alive()`` (else fail with ``why()``)."""
    deadline = time.monotonic() + 300
    while len(list(recorded.glob("*.json"))) < count:
        assert alive(), why()
        assert time.monotonic() < deadline, f"fewer than {count} students recorded in 300 s"
        time.sleep(0.1)


def test_a_worker_without_the_data_grades_nobody(tmp_path):
    """checks that a Dask task first asks its own machine for the data sets the assignment
    declares, with the job's COURSE_DATA (and an empty decoded cache): when one is missing, no
    kernel runs and the task says why (the batch then lists the student as not graded, with no
    score); when all are there, the grading runs."""
    source = tmp_path / "needs.ipynb"
    source.write_text(json.dumps({"cells": [], "metadata": {"course": {"data": ["omniglot"]}},
                                  "nbformat": 4, "nbformat_minor": 5}))
    ran = []
    work = lambda job, timeout: ran.append(job) or {"student": job["student"], "notebooks": {}}
    job = {"student": "ada", "notebooks": {"needs": {"source": str(source)}}, "hide": [],
           "env": {"COURSE_DATA": str(tmp_path / "empty"), "COURSE_CACHE": str(tmp_path / "cache")}}
    result = cluster.grade_on_worker(work, job, 60)
    assert ran == [] and "cannot run it" in result["not_ready"] and "Omniglot" in result["not_ready"]
    source.write_text(json.dumps({"cells": [], "metadata": {"course": {"data": []}},
                                  "nbformat": 4, "nbformat_minor": 5}))
    assert "not_ready" not in cluster.grade_on_worker(work, job, 60) and len(ran) == 1
