"""The grading sandbox's set-up, without grading a class: what a machine without namespaces
refuses, and what the kernel launcher closes and covers."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from course_grading import cli
from course_grading.grade import batch, feedback, report
from course_grading.kernel import sandbox


def test_no_isolation_refuses_untrusted_work_before_writing(tmp_path, monkeypatch, capsys):
    """Checks that grading in "process" mode without --trust-submissions is refused with one
    line and exit status 2, before the gradebook or any file exists; and that the flag lets
    it through to grading."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inbox").mkdir()
    with pytest.raises(batch.Untrusted):
        batch.grade("bayes", tmp_path / "inbox", tmp_path, mode="process", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox"]
    monkeypatch.setattr(sandbox, "isolation", lambda: "process")
    monkeypatch.setattr(batch, "isolation", lambda: "process")
    assert cli.main(["grade", "bayes", str(tmp_path / "inbox")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-submissions" in err
    seen = []
    monkeypatch.setattr(batch, "grade", lambda *a, trust=False, **k: seen.append(trust) or {})
    monkeypatch.setattr(report, "summary", lambda report: "")
    assert cli.main(["grade", "bayes", str(tmp_path / "inbox"), "--trust-submissions"]) == 0
    assert seen == [True]


def test_launcher_closes_inherited_descriptors():
    """Checks that close_inherited leaves nothing above stderr open."""
    read, write = os.pipe()
    os.set_inheritable(write, True)
    pid = os.fork()
    if pid == 0:   # the child: close, then report what is left
        sandbox.close_inherited()
        left = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) > 2]
        # listdir's own descriptor may show; anything else is a leak
        os._exit(0 if len(left) <= 1 else 1)
    _, status = os.waitpid(pid, 0)
    os.close(read)
    os.close(write)
    assert os.waitstatus_to_exitcode(status) == 0



def test_graded_notebooks_are_inert():
    """Checks what the Formgrader and the feedback get of a student's notebook: an HTML
    output with an event handler, JavaScript and SVG become plain text, an image whose data
    breaks out of its tag is re-encoded, a script tag in markdown is shown as text while math
    and comparisons are kept, and an SVG attachment is dropped."""
    import base64

    import nbformat

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
    cells = [nbformat.v4.new_markdown_cell("<script>alert(1)</script> $a<b$, 3 < 4"),
             nbformat.v4.new_code_cell("x", outputs=[
                 nbformat.v4.new_output("display_data", data={
                     "text/html": "<img src=x onerror=alert(1)>", "text/plain": "plain"}),
                 nbformat.v4.new_output("display_data", data={"application/javascript": "1",
                                                              "image/svg+xml": "<svg/>"}),
                 nbformat.v4.new_output("display_data", data={"image/png": png + "' onerror='x"})])]
    cells[0]["attachments"] = {"a.svg": {"image/svg+xml": base64.b64encode(b"<svg/>").decode()}}
    notebook = feedback.inert(nbformat.v4.new_notebook(cells=cells))
    text = nbformat.writes(notebook)
    assert "onerror" not in text and "<script" not in text and "<svg" not in text
    assert notebook.cells[0].source == "&lt;script>alert(1)&lt;/script> $a<b$, 3 < 4"
    outputs = [o.data for o in notebook.cells[1].outputs]
    assert outputs[0] == {"text/plain": "plain"} and list(outputs[1]) == ["text/plain"]
    assert base64.b64decode(outputs[2]["image/png"]).startswith(b"\x89PNG")
    assert notebook.cells[0].get("attachments") == {}


@pytest.mark.parametrize("flag, value", [("--cell-seconds", "-1"), ("--notebook-seconds", "0"),
                                         ("--memory-mb", "0"), ("--workers", "0"),
                                         ("--workers", "-1"), ("--cell-seconds", "soon")])
def test_limits_a_grade_could_not_survive_are_refused(flag, value, tmp_path, capsys):
    """Checks that `course grade` refuses a limit or count under which no notebook could be
    graded (each would have zeroed a class), with exit status 2 and one error line naming the
    flag (argparse refuses it, before any grading code runs); and that Limits and grade()
    refuse them too."""
    (tmp_path / "inbox").mkdir()
    with pytest.raises(SystemExit) as stop:
        cli.main(["grade", "bayes", str(tmp_path / "inbox"), flag, value])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in error and value in error, error
    with pytest.raises(ValueError):
        sandbox.Limits(cell_seconds=-1)
    with pytest.raises(ValueError):
        sandbox.Limits(memory_mb=0)
    with pytest.raises(ValueError, match="workers"):
        batch.grade("bayes", tmp_path / "inbox", tmp_path, workers=0, progress=False)


WARM_PROBE = """import os, socket, sys
print('preloaded', 'torch' in sys.modules, 'pid', os.getpid(), 'processes',
      sorted(p for p in os.listdir('/proc') if p.isdigit()) == ['1'] or 'more')
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    print('network')
except OSError:
    print('no network')
print('found', [p for p in os.listdir('/tmp') if p == 'left-by-a-kernel'],
      'writable course', os.access({course!r}, os.W_OK))
open('/tmp/left-by-a-kernel', 'w').write('x')
"""


@pytest.mark.slow
@pytest.mark.skipif(sandbox.isolation() != "namespaces", reason="no Linux namespaces here")
def test_a_warm_kernel_is_as_isolated_as_a_cold_one(tmp_path):
    """Checks a kernel forked from the warm server (torch already imported) is PID 1 of its own
    PID namespace with no other process, has no network, an empty private /tmp, a read-only
    course; that two kernels in a row see none of each other's files; and that the server and
    its socket are gone after the batch."""
    from course_grading.check.run import kernel_folders, run_notebook
    from course_lib import paths

    cell = WARM_PROBE.format(course=str(paths.REPO / "course_lib"))
    printed = []
    with sandbox.warm_kernels(tmp_path, memory_mb=4096) as warm:
        assert warm is not None
        for i in range(2):
            (tmp_path / f"k{i}").mkdir()
            run = run_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]),
                               tmp_path / f"k{i}", mode="namespaces", warm=warm,
                               env={"COURSE_BUDGET": "quick", **kernel_folders()})
            printed.append("".join(o.get("text", "") for o in run.notebook.cells[0].outputs))
    for text in printed:
        assert "preloaded True pid 1 processes True" in text, text
        assert "no network" in text and "found [] writable course False" in text
    assert not (tmp_path / "warm.sock").exists()
    assert not os.path.exists("/tmp/left-by-a-kernel")


@pytest.mark.slow
@pytest.mark.skipif(sandbox.isolation() != "namespaces", reason="no Linux namespaces here")
def test_a_warm_kernel_whose_server_is_gone_starts_cold(tmp_path):
    """Checks that a kernel asked of a warm server that is not there (it died mid-batch) still
    runs the notebook, isolated, started from nothing (torch not preloaded)."""
    from course_grading.check.run import kernel_folders, run_notebook
    from course_lib import paths

    cell = WARM_PROBE.format(course=str(paths.REPO / "course_lib"))
    (tmp_path / "k").mkdir()
    run = run_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]),
                       tmp_path / "k", mode="namespaces", warm=str(tmp_path / "gone.sock"),
                       env={"COURSE_BUDGET": "quick", **kernel_folders()})
    text = "".join(o.get("text", "") for o in run.notebook.cells[0].outputs)
    assert "preloaded False pid 1 processes True" in text and "no network" in text, text


@pytest.mark.slow
def test_a_missing_data_set_is_the_machines_fault_and_nothing_is_graded(tmp_path, monkeypatch,
                                                                         capsys):
    """Checks that grading an assignment whose data set this machine lacks (an empty
    COURSE_DATA, offline) refuses before any kernel runs: no gradebook, no grades, no
    feedback (so no student is marked 0 or TAMPERING for the machine's fault), `course grade`
    exits 3 saying "not graded" and what to set, and `course check` exits 3 saying "not
    checked" instead of failing the student's answers. An assignment that needs no data set
    is not held up."""
    from course_grading import course
    from course_grading.check import machine

    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("COURSE_DATA", str(empty))
    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    (tmp_path / "inbox" / "ada").mkdir(parents=True)
    shutil.copy(course.REPO / course.CONFIG_FILE, root)
    shutil.copytree(course.REPO / "solutions" / "continual", root / "solutions" / "continual")
    with pytest.raises(batch.MachineNotReady, match="(?s)MNIST.*COURSE_DATA"):
        batch.grade("continual", tmp_path / "inbox", root, progress=False)
    assert sorted(p.name for p in root.iterdir()) == [course.CONFIG_FILE, "solutions"]
    monkeypatch.setattr(batch, "grade", lambda *a, **k: (_ for _ in ()).throw(
        batch.MachineNotReady("this machine cannot run continual.\nThe MNIST data set …")))
    assert cli.main(["grade", "continual", str(tmp_path / "inbox")]) == 3
    assert "not graded" in capsys.readouterr().err
    assert cli.main(["check", "continual"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("not checked") and "COURSE_DATA" in err
    assert machine.declared([course.REPO / "solutions" / "bayes" / "bayes.ipynb"]) == []
    assert machine.missing_data([course.REPO / "solutions" / "bayes" / "bayes.ipynb"]) is None


@pytest.mark.slow
def test_the_machine_check_trains_the_declared_models_where_the_kernels_read_them(tmp_path,
                                                                                  monkeypatch):
    """Checks that the check before grading trains the models the black_box source declares
    into the cache the kernels read (COURSE_CACHE_SHARED of a job's settings), none into the
    kernels' own cache, and that a kernel then finds θ there and trains nothing."""
    from course_grading import course
    from course_grading.check import machine
    from course_lib import finetuning

    assert finetuning.warm(["no_such_model"]) == 2
    source = course.REPO / "solutions" / "black_box" / "black_box.ipynb"
    assert machine.declared([source], "models") == ["quick_theta"]
    shared, own = tmp_path / "shared", tmp_path / "own"
    assert machine.missing_data([source], {"COURSE_CACHE_SHARED": str(shared),
                                           "COURSE_CACHE": str(own)}) is None
    assert len(list((shared / "models").glob("*.pt"))) == 1 and not (own / "models").exists()
    monkeypatch.setenv("COURSE_CACHE_SHARED", str(shared))
    monkeypatch.setenv("COURSE_CACHE", str(own))
    finetuning.quick_theta()   # what the assignment's setup asks for: found, not trained
    assert list((own / "models").glob("*.pt")) == []


def test_a_kept_warm_server_serves_later_batches_and_is_replaced_when_dead(monkeypatch):
    """Checks that the warm-kernel server a process keeps is the same for a second batch (and
    for another test of the run), that another environment gets a server of its own, and that a server that died is replaced by a
    new one in a new folder (the dead one's folder removed)."""
    import signal

    first = sandbox.warm_server(memory_mb=1024)
    assert first is not None and Path(first).exists() and sandbox.warm_server(1024) == first
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "another test (call)")   # where the caller is
    assert sandbox.warm_server(1024) == first
    monkeypatch.setenv("COURSE_TEST_ANOTHER_ENVIRONMENT", "1")
    other = sandbox.warm_server(1024)
    assert other not in (None, first)
    monkeypatch.delenv("COURSE_TEST_ANOTHER_ENVIRONMENT")
    server = next(s for s, path in sandbox._SERVERS.values() if str(path) == first)
    server.send_signal(signal.SIGKILL)
    server.wait()
    again = sandbox.warm_server(1024)
    assert again not in (None, first) and Path(again).exists()
    assert not Path(first).parent.exists()   # the dead server's folder, not only its socket
