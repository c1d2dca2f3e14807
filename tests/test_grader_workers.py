"""The grader's worker processes: a crashed worker is tried again, a slow one is not.

The worker is replaced by a stand-in (forked, so it sees this test's patches) that counts its
attempts in a file; no kernel is started.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time

import nbformat
import pytest

from course_grading.check.run import kernel_folders
from course_grading.grade import cluster, workers
from course_grading.grade.journal import Journal


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "_forkserver", lambda: multiprocessing.get_context("fork"))
    release = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), release)
    return {"student": "s", "workdir": str(tmp_path / "work"), "out": str(tmp_path / "out"),
            "notebooks": {"tiny": {"release": str(release), "source": str(release)}}}


def stand_in(behaviour: list[str], counter):
    """A worker that does behaviour[k] on its k-th attempt: crash, hang or succeed."""
    def child(job_file, log):
        os.setsid()  # as the real worker does: its own process group, which the grader kills
        attempt = len(counter.read_text()) if counter.exists() else 0
        counter.write_text("x" * (attempt + 1))
        if behaviour[attempt] == "crash":
            os._exit(255)
        if behaviour[attempt] == "hang":
            time.sleep(60)
        out = json.loads(open(job_file).read())["out"]
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump({"student": "s", "notebooks": {}, "ok": attempt}, f)
        os._exit(0)
    return child


def test_crashed_worker_is_tried_again(job, tmp_path, monkeypatch):
    """checks a worker that dies once is run a second time and its result is the one kept."""
    counter = tmp_path / "attempts"
    monkeypatch.setattr(workers, "_child", stand_in(["crash", "ok"], counter))
    result = workers.worker(job, timeout=30)
    assert result["ok"] == 1 and counter.read_text() == "xx"


def test_worker_that_keeps_crashing_leaves_the_student_not_graded(job, tmp_path, monkeypatch):
    """checks the attempts are bounded and the result says "not graded" with why (the
    grader's fault, so the batch records no score for it; the timed-out worker below is the
    student's and is graded)."""
    counter = tmp_path / "attempts"
    monkeypatch.setattr(workers, "_child", stand_in(["crash"] * 5, counter))
    result = workers.worker(job, timeout=30)
    assert counter.read_text() == "x" * workers.WORKER_ATTEMPTS
    assert result["not_graded"] == "the grader's worker failed (exit status 255)"


def test_a_student_not_graded_keeps_the_earlier_row_and_is_named(tmp_path, monkeypatch):
    """checks that a batch's report leaves a not-graded student's earlier grades.csv row as
    it was (not rewritten, not "nothing submitted"), lists the student in report.json, and
    that the summary names the student and why."""
    from course_grading.grade import record, report
    from course_grading.grade.record import Outcome

    seen = []
    monkeypatch.setattr(report, "missing", lambda root, a, graded: seen.append(graded) or [])
    points = {"add": 2.0}
    first = report.write_report(tmp_path, "tiny", [Outcome("ada", {"add": 2.0}, 2.0),
                                                  Outcome("bob", {"add": 1.0}, 1.0)],
                                points, "namespaces", 2, 1.0)
    before = open(first["csv"]).read().splitlines()
    again = report.write_report(tmp_path, "tiny", [Outcome("ada", {"add": 2.0}, 2.0)], points,
                                "namespaces", 2, 1.0, not_graded={"bob": "the grader's worker failed"})
    assert open(again["csv"]).read().splitlines() == before
    assert seen[-1] == {"ada", "bob"} and again["not_graded"] == {"bob": "the grader's worker failed"}
    assert "NOT GRADED bob: the grader's worker failed" in report.summary(again)
    assert record.NOTHING_SUBMITTED not in open(again["csv"]).read()


def test_timed_out_worker_is_not_tried_again(job, tmp_path, monkeypatch):
    """checks a worker past its time limit is stopped once, not re-run."""
    counter = tmp_path / "attempts"
    monkeypatch.setattr(workers, "_child", stand_in(["hang", "ok"], counter))
    result = workers.worker(job, timeout=1)
    assert counter.read_text() == "x"
    assert result["notebooks"]["tiny"]["notes"] == ["grading took longer than 1 s"]


@pytest.mark.slow
def test_graded_kernel_writes_only_its_scratch_folder(tmp_path):
    """checks that a kernel run as `course check` and `course grade` run it (read-only course
    in namespaces) can still save a figure and a cache entry, both inside its own folder."""
    from course_grading.check.run import run_notebook
    from course_grading.kernel.sandbox import Limits, isolation

    code = ("import matplotlib.pyplot as plt, torch\n"
            "from course_lib import paths, plots\n"
            "plots.finish(plt.figure(), 'check')\n"
            "torch.save(1, paths.cache_dir() / 'entry.pt')\n"
            "print(paths.build_dir(), paths.cache_dir())")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    run = run_notebook(notebook, tmp_path, Limits(), mode=isolation(),
                       env={"COURSE_BUDGET": "quick", **kernel_folders()})
    (output,) = run.notebook.cells[0].outputs
    assert output.get("output_type") == "stream", output
    assert output.text.split() == [str(tmp_path / "build"), str(tmp_path / ".cache" / "course")]


def test_journal_keeps_a_recorded_student_until_the_submission_changes(job, tmp_path):
    """checks the resume journal: a recorded student is found again by an identical job, not
    after their submission, the limits or the course's nbgrader configuration change, and not
    after the batch closes it."""
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    folder = tmp_path / "submitted" / "s"
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").write_text("{}")
    job = {**job, "folder": str(folder), "limits": {"cell_seconds": 4}, "mode": "process",
           "env": {}}
    journal = Journal(tmp_path, "tiny")
    assert journal.recorded(job) is None
    journal.add(job, {"student": "s", "notebooks": {}})
    assert Journal(tmp_path, "tiny").recorded(job) == {"student": "s", "notebooks": {}}
    assert journal.recorded({**job, "limits": {"cell_seconds": 5}}) is None
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.X.y = 1\n")
    assert Journal(tmp_path, "tiny").recorded(job) is None
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert Journal(tmp_path, "tiny").recorded(job) is not None
    (folder / "tiny.ipynb").write_text('{"changed": 1}')
    assert journal.recorded(job) is None
    journal.close()
    assert not journal.folder.exists()


def test_scratch_folder_removes_what_killed_processes_left(tmp_path, monkeypatch):
    """checks that a new scratch folder of a kind first removes the folders of that kind whose
    process is dead, keeping a live process's, another kind's and another machine's."""
    import subprocess
    import sys


    monkeypatch.setattr(cluster.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    machine = cluster.scratch_folder("run").name.split("-")[2]
    left = tmp_path / f"cg-run-{machine}-{dead.pid}-abc"
    kept = [tmp_path / f"cg-run-{machine}-{os.getpid()}-def",    # a live process's
            tmp_path / f"cg-task-{machine}-{dead.pid}-ghi",      # another kind
            tmp_path / f"cg-run-ffffff-{dead.pid}-jkl"]          # another machine's
    for folder in [left, *kept]:
        (folder / "work").mkdir(parents=True)
    new = cluster.scratch_folder("run")
    assert not left.exists() and all(folder.is_dir() for folder in kept)
    assert new.parent == tmp_path and new.name.startswith(f"cg-run-{machine}-{os.getpid()}-")


def test_the_gradebook_is_backed_up_before_a_batch_writes(tmp_path):
    """checks that backup() copies gradebook.db (a hand grade in it survives in the copy),
    keeps the newest BACKUPS_KEPT copies, and does nothing where no gradebook exists yet."""
    import sqlite3

    from course_grading.grade import record

    assert record.backup(tmp_path, "tiny") is None
    db = sqlite3.connect(tmp_path / "gradebook.db")
    db.execute("create table grade (student text, manual_score real)")
    db.execute("insert into grade values ('ada', 3.5)")
    db.commit()
    db.close()
    copies = [record.backup(tmp_path, "tiny") for _ in range(record.BACKUPS_KEPT + 2)]
    kept = sorted((tmp_path / "build" / "grading" / "tiny" / "backups").glob("gradebook-*.db"))
    assert kept == sorted(copies[-record.BACKUPS_KEPT:])
    copy = sqlite3.connect(kept[-1])
    assert copy.execute("select * from grade").fetchall() == [("ada", 3.5)]
    copy.close()
