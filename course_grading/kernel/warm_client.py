"""The command of a warm kernel's spec (``python -I -S warm_client.py CONNECTION_FILE``): asks the
warm server (:mod:`course_grading.kernel.warm`, its socket in ``COURSE_WARM_SOCKET``) for a
kernel with this process's environment and standard streams, and stands for it: it exits with
the kernel's exit status, and the kernel is killed when this process is. Standard library only.
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
    conn.connect(os.environ["COURSE_WARM_SOCKET"])
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
