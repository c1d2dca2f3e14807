"""Warm kernels: a process that has imported what a graded kernel needs, and forks a sandboxed
kernel for each notebook.

A kernel started from nothing pays an interpreter, IPython and, for every assignment, torch:
about 2 s of CPU per notebook, most of a short notebook's grading and a third of the test
suite; then its first optimizer imports ``torch._dynamo`` (1 s more) and its first plot
matplotlib. ``course grade`` (namespaces only, local workers) starts :func:`serve` on its first
batch and keeps it for its later ones (:func:`course_grading.kernel.sandbox.warm_server`;
:func:`~course_grading.kernel.sandbox.warm_kernels` gives one for a single batch); a kernel spec
whose command is
:data:`~course_grading.kernel.sandbox.CLIENT` asks it for a kernel. Per
request the server forks a child that

1. enters new user, mount, network and PID namespaces, as ``unshare --user --map-root-user
   --mount --net --pid --fork --mount-proc`` does for a cold kernel, and makes every mount
   private;
2. forks the kernel: PID 1 of the new PID namespace, it mounts its own ``/proc``, takes the
   client's standard streams and environment, closes every other file descriptor and goes on as
   a cold kernel does (:func:`course_grading.kernel.sandbox.become_kernel`: private and hidden
   folders, limits, the guard);
3. waits: when the kernel ends, it sends the client its exit status; when the client goes
   (the grader stopped the kernel), it kills the kernel and with it the PID namespace.

The server holds nothing of the grader's: it starts fresh, imports libraries only and reads no
notebook, test or secret (a kernel reads its guard's settings after the fork), and no kernel
changes it (each runs in a forked child). Its socket lies in a folder of the temporary folder,
which no kernel can see. Below ``sandbox.TORCH_FLOOR_MB`` of memory per
kernel it leaves torch out (its data would count against the kernel's limit).
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

_NEWNS, _NEWUSER, _NEWPID, _NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 16384, 1 << 18


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("the client went before its request was whole")
        data += more
    return json.loads(data), fds


def _namespaces() -> None:
    """New user (this user as root), mount, network and PID namespaces; mounts made private."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(_NEWUSER | _NEWNS | _NEWNET | _NEWPID), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                       ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "private mounts")


def _kernel(request: dict, fds: list[int]) -> None:
    """In the new PID namespace (its PID 1): become the kernel of ``request``. Never returns."""
    from course_grading.kernel.sandbox import (CONFIG_VARIABLE, _die_with_parent,
                                               become_kernel, close_inherited)

    code = 1
    try:
        _die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        libc = ctypes.CDLL(None, use_errno=True)
        _check(libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                          None), "mount /proc")
        os.environ.clear()
        os.environ.update(request["env"])
        close_inherited()
        code = become_kernel(request["connection_file"],
                             json.loads(os.environ[CONFIG_VARIABLE])) or 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    finally:
        os._exit(code)


def _stand_by(conn: socket.socket) -> None:
    """The forked child of one request: namespaces, the kernel, then wait on both ends."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from course_grading.kernel.sandbox import _die_with_parent

    _die_with_parent()   # a killed server takes its kernels with it
    request, fds = _receive(conn)
    _namespaces()
    pid = os.fork()
    if pid == 0:
        _kernel(request, fds)
    for fd in fds:
        os.close(fd)
    ended = os.pidfd_open(pid)
    while True:
        ready, _, _ = select.select([conn, ended], [], [])
        if ended in ready:
            _, status = os.waitpid(pid, 0)
            conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            return
        if not conn.recv(64):   # the client is gone: the grader stopped the kernel
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return


def serve(path: str, with_torch: bool) -> None:
    """Import, listen on ``path``, and fork a kernel per request until killed."""
    from course_grading.kernel.sandbox import _die_with_parent

    _die_with_parent()   # gone with the grader
    import IPython  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    # what every kernel imports as it starts, 0.1-0.2 s of CPU each: the debugger (debugpy;
    # its check of frozen modules would print a warning), the history's sqlite3, pdb
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import ipykernel.debugger  # noqa: F401
    import pdb  # noqa: F401
    import sqlite3  # noqa: F401

    if with_torch:
        import matplotlib.pyplot  # noqa: F401  (MPLBACKEND is Agg here as in every kernel)
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401  (a first optimizer imports it: a second per kernel)
    # every kernel's guard inherits this snapshot of the loaded modules (see guard.prepare)
    from course_grading.kernel import guard, sandbox
    guard.prepare(sandbox.trusted_paths(Path(os.devnull)))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the system reaps the children
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    partial = f"{path}.partial"
    server.bind(partial)
    os.chmod(partial, 0o600)
    server.listen(64)
    os.replace(partial, path)   # the path appears once the server listens
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            try:
                _stand_by(conn)
            finally:
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    serve(sys.argv[1], sys.argv[2] == "torch")
