"""Execute a notebook's cells in the grading sandbox, whatever the code in them does.

:func:`run_notebook` starts a :mod:`course_grading.kernel.sandbox` kernel in a scratch folder and runs
the code cells one by one with nbclient, as ``nbgrader autograde`` does, but it never gives up
on the notebook half-way without saying why:

- a cell that runs past ``Limits.cell_seconds`` is interrupted and gets a ``CellTimeoutError``
  output; if the kernel then does not answer within ``Limits.probe_seconds`` (code that
  ignores interrupts), it is stopped;
- once the kernel has died (``os._exit``, a crash, killed for memory) or was stopped, or the
  notebook has run for ``Limits.notebook_seconds``, every later code cell gets an error
  output ``NotRun`` with the reason, so its tests score 0;
- what one cell prints is cut at ``Limits.output_kb`` here too, so the kernel cannot flood
  the grader.

Test cells (nbgrader's ``grade`` cells) are judged by the kernel's execute reply as well as
by their outputs: a reply that says ``error`` fails the cell even when nothing was displayed
(a silenced traceback). Every reply must carry :mod:`course_grading.kernel.guard`'s signature; what
the guard reports, and any reply it did not sign, end up in ``Run.integrity``.

The result is the executed notebook, a list of readable events and the integrity reports.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbclient.output_widget import OutputWidget

from course_lib.paths import cache_dir

from ..kernel import guard
from ..kernel.sandbox import KERNEL_NAME, Limits, write_kernel_spec
from .assemble import encodable
from .cells import grade_id, has_hidden_tests, is_given, is_test, part_of


TIMEOUT = "CellTimeoutError"

NOT_RUN = "NotRun"

TAMPERING = "Tampering"


@dataclass
class Run:
    """An executed notebook and what happened while it ran.

    ``integrity``: ``{cell index: [event]}`` (:func:`course_grading.kernel.guard.event`: what the
    guard saw, or why the reply is not trusted), only for cells with something to report.
    """
    notebook: nbformat.NotebookNode
    events: list[str] = field(default_factory=list)
    seconds: float = 0.0
    integrity: dict[int, list[dict]] = field(default_factory=dict)


def kernel_folders() -> dict[str, str]:
    """Where a graded kernel writes: its own cache and build folder in its HOME (the scratch
    folder), since the sandbox makes the repository read-only; it reads the instructor's warmed
    cache (see course_lib.paths)."""
    return {"COURSE_CACHE": "~/.cache/course", "COURSE_CACHE_SHARED": str(cache_dir()),
            "COURSE_BUILD": "~/build"}


def guard_settings(notebook: nbformat.NotebookNode, own_work: dict | None = None) -> dict:
    """What the kernel's guard needs: a fresh secret, the digests of the test cells (and the
    part each tests) and of the read-only cells, and the course functions each part asks the
    student to write (``own_work``, from the assignment's ``own_work.toml``)."""
    tests = [c for c in notebook.cells if is_test(c)]
    parts = {guard.digest(c.source): part_of(grade_id(c) or "") for c in tests}
    return {"secret": secrets.token_hex(16), "tests": sorted(parts),
            "hidden": sorted({guard.digest(c.source) for c in tests if has_hidden_tests(c)}),
            "given": sorted({guard.digest(c.source) for c in notebook.cells if is_given(c)}),
            "parts": parts, "own_work": {p: list(n) for p, n in (own_work or {}).items()}}


def judge(cell, reply: dict | None, secret: str) -> list[dict]:
    """Check one executed cell's reply; add an error output where the reply says the cell
    failed but nothing shows it. Returns the integrity report for the cell."""
    if reply is None or (reply.get("ename") == TIMEOUT and guard.SIGNED not in reply):
        return []   # no reply came: nbclient stood in for it after interrupting the cell
    signed = reply.get(guard.SIGNED)
    if not isinstance(signed, dict) or not hmac.compare_digest(
            str(signed.get("signature", "")), guard.signature(
                secret, guard.digest(cell.source), reply.get("status", ""),
                signed.get("events", []))):
        cell.outputs.append(error_output(TAMPERING, "the kernel's reply to this cell was not "
                                                    "the grader's (the kernel was tampered with)"))
        return [guard.event(guard.TAMPERING,
                            "the kernel's reply was not signed by the grader's guard")]
    if is_test(cell) and reply.get("status") != "ok" and \
            not any(o.output_type == "error" for o in cell.outputs):
        cell.outputs.append(error_output(reply.get("ename") or "Error",
                                         str(reply.get("evalue", ""))[:500]))
    return [e for e in signed.get("events", []) if isinstance(e, dict)]


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"{ename}: {evalue}"])


class _Unechoed(OutputWidget):
    """nbclient's stand-in for a front end's Output widget, without the echo to the kernel.

    For every output an Output widget captures (``widgets.interact`` draws into one), nbclient
    sends the widget's new state to the kernel on the shell socket — while the same client
    waits on that socket for the cell's reply. On an asyncio zmq socket that send can swallow
    the wake-up of the reply, and the cell then sits until its timeout although the kernel is
    idle (seen in a ``make course``: notebook 08 stuck after its ``interact`` cell). With no
    front end, nothing needs the echo: the outputs are still recorded in the notebook.
    """

    def sync_state(self) -> None:
        pass


class HeadlessClient(NotebookClient):
    """nbclient for running notebooks with no front end (the grader, ``make course``): its
    Output widgets do not echo their state to the kernel (see :class:`_Unechoed`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.widget_registry = {"@jupyter-widgets/output": {"OutputModel": _Unechoed}}


class _Client(HeadlessClient):
    """The grader's client: a cap on what one cell's outputs may hold."""

    def __init__(self, *args, output_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_bytes, self.used, self.replies = output_bytes, {}, {}

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg["content"], default=str))
        used = self.used.get(cell_index, 0)
        self.used[cell_index] = used + size
        if used + size <= self.output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.output_bytes:
            outs.append(nbformat.v4.new_output(
                "stream", name="stdout",
                text=f"\n[output past {self.output_bytes // 1024} kB cut by the grader]\n"))
        return None


def _responsive(client: NotebookClient, seconds: float) -> bool:
    """Whether the kernel answers an empty request within ``seconds``."""
    msg_id = client.kc.execute("", silent=True, store_history=False)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            reply = run_sync(client.kc.shell_channel.get_msg)(timeout=left)
        except Empty:
            return False
        if reply["parent_header"].get("msg_id") == msg_id:
            return True
    return False


def _shut_down(client: NotebookClient, km: AsyncKernelManager) -> None:
    """Stop the client's channels and the kernel (nbclient leaves a kernel it was given)."""
    try:
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # already gone
        pass


def _kill_leftovers(marker: str) -> int:
    """SIGKILL every process whose environment carries ``marker`` (Linux /proc; used when
    there is no PID namespace to end them). Returns how many were killed."""
    killed = 0
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                os.kill(int(environ.parent.name), signal.SIGKILL)
                killed += 1
        except (OSError, ValueError):
            continue
    return killed


def run_notebook(notebook: nbformat.NotebookNode, workdir: Path, limits: Limits = Limits(),
                 hide=(), mode: str = "process", env: dict | None = None,
                 own_work: dict | None = None, warm: str | None = None) -> Run:
    """Run every code cell of ``notebook`` (a copy) in a sandbox kernel working in ``workdir``.

    Args:
        workdir: a fresh, short path (Unix socket names must stay under 108 characters);
            the kernel's working folder and HOME.
        limits, hide, mode, env: see :func:`course_grading.kernel.sandbox.write_kernel_spec`.
        own_work: ``{part: course functions}`` trip-wired while that part's tests run.
        warm: a warm server's socket (:mod:`course_grading.kernel.warm`): the kernel is forked
            from a process that has imported its libraries (namespaces only).
    """
    nb = nbformat.from_dict(json.loads(json.dumps(notebook)))
    workdir = Path(workdir)
    marker = f"COURSE_SANDBOX_ID={uuid.uuid4().hex}"
    settings = guard_settings(nb, own_work)
    kernels = write_kernel_spec(workdir / ".jupyter", workdir, limits, hide, mode,
                                {**(env or {}), "COURSE_SANDBOX_ID": marker.split("=")[1]},
                                settings, warm)
    spec_file = kernels / "kernels" / KERNEL_NAME / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec_file.write_text(json.dumps({**spec, "interrupt_mode": "message"}, indent=1))
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(workdir / "k"),
                            connection_file=str(workdir / "k.json"),
                            kernel_spec_manager=KernelSpecManager(
                                kernel_dirs=[str(kernels / "kernels")]))
    client = _Client(nb, km=km, timeout=int(limits.cell_seconds), interrupt_on_timeout=True,
                     allow_errors=True, startup_timeout=120, record_timing=False,
                     error_on_timeout={"ename": TIMEOUT, "evalue": "", "traceback": []},
                     resources={"metadata": {"path": str(workdir)}},
                     output_bytes=limits.output_kb * 1024)
    client.on_cell_executed = lambda cell, cell_index, execute_reply: client.replies.update(
        {cell_index: execute_reply["content"]})
    run, start = Run(nb), time.monotonic()
    stopped, finished = None, set()

    def not_run(cell, why):
        cell.outputs = [error_output(NOT_RUN, why)]
        cell.execution_count = None

    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = limits.notebook_seconds - (time.monotonic() - start)
                if stopped is None and left < 1:
                    stopped = f"the notebook ran past its {limits.notebook_seconds:g} s limit"
                    run.events.append(stopped)
                if stopped:
                    not_run(cell, stopped)
                    continue
                client.timeout = max(1, int(min(limits.cell_seconds, left)))
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    stopped = f"the kernel died while running cell {index}"
                    run.events.append(stopped)
                    not_run(cell, stopped)
                    continue
                finished.add(index)
                report = judge(cell, client.replies.get(index), settings["secret"])
                if report:
                    run.integrity[index] = report
                if client.replies.get(index, {}).get("ename") == TIMEOUT:
                    cell.outputs.append(error_output(
                        TIMEOUT, f"cell {index} ran past {client.timeout} s and was interrupted"))
                    run.events.append(cell.outputs[-1].evalue)
                    if not _responsive(client, limits.probe_seconds):
                        stopped = (f"cell {index} did not stop when interrupted, so the kernel "
                                   "was stopped")
                        run.events.append(stopped)
                        run_sync(km.shutdown_kernel)(now=True)
    except Exception as error:  # the kernel could not start, or the client failed
        run.events.append(f"the kernel failed: {type(error).__name__}: {error}")
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and index not in finished:
                not_run(cell, run.events[-1])
    finally:
        _shut_down(client, km)
        (workdir.parent / f".{workdir.name}.guard.json").unlink(missing_ok=True)
        if mode != "namespaces":
            killed = _kill_leftovers(marker)
            if killed:
                run.events.append(f"ended {killed} process(es) left running by the notebook")
    run.seconds = time.monotonic() - start
    for cell in nb.cells:   # a kernel can print a lone surrogate, which no file can hold
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(encodable(o)) for o in cell.outputs]
    return run
