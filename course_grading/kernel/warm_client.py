"""The command of a warm kernel's spec (``python -I -S warm_client.py CONNECTION_FILE``): asks the
warm server (:mod:`course_grading.kernel.warm`, its socket in ``COURSE_WARM_SOCKET``) for a
kernel with this process's environment and standard streams, and stands for it: it exits with
the kernel's exit status, and the kernel is killed when this process is. When the server does
not answer (it died mid-batch), it becomes a kernel started from nothing instead
(``sandbox.py``), so a fault of the grading machine costs time, not a student's points.
Standard library only.
"""
import ctypes
import json
import os
import signal
import socket
import sys


def main(argv: list[str]) -> int:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: gone with the grader
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(os.environ["COURSE_WARM_SOCKET"])
    except OSError:   # no server: the cold launcher, with the same environment
        launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox.py")
        os.execv(sys.executable, [sys.executable, launcher, argv[0]])
    request = json.dumps({"connection_file": argv[0], "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [request + b"\n"], [0, 1, 2])
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            return 1
        reply += chunk
    return int(reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
