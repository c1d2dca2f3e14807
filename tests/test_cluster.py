"""``course grade`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes
on loopback, started here (no mocks), grade the tiny assignment's class of attackers and honest
students; the grades must be byte-identical to local grading, also when a worker is killed in the
middle of the batch.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from course_grading import cli, grader
from test_autograder import LIMITS, attackers, controls, course, write_class  # noqa: F401

pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")
DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture(scope="module")
def inbox(course, tmp_path_factory):  # noqa: F811
    """A class of 10 honest students and the attackers (20 and more), and its local grades."""
    folder = tmp_path_factory.mktemp("inbox")
    sensitive = {"source": str(course / "solutions" / "tiny" / "tiny.ipynb"),
                 "gradebook": str(course / "gradebook.db"),
                 "neighbour": str(folder / "control_00" / "tiny.ipynb")}
    write_class(folder, {**attackers(course, sensitive), **controls(course)})
    report = grader.grade("tiny", folder, course, workers=2, limits=LIMITS, progress=False)
    return folder, Path(report["csv"]).read_text()


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded workers on 127.0.0.1: (address, worker processes)."""
    file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    started = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file", str(file)],
                                stdout=log, stderr=log, start_new_session=True)]
    deadline = time.monotonic() + 60
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [subprocess.Popen([DASK, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                 "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
                                stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "TMPDIR": str(tmp_path)})   # a killed worker's
               for i in range(2)]                                              # scratch stays here
    started += workers
    from distributed import Client
    try:
        with Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            yield client.scheduler.address, workers
    finally:
        for process in started:
            with_group(process, signal.SIGKILL)
            process.wait()
        log.close()


def with_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_grades_on_a_dask_cluster_equal_local_grading(course, inbox, dask_cluster):  # noqa: F811
    """checks `course grade --scheduler` on two real workers records every student once, with
    grades.csv byte-identical to local grading of the same class."""
    folder, local = inbox
    address, _ = dask_cluster
    report = grader.grade("tiny", folder, course, limits=LIMITS, progress=False, scheduler=address)
    assert report["students"] >= 20
    assert Path(report["csv"]).read_text() == local


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(course, inbox, dask_cluster):  # noqa: F811
    """checks that killing one of the two workers (and what it started) while the batch runs
    loses no student and grades none twice: the CSV is byte-identical to local grading."""
    folder, local = inbox
    address, workers = dask_cluster
    report = {}
    run = threading.Thread(target=lambda: report.update(grader.grade(
        "tiny", folder, course, limits=LIMITS, progress=False, scheduler=address)))
    run.start()
    time.sleep(8)                       # a few students in: each worker is busy with one
    assert run.is_alive()
    with_group(workers[0], signal.SIGKILL)
    run.join(600)
    assert not run.is_alive() and workers[0].wait() != 0
    assert Path(report["csv"]).read_text() == local


def test_command_line_rejects_a_bad_cluster(tmp_path, capsys):
    """checks `--cluster` must be local:N (N ≥ 1): a one-line message and exit status 2, before
    anything is graded."""
    for bad in ("slurm:4", "local:0", "local"):
        assert cli.main(["grade", "transfer", str(tmp_path), "--cluster", bad]) == 2
        assert "local:N" in capsys.readouterr().err
