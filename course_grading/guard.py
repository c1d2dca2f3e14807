"""Inside a graded kernel: test cells run in a state the student's code cannot reach, and
every attempt to reach it is reported to the grader.

:func:`install` runs in :mod:`course_grading.sandbox`'s launcher before the kernel exists, so
before any student code. It sets up two things that student code cannot remove:

1. an **audit hook** (:pep:`578`; Python offers no way to take one off). It refuses, with
   ``PermissionError``, tracing, profiling and new audit hooks while the student's code is
   anywhere on the stack (a frame whose file is not the Python installation's or the
   course's); called from the student's own code, frame and garbage-collector walks,
   ``ctypes``, ``exec``/``compile`` and rewriting a function's code; and from any code, writes
   into the course, the Python installation and the data (the read-only folders of the
   sandbox). Each refusal is reported.
2. a wrapper around the kernel's ``do_execute``. Before a **test cell** (the grader passes the
   SHA-256 of every test cell's source) it compares the kernel with the snapshot it took before
   the first cell: the shell's and kernel's methods and classes, IPython's input and AST
   transformers, custom exception handlers and event callbacks, ``sys`` hooks, ``builtins``,
   and the modules of the course and of its libraries. What the student changed is put back
   and reported (of the libraries' classes, those in ``_CLASSES``). The test cell then runs
   without entering the history (``In``, ``_ih`` …)
   and, for hidden tests, without leaving its source in ``linecache``. The same comparison
   after the cell fails the test if the student's code, called by it, changed anything.

Every execute reply carries ``course_integrity``: the events of that cell and an HMAC, keyed
by a secret only the grader and this module know, over the cell's digest, its status and its
events. A reply without a valid one was not produced here, and the grader treats it as
tampering (:mod:`course_grading.runner`).

This is defence in depth inside one process: it cannot stop code that already has full
control of the interpreter, which is why :mod:`course_grading.integrity` reads every cell
first and the sandbox keeps the files that matter read-only.
"""
from __future__ import annotations

import builtins
import functools
import hashlib
import hmac
import json
import os
import sys
import types

SIGNED = "course_integrity"
_BLOCKED = {"sys.settrace", "sys.setprofile", "sys._current_frames", "sys.addaudithook",
            "gc.get_objects", "gc.get_referrers", "gc.get_referents", "function.__new__",
            "code.__new__", "object.__getattr__", "object.__setattr__", "object.__delattr__",
            "exec", "compile", "sys._getframe", "sys.setrecursionlimit"}
_ANYWHERE = {"sys.settrace", "sys.setprofile", "sys._current_frames", "sys.addaudithook"}
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.chmod", "os.chown", "os.truncate",
                "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move",
                "shutil.copyfile", "shutil.copytree", "os.mkdir", "os.chflags"}
_TARGET_ONLY = {"shutil.copyfile", "shutil.copytree", "os.link", "os.symlink"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_INTROSPECTION = ("inspect.py", "traceback.py", "linecache.py")
_PROTECTED = ("course_lib", "torch", "numpy", "math", "operator", "functools", "itertools",
              "random", "collections", "copy", "threading", "builtins", "gymnasium", "statistics")
# library classes whose methods tests lean on (the course's own classes are all watched; a patch
# of any other library class is left to course_grading.integrity's reading)
_CLASSES = {"torch._tensor.Tensor", "torch.nn.modules.module.Module",
            "torch.nn.parameter.Parameter", "torch.optim.optimizer.Optimizer",
            "torch.autograd.function.Function", "torch.distributions.distribution.Distribution",
            "torch.distributions.normal.Normal", "torch.distributions.categorical.Categorical"}
_BUILTINS_SKIP = {"_", "__", "___", "display", "get_ipython", "exit", "quit", "__IPYTHON__",
                  "__debug__", "copyright", "credits", "license", "help"}


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def signature(secret: str, code_digest: str, status: str, events: list[str]) -> str:
    message = json.dumps([code_digest, status, events]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Guard:
    """The kernel-side state: trusted folders, test digests, snapshots and pending events."""

    def __init__(self, config: dict):
        self.secret = config["secret"]
        self.tests, self.hidden = set(config["tests"]), set(config["hidden"])
        self.trusted = tuple(os.path.join(os.path.realpath(p), "") for p in config["trusted"])
        self.read_only = tuple(os.path.join(os.path.realpath(p), "") for p in config["read_only"])
        self.writable = os.path.join(os.path.realpath(config["workdir"]), "")
        self.events: list[str] = []
        self.busy = False        # the audit hook's own calls are not audited again
        self.started = False
        self.watch: dict[int, tuple[str, object, dict]] = {}
        self.lists: dict[str, tuple[list, list]] = {}
        self.modules: dict[str, object] = {}
        self._trusted_modules: set[str] = set()   # module names whose file is trusted

    # ------------------------------------------------------------------ whose code is this
    def trusted_file(self, filename: str) -> bool:
        return filename.startswith(self.trusted) or filename.startswith(("<frozen ", "<string>"))

    def student_frame(self, frame) -> bool:
        return frame is not None and not self.trusted_file(frame.f_code.co_filename)

    def student_code(self, value, depth: int = 0) -> bool:
        """Whether ``value`` is, or wraps, code the student wrote (a cell, a file they made).
        Reads only ``type(value)`` and slots of known types: never runs the value's own code."""
        kind = type(value)
        if depth > 3:
            return False
        if issubclass(kind, (types.FunctionType, types.CodeType)):
            code = value if kind is types.CodeType else value.__code__
            return not self.trusted_file(code.co_filename)
        if issubclass(kind, types.MethodType):
            return self.student_code(value.__func__, depth + 1) or \
                self.student_code(value.__self__, depth + 1)
        if issubclass(kind, functools.partial):
            return self.student_code(value.func, depth + 1)
        if issubclass(kind, (staticmethod, classmethod)):
            return self.student_code(value.__func__, depth + 1)
        if issubclass(kind, property):
            return any(self.student_code(f, depth + 1) for f in (value.fget, value.fset) if f)
        owner = value if issubclass(kind, type) else kind
        module = type.__dict__["__module__"].__get__(owner)
        if module in ("__main__", "builtins") or not isinstance(module, str):
            return module == "__main__"
        return module not in self._trusted_modules and self._untrusted_module(module)

    def _untrusted_module(self, module: str) -> bool:
        file = getattr(sys.modules.get(module), "__file__", None)
        if isinstance(file, str) and not self.trusted_file(os.path.realpath(file)):
            return True
        self._trusted_modules.add(module)
        return False

    # ------------------------------------------------------------------ the audit hook
    def audit(self, event: str, args: tuple) -> None:
        if self.busy or not (event in _BLOCKED or event in _PATH_EVENTS or event == "open"
                             or event.startswith("ctypes.")):
            return
        self.busy = True
        try:
            why = self._refusal(event, args, sys._getframe(1))
        finally:
            self.busy = False
        if why:
            self.events.append(why)
            raise PermissionError(f"blocked by the grader: {why}")

    def _refusal(self, event: str, args: tuple, frame) -> str | None:
        if event == "open" or event in _PATH_EVENTS:
            return self._write_refusal(event, args)
        caller = frame
        if event in _ANYWHERE:   # a profiler or debugger module would set it on their behalf
            while caller is not None and not self.student_frame(caller):
                caller = caller.f_back
        if event == "sys._getframe":   # inspect.stack() and traceback walk frames for the caller
            while caller is not None and caller.f_code.co_filename.endswith(_INTROSPECTION):
                caller = caller.f_back
        if not self.student_frame(caller):
            return None
        detail = f" ({args[1]})" if event.startswith("object.") else ""
        return f"{event}{detail} from the submission's code"

    def _write_refusal(self, event: str, args: tuple) -> str | None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if not writing or not isinstance(path, (str, bytes, os.PathLike)):
                return None
            paths = [path]
        else:   # the paths an operation changes: a copy or link changes its target only
            changed = args[1:2] if event in _TARGET_ONLY else \
                args[:2] if event in ("os.rename", "shutil.move") else args[:1]
            paths = [a for a in changed if isinstance(a, (str, bytes, os.PathLike))]
        for path in paths:
            real = os.path.join(os.path.realpath(os.fsdecode(path)), "")
            if real.startswith(self.read_only) and not real.startswith(self.writable):
                return f"{event} on {os.fsdecode(path)}: the course, Python and data are read-only"
        return None

    # ------------------------------------------------------------------ snapshots
    def _watch(self, label: str, mapping_owner, mapping: dict) -> None:
        self.watch[id(mapping_owner)] = (label, mapping_owner, dict(mapping))

    def _kernel_objects(self, kernel) -> list[tuple[str, object]]:
        shell = kernel.shell
        found = [("shell", shell), ("kernel", kernel)]
        for name in ("displayhook", "display_pub", "compile", "events", "history_manager",
                     "input_transformer_manager", "builtin_trap", "display_trap"):
            if hasattr(shell, name):
                found.append((f"shell.{name}", getattr(shell, name)))
        found += [("kernel.session", kernel.session), ("sys.stdout", sys.stdout),
                  ("sys.stderr", sys.stderr)]
        return found

    def start(self, kernel) -> None:
        """Snapshot the kernel and the loaded modules before the first cell runs."""
        self.started = True
        shell = kernel.shell
        seen = set()
        for label, obj in self._kernel_objects(kernel):
            self._watch(f"{label} (instance)", obj, vars(obj))
            for cls in type(obj).__mro__:
                if cls is not object and id(cls) not in seen:
                    seen.add(id(cls))
                    self._watch(f"{cls.__module__}.{cls.__qualname__}", cls, vars(cls))
        self._watch("builtins", builtins, vars(builtins))
        self.lists = {name: (lst, list(lst)) for name, lst in self._lists(shell).items()}
        self.hooks = self._hooks()
        self._modules(report=False)

    def _lists(self, shell) -> dict[str, list]:
        found = {"ast_transformers": shell.ast_transformers,
                 "input_transformers_post": shell.input_transformers_post,
                 "sys.meta_path": sys.meta_path, "sys.path_hooks": sys.path_hooks}
        manager = shell.input_transformer_manager
        for name in ("cleanup_transforms", "line_transforms", "token_transformers"):
            found[f"input_transformer_manager.{name}"] = getattr(manager, name)
        for event, callbacks in shell.events.callbacks.items():
            found[f"events[{event}]"] = callbacks
        return found

    @staticmethod
    def _hooks() -> dict[str, object]:
        import threading
        return {"sys.gettrace()": sys.gettrace(), "sys.getprofile()": sys.getprofile(),
                "sys.excepthook": sys.excepthook,
                "threading trace": getattr(threading, "_trace_hook", None),
                "threading profile": getattr(threading, "_profile_hook", None)}

    def _modules(self, report: bool) -> list[str]:
        """Watch newly imported course and library modules; report library attributes that
        already hold student code (patched in the cell that imported them)."""
        found = []
        for name, module in list(sys.modules.items()):
            if name in self.modules or module is None or name.split(".")[0] not in _PROTECTED:
                continue
            self.modules[name] = module
            mapping = vars(module)
            for key, value in list(mapping.items()):
                if report and self.student_code(value) and not key.startswith("__"):
                    found.append(f"{name}.{key} holds the submission's code (a patched library)")
                if issubclass(type(value), type) and value.__dict__.get("__module__") == name \
                        and (name.split(".")[0] == "course_lib" or f"{name}.{key}" in _CLASSES):
                    self._watch(f"{name}.{key}", value, vars(value))
            self._watch(name, module, mapping)
        return found

    # ------------------------------------------------------------------ checking
    def check(self, kernel) -> list[str]:
        """Everything the student's code changed since the snapshot, each put back."""
        changed = self._modules(report=True)
        for label, obj, before in list(self.watch.values()):
            now = vars(obj)
            keys = [k for k, v in before.items() if now.get(k, _MISSING) is not v]
            if len(now) != len(before) - sum(k not in now for k in keys):
                keys += [k for k in now if k not in before]
            instance = label.endswith("(instance)")
            for key in keys:
                old, new = before.get(key, _MISSING), now.get(key, _MISSING)
                if obj is builtins and key in _BUILTINS_SKIP:
                    continue
                kernel_class = isinstance(obj, type) and label.startswith(("IPython", "ipykernel"))
                if not (kernel_class or obj is builtins) and not self.student_code(new):
                    before[key] = new          # the libraries' and kernel's own state
                    continue
                what = "removed" if new is _MISSING else "replaced" if old is not _MISSING else "added"
                changed.append(f"{label}.{key} was {what}")
                self._put_back(obj, key, old)
        for name, (lst, before) in self.lists.items():
            if [id(x) for x in lst] != [id(x) for x in before]:
                extra = [x for x in lst if not any(x is y for y in before)]
                if any(self.student_code(x) or not self._library_code(x) for x in extra) or \
                        len(lst) < len(before):
                    changed.append(f"{name} was changed")
                    lst[:] = before
                else:
                    self.lists[name] = (lst, list(lst))
        shell = kernel.shell
        for name, lst in self._lists(shell).items():   # a list swapped for another one
            if name in self.lists and lst is not self.lists[name][0]:
                changed.append(f"{name} was swapped")
        if vars(shell).get("custom_exceptions", ()) != ():
            changed.append("custom exception handlers were set")
            shell.custom_exceptions = ()
        for name, value in self._hooks().items():
            if value is not self.hooks[name]:
                changed.append(f"{name} was set")
        if changed:
            import threading
            sys.settrace(None) if sys.gettrace() is not self.hooks["sys.gettrace()"] else None
            sys.setprofile(None) if sys.getprofile() is not self.hooks["sys.getprofile()"] else None
            sys.excepthook = self.hooks["sys.excepthook"]
            threading._trace_hook, threading._profile_hook = (self.hooks["threading trace"],
                                                              self.hooks["threading profile"])
        return changed

    def _library_code(self, value) -> bool:
        code = getattr(value, "__code__", None) or getattr(getattr(value, "__func__", None),
                                                           "__code__", None)
        if code is None:
            module = type.__dict__["__module__"].__get__(type(value))
            file = getattr(sys.modules.get(module), "__file__", None)
            return isinstance(file, str) and self.trusted_file(os.path.realpath(file))
        return self.trusted_file(code.co_filename)

    @staticmethod
    def _put_back(obj, key, old) -> None:
        target = obj.__dict__ if not isinstance(obj, type) else None
        try:
            if old is _MISSING:
                delattr(obj, key) if target is None else target.pop(key, None)
            elif target is None:
                type.__setattr__(obj, key, old)
            else:
                target[key] = old
        except (AttributeError, TypeError):
            pass

    def take(self) -> list[str]:
        events, self.events = self.events, []
        return events


_MISSING = object()


def _wrap(original, guard: Guard):
    import linecache

    @functools.wraps(original)
    async def do_execute(self, code, silent, store_history=True, *args, **kwargs):
        guard.busy = True
        try:
            if not guard.started:
                guard.start(self)
            code_digest = digest(code)
            test = code_digest in guard.tests
            events = guard.take()
            if test:
                events += guard.check(self)
                store_history = False            # no In, _ih, _i… entry for a test
            cached = set(linecache.cache)
        finally:
            guard.busy = False
        reply = await original(self, code, silent, store_history, *args, **kwargs)
        guard.busy = True
        try:
            during = guard.take()
            if test:
                during += guard.check(self)
                if code_digest in guard.hidden:   # its source never outlives the cell
                    for key in set(linecache.cache) - cached:
                        linecache.cache.pop(key, None)
                if during:
                    reply = {"status": "error", "ename": "Tampering",
                             "evalue": "; ".join(during)[:500],
                             "traceback": [f"Tampering: {'; '.join(during)[:500]}"],
                             "execution_count": reply.get("execution_count")}
            events += during
            reply[SIGNED] = {"test": test, "events": events,
                             "signature": signature(guard.secret, code_digest,
                                                    reply.get("status", ""), events)}
        finally:
            guard.busy = False
        return reply

    return do_execute


def install(config: dict) -> Guard:
    """Start guarding this process (call before the kernel starts; see the module docstring)."""
    from ipykernel.ipkernel import IPythonKernel

    guard = Guard(config)
    IPythonKernel.do_execute = _wrap(IPythonKernel.do_execute, guard)
    sys.addaudithook(guard.audit)
    return guard
