"""A Jupyter kernel for untrusted code: resource limits, and isolation where Linux allows it.

Autograding runs student code. :func:`write_kernel_spec` writes a kernelspec whose command is
``python …/course_grading/sandbox.py CONNECTION_FILE``; that launcher

1. where Linux namespaces are available (:func:`isolation` is ``"namespaces"``), re-starts
   itself under ``unshare`` with its own user, mount, network and PID namespaces:

   - no network (the kernel talks to the grader over Unix sockets, not TCP);
   - the course repository (``course_lib`` included), the Python installation and the data
     and shared cache folders are read-only (:func:`read_only_paths`), so a submission cannot
     change what the next student is graded with;
   - ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are private, empty tmpfs folders
     (:data:`PRIVATE`): no Unix socket of the grader, its forkserver, Dask or another kernel,
     and no file another student's kernel left, is in any path the kernel can see (a Unix
     socket needs no network, so the network namespace alone would not stop a connection);
     its own working folder and the read-only folders that lie under them are mounted back;
   - the paths to hide (gradebook, source notebooks with hidden tests, other students'
     folders, the submissions, ``.git``) are covered by empty folders, and its own working
     folder is mounted back on top;
   - no file descriptor of the grader is inherited (all above 2 are closed first);
   - every process the kernel starts lives in its PID namespace, so all of them end when the
     kernel ends (no background process survives grading);

2. sets the :class:`Limits` (data memory, size of any file written, no core dumps), one
   thread for OpenMP and BLAS, ``HOME`` and the working folder inside the student's scratch
   folder, and caps what the kernel prints;
3. installs :mod:`course_grading.kernel.guard` (an audit hook and a watch on the kernel's state
   around every test cell), reading its secret from a file that the kernel can no longer
   see afterwards;
4. becomes an ordinary IPython kernel.

``course grade`` forks its kernels from a warm process instead (:mod:`course_grading.kernel.warm`):
the same namespaces, entered with ``unshare(2)`` in the forked child, then the same steps 1–4
(:func:`become_kernel`).

Without namespaces (macOS, containers that forbid them) only step 2 applies: ``course grade``
then refuses submissions it does not trust unless told ``--trust-submissions``, and its summary
says so; a large course runs the grader inside a container that allows them (see the README).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

CONFIG_VARIABLE = "COURSE_SANDBOX"
KERNEL_NAME = "course-sandbox"
LAUNCHER = str(Path(__file__).resolve())   # run as a script: the kernel starts without torch
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")   # each kernel gets empty ones of its own
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
           "--kill-child", "--mount-proc"]

SOCKET_VARIABLE = "COURSE_WARM_SOCKET"
SERVER = str(Path(__file__).with_name("warm.py").resolve())
CLIENT = str(Path(__file__).with_name("warm_client.py").resolve())
TORCH_FLOOR_MB = 2048   # torch, torch._dynamo and matplotlib (the warm preload) hold some 890 MB of data
# what every kernel's environment sets, and the warm server's (read at start-up and import);
# COURSE_SEED is 0 whatever the grader's shell says: a grade never depends on a reader's seeds
ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
               "COURSE_SEED": "0"}


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded.

    Attributes:
        cell_seconds: wall time of one cell before it is interrupted.
        notebook_seconds: wall time of the whole notebook; cells not started by then score 0.
        memory_mb: the kernel's data memory (heap and private mappings, ``RLIMIT_DATA``);
            an allocation past it raises MemoryError.
        file_mb: size of any one file the kernel writes.
        output_kb: printed output kept per cell (the rest is cut, with a note).
        probe_seconds: after a timeout, how long an interrupted kernel has to answer again.
    """
    cell_seconds: float = 120
    notebook_seconds: float = 900
    memory_mb: int = 6144
    file_mb: int = 20
    output_kb: int = 256
    probe_seconds: float = 10

    def __post_init__(self):
        """Refuse a limit no notebook could be graded under (it would zero every test)."""
        for name in ("cell_seconds", "notebook_seconds", "probe_seconds", "file_mb", "output_kb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, not {getattr(self, name)!r}")
        if not self.memory_mb >= MEMORY_FLOOR_MB:
            raise ValueError(f"memory_mb must be at least {MEMORY_FLOOR_MB} (the interpreter "
                             f"and the kernel need it), not {self.memory_mb!r}")


MEMORY_FLOOR_MB = 256


def isolation() -> str:
    """``"namespaces"`` when ``unshare`` can make user, mount, network and PID namespaces here,
    else ``"process"`` (limits only)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "process"
    try:
        done = subprocess.run(UNSHARE + ["true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "process"
    return "namespaces" if done.returncode == 0 else "process"


def write_kernel_spec(folder: Path, workdir: Path, limits: Limits, hide=(), mode: str = "process",
                      env: dict | None = None, guard: dict | None = None,
                      warm: str | None = None) -> Path:
    """Write ``folder/kernels/course-sandbox/kernel.json``; return ``folder`` (a JUPYTER_PATH entry).

    Args:
        workdir: the kernel's working folder and HOME (the only scratch folder it can see).
        limits: the :class:`Limits`. hide: paths the kernel must not see (namespaces only).
        mode: ``"namespaces"`` or ``"process"`` (see :func:`isolation`).
        env: extra environment variables for the kernel (e.g. ``COURSE_BUDGET``).
        guard: :mod:`course_grading.kernel.guard`'s settings (``secret``, ``tests``, ``hidden``);
            written next to ``workdir``, read and deleted by the launcher.
        warm: the socket of a :mod:`course_grading.kernel.warm` server (namespaces only): the
            kernel is forked from its process, which has imported the libraries already.
    """
    guard_file = Path(workdir).parent / f".{Path(workdir).name}.guard.json"
    guard_file.write_text(json.dumps({"secret": "", "tests": [], "hidden": [], **(guard or {})}))
    guard_file.chmod(0o600)
    config = {"workdir": str(workdir), "hide": [str(p) for p in hide], "mode": mode,
              "limits": asdict(limits), "guard_file": str(guard_file)}
    argv = [sys.executable, LAUNCHER, "{connection_file}"]
    if warm and mode == "namespaces":
        argv = [sys.executable, "-I", "-S", CLIENT, "{connection_file}"]
        env = {**(env or {}), SOCKET_VARIABLE: warm}
    spec = {"argv": argv,
            "display_name": "Python 3 (grading sandbox)", "language": "python",
            "env": {CONFIG_VARIABLE: json.dumps(config), **ENVIRONMENT, "HOME": str(workdir),
                    **(env or {})}}
    path = Path(folder) / "kernels" / KERNEL_NAME
    path.mkdir(parents=True, exist_ok=True)
    (path / "kernel.json").write_text(json.dumps(spec, indent=1))
    return Path(folder)


# what says where the caller is, not how a server imports (each kernel gets its own environment
# from its request): pytest names the running test and phase here, and a server per test and
# phase cost 2-3 s of CPU each (19 servers in one `make test`)
_TRANSIENT = ("PYTEST_CURRENT_TEST",)


def _server_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _TRANSIENT}


def _start_server(path: Path, memory_mb: int, seconds: float) -> tuple[subprocess.Popen, bool]:
    """A warm-kernel server listening on ``path``, and whether it came up within ``seconds``."""
    server = subprocess.Popen(
        [sys.executable, SERVER, str(path), "torch" if memory_mb >= TORCH_FLOOR_MB else "-"],
        env={**_server_environment(), **ENVIRONMENT}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds
    while not path.exists() and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, path.exists() and server.poll() is None


def _stop_server(server: subprocess.Popen, path: Path) -> None:
    server.kill()
    server.wait()
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def warm_kernels(folder: Path, memory_mb: int, seconds: float = 60):
    """A warm-kernel server (:mod:`course_grading.kernel.warm`, a process of its own) for one
    batch, its socket in ``folder``: yields the socket's path, or None when the server did not
    come up within ``seconds`` (the batch then starts its kernels from nothing)."""
    path = Path(folder) / "warm.sock"
    server, up = _start_server(path, memory_mb, seconds)
    try:
        yield str(path) if up else None
    finally:
        _stop_server(server, path)


_SERVERS: dict[tuple, tuple[subprocess.Popen, Path]] = {}
_SERVERS_LOCK = threading.Lock()
# the thread that starts the kept servers lives as long as the process: a server dies with the
# thread that started it (PR_SET_PDEATHSIG), not with a batch's thread
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warm-kernel-servers")


def warm_server(memory_mb: int, seconds: float = 60) -> str | None:
    """The socket of a warm-kernel server kept for this process's later batches: started on
    first use (it imports torch: 2-3 s of CPU, which a test run that grades dozens of batches
    would pay for each) and again when it has died; one per preload (torch or not) and
    environment; all are stopped when the process exits. None when it did not come up within
    ``seconds``. Like a batch's own, its socket lies in a folder of the temporary folder, which
    no kernel sees (its ``/tmp`` is private), and it holds nothing of the grader's."""
    key = (memory_mb >= TORCH_FLOOR_MB, tuple(sorted(_server_environment().items())))
    with _SERVERS_LOCK:
        server, path = _SERVERS.get(key, (None, None))
        if server is not None and server.poll() is None and path.exists():
            return str(path)
        if server is not None:   # it died: stop it for good and remove its folder
            _stop_server(server, path)
            shutil.rmtree(path.parent, ignore_errors=True)
        _remove_stale_folders()
        path = Path(tempfile.mkdtemp(prefix=f"{_WARM_PREFIX}{os.getpid()}-")) / "warm.sock"
        server, up = _STARTER.submit(_start_server, path, memory_mb, seconds).result()
        _SERVERS[key] = (server, path)
        return str(path) if up else None


_WARM_PREFIX = "cg-warm-"


def _remove_stale_folders() -> None:
    """The kept servers' folders that processes killed before their exit handlers ran left."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_WARM_PREFIX}*-*"):
        pid = folder.name[len(_WARM_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


@atexit.register
def _stop_servers() -> None:
    for server, path in _SERVERS.values():
        _stop_server(server, path)
        shutil.rmtree(path.parent, ignore_errors=True)
    _SERVERS.clear()


# ---------------------------------------------------------------------------- inside the kernel
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 32, 4096, 16384


def _mount(source: str, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                  flags, data.encode() if data else None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def hide_paths(hide, keep: Path) -> None:
    """Cover every path in ``hide`` (an empty tmpfs for a folder, /dev/null for a file), then
    mount ``keep`` back if it was covered. Needs a private mount namespace."""
    keep_fd = os.open(keep, os.O_PATH | os.O_DIRECTORY)
    for path in map(Path, hide):
        if path.is_dir():
            _mount("tmpfs", str(path), "tmpfs", 0)
        elif path.exists():
            _mount("/dev/null", str(path), None, _MS_BIND)
    if not (keep / ".").exists() or not os.path.samefile(f"/proc/self/fd/{keep_fd}", keep):
        keep.mkdir(parents=True, exist_ok=True)
        _mount(f"/proc/self/fd/{keep_fd}", str(keep), None, _MS_BIND | _MS_REC)
    os.close(keep_fd)


def private_folders(keep, size_mb: int) -> None:
    """Mount an empty tmpfs on each of :data:`PRIVATE` (at most ``size_mb`` each), then bind
    every folder of ``keep`` that lay under one of them back at its own path (the kernel's
    working folder, a read-only folder). Needs a private mount namespace."""
    keep = [Path(p) for p in keep]
    inside = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in keep
              if p.is_dir() and any(p.resolve().is_relative_to(d) for d in PRIVATE)]
    for folder in PRIVATE:
        if Path(folder).is_dir() and not Path(folder).is_symlink():
            _mount("tmpfs", folder, "tmpfs", 0, f"size={size_mb}m,mode=1777")
    for path, fd in inside:
        path.resolve().mkdir(parents=True, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", str(path.resolve()), None, _MS_BIND | _MS_REC)
        os.close(fd)


def close_inherited() -> None:
    """Close every file descriptor above stderr (nothing of the grader's reaches the kernel)."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def library_paths(workdir: Path) -> list[Path]:
    """The folders on the import path when the kernel starts (the Python installation, the
    installed packages wherever they live: a user site, a ``.pth`` file, an editable install),
    except any that holds the working folder, where the student's own files are."""
    found = [Path(p).resolve() for p in sys.path if p and Path(p).is_dir()]
    return [p for p in found if not workdir.resolve().is_relative_to(p)
            and p != Path(LAUNCHER).parent.resolve()]


def read_only_paths(workdir: Path) -> list[Path]:
    """What a graded kernel may read but never change: the repository this grader belongs to,
    the Python installation (the venv and its base) and the import path's other folders, the
    data directory and the instructor's warmed cache (``COURSE_DATA``,
    ``COURSE_CACHE_SHARED``). Outermost folders only."""
    found = [Path(LAUNCHER).parents[2], Path(sys.prefix), Path(sys.base_prefix),
             *library_paths(workdir)]
    found += [Path(os.environ[v]) for v in ("COURSE_DATA", "COURSE_CACHE_SHARED")
              if os.environ.get(v)]
    found = sorted({p.resolve() for p in found if p.is_dir()}, key=lambda p: len(p.parts))
    return [p for i, p in enumerate(found) if not any(p.is_relative_to(q) for q in found[:i])]


def trusted_paths(workdir: Path) -> list[str]:
    """Where the code that may touch the interpreter's internals lives: the Python installation,
    the installed packages and the course's packages (everything else, cells included, is the
    student's)."""
    repo = Path(LAUNCHER).parents[2]
    return sorted({str(p.resolve()) for p in (Path(sys.prefix), Path(sys.base_prefix),
                                                 repo / "course_lib", repo / "course_grading",
                                                 repo / "course_site", *library_paths(workdir))})


def make_read_only(paths) -> None:
    """Bind each folder onto itself and remount that bind read-only (a write raises EROFS).
    Needs a private mount namespace; run before :func:`hide_paths`, whose covers stay writable."""
    for path in map(str, paths):
        _mount(path, path, None, _MS_BIND | _MS_REC)
        _mount("none", path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)


def apply_limits(limits: dict) -> None:
    """Data memory, written-file size, no core dumps; writing past the file limit raises
    OSError instead of killing the kernel."""
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def cap_output(limit_bytes: int) -> None:
    """Make the kernel's stdout and stderr drop what one cell prints past ``limit_bytes``
    (the grader cuts again on its side, so undoing this gains nothing)."""
    from ipykernel.iostream import OutStream

    write, flush = OutStream.write, OutStream.flush

    def capped_write(self, text):
        parent = (getattr(self, "parent_header", None) or {}).get("msg_id")
        if getattr(self, "_course_parent", None) != parent:
            self._course_parent, self._course_written = parent, 0
        room = limit_bytes - self._course_written
        self._course_written += len(text)
        if room <= 0:
            return len(text)
        if len(text) > room:
            write(self, text[:room] + "\n[output cut by the grader]\n")
            return len(text)
        return write(self, text)

    OutStream.write = capped_write
    OutStream.flush = flush


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the grader that started it dies (the setting
    survives exec, so it covers ``unshare`` and, through ``--kill-child``, the kernel)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python course_grading/kernel/sandbox.py CONNECTION_FILE", file=sys.stderr)
        return 2
    config = json.loads(os.environ[CONFIG_VARIABLE])
    close_inherited()
    _die_with_parent()
    if config["mode"] == "namespaces" and not os.environ.get("COURSE_SANDBOX_INSIDE"):
        os.environ["COURSE_SANDBOX_INSIDE"] = "1"
        os.execvp(UNSHARE[0], UNSHARE + [sys.executable, LAUNCHER, argv[0]])
    return become_kernel(argv[0], config)


def become_kernel(connection_file: str, config: dict) -> int:
    """Inside the namespaces (or, without them, in the launched process): hide, limit, guard,
    then run the IPython kernel that ``connection_file`` describes."""
    workdir = Path(config["workdir"])
    guard_file = Path(config["guard_file"])
    guard = json.loads(guard_file.read_text())
    guard_file.unlink()
    read_only = read_only_paths(workdir)
    if config["mode"] == "namespaces":
        private_folders([workdir, *read_only], config["limits"]["memory_mb"])
        make_read_only(read_only)
        hide_paths(config["hide"], workdir)
    else:
        try:
            os.setsid()   # one process group: the grader ends it as a whole
        except PermissionError:
            pass          # already a session leader
    os.chdir(workdir)
    apply_limits(config["limits"])
    cap_output(config["limits"]["output_kb"] * 1024)
    sys.dont_write_bytecode = True
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(LAUNCHER).parent]
    from ipykernel.kernelapp import IPKernelApp

    from course_grading.kernel.guard import install

    install({**guard, "workdir": str(workdir), "read_only": [str(p) for p in read_only],
             "trusted": trusted_paths(workdir)})

    # plain tracebacks: the default ("Context") reads and parses the source file of every
    # frame, seconds of CPU for an error raised deep in torch, for every failing cell
    IPKernelApp.launch_instance(argv=["-f", connection_file, "--HistoryManager.hist_file=:memory:",
                                      "--InteractiveShell.xmode=Plain"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
