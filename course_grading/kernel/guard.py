"""Inside a graded kernel: every test cell runs in the state the course gave it, and what the
student's code does while the tests run is what counts.

:func:`install` runs in :mod:`course_grading.kernel.sandbox`'s launcher before the kernel exists, so
before any student code. It sets up two things that student code cannot remove:

1. an **audit hook** (:pep:`578`; Python offers no way to take one off). Always refused: writes
   into the course, the Python installation and the data (the read-only folders), and new
   audit hooks, tracing and profiling from the submission's code. While a **test cell** runs,
   the student's code that the test calls is also refused frame and garbage-collector walks,
   ``ctypes``, ``exec``/``compile`` and rewriting a function's code (what it would need to read
   the test or rig it). Outside test cells an everyday notebook may do all of that: it is
   reported to the instructor as a note and costs nothing.
2. a wrapper around the kernel's ``do_execute``. Before a **test cell** (the grader passes the
   SHA-256 of every test cell's source) it silently puts back what the student's cells changed
   since the snapshot taken before the first cell: the shell's and kernel's methods and
   classes, IPython's input and AST transformers, custom exception handlers and event
   callbacks, ``sys`` hooks, ``builtins``, the course's and its libraries' module attributes
   and their functions' ``__code__`` and defaults, ``sys.modules`` entries, and the helpers the
   read-only cells bound (``expect_raises``, ``torch`` …); threads the student started are
   stopped, signal handlers and timers reset. The test then runs in a copy of the notebook's
   namespace (what it binds is in no dict the student's functions can read) and without
   entering the history (``In``, ``_ih`` …); a test with hidden code leaves its source in no
   ``linecache``. The functions of the submission that the test names return plain values
   (:func:`course_grading.kernel.plain.plain`). Anything the student's code changes *while the test runs* fails that test
   (tampering).
   **Own work** is checked by effect: while the tests of part P run, the course functions
   ``own_work.toml`` lists for P are trip-wired (their ``__code__`` swapped for a trap). A call
   that the submission's code makes, directly or through any alias, list, ``getattr`` chain,
   wrapper or thread, scores P 0; the tests' own calls (the course as an oracle) do not.
   Names the test uses that are bound to such a function, or to a subclass or wrapper of it,
   count as a call.

Every execute reply carries ``course_integrity``: the events of that cell and an HMAC, keyed
by a secret only the grader and this module know, over the cell's digest, its status and its
events. A reply without a valid one was not produced here, and the grader treats it as
tampering (:mod:`course_grading.check.run`).

This is defence in depth inside one process: the sandbox keeps the files that matter
read-only and out of sight, and :mod:`course_grading.check.reading` reads every cell for the
instructor.
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import hmac
import json
import os
import sys
import types
from itertools import repeat
from operator import is_not

from . import plain, tripwire

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
_ASSIGNING = ("object.__setattr__", "object.__delattr__")
_INTROSPECTION = ("inspect.py", "traceback.py", "linecache.py")
_PROTECTED = ("course_lib", "torch", "numpy", "math", "operator", "functools", "itertools",
              "random", "collections", "copy", "threading", "builtins", "gymnasium", "statistics")
# library classes whose methods tests lean on (the course's own classes are all watched; a patch
# of any other library class is left to course_grading.check.reading's reading)
_CLASSES = {"torch._tensor.Tensor", "torch.nn.modules.module.Module",
            "torch.nn.parameter.Parameter", "torch.optim.optimizer.Optimizer",
            "torch.autograd.function.Function", "torch.distributions.distribution.Distribution",
            "torch.distributions.normal.Normal", "torch.distributions.categorical.Categorical"}
# an instance's data that the kernel updates itself (the output cache: ``_``, ``__`` …)
_INSTANCE_SKIP = {"_", "__", "___", "exec_result", "prompt_count", "execution_count",
                  "last_execution_succeeded", "last_execution_result"}
_BUILTINS_SKIP = {"_", "__", "___", "display", "get_ipython", "exit", "quit", "__IPYTHON__",
                  "__debug__", "copyright", "credits", "license", "help"}


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def signature(secret: str, code_digest: str, status: str, events: list) -> str:
    message = json.dumps([code_digest, status, events], sort_keys=True).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# the kinds of a reported event: a note for the instructor (costs nothing), tampering (the
# test cell it happened in fails), delegation (the part scores 0)
NOTE, TAMPERING, DELEGATION = "note", "tampering", "delegation"


def event(kind: str, what: str, part: str | None = None) -> dict:
    return {"kind": kind, "what": what, **({"part": part} if part else {})}


class Guard:
    """The kernel-side state: trusted folders, test digests, snapshots and pending events."""

    def __init__(self, config: dict):
        self.secret = config["secret"]
        self.tests, self.hidden = set(config["tests"]), set(config["hidden"])
        self.given = set(config.get("given", ()))          # digests of the read-only cells
        self.parts: dict[str, str] = config.get("parts", {})   # test digest -> part
        self.own_work: dict[str, list] = config.get("own_work", {})   # part -> course names
        self.trusted = tuple(os.path.join(os.path.realpath(p), "") for p in config["trusted"])
        self.read_only = tuple(os.path.join(os.path.realpath(p), "") for p in config["read_only"])
        self.writable = os.path.join(os.path.realpath(config["workdir"]), "")
        self.events: list[dict] = []
        self.busy = False        # the audit hook's own calls are not audited again
        self.started = False
        self.in_test = False     # a test cell is running
        self.test_file: str | None = None   # the file name IPython compiled it under
        self.watch: dict[int, tuple[str, object, dict]] = {}
        self.lists: dict[str, tuple[list, list]] = {}
        self.modules: dict[str, object] = {}
        self._others: set[str] = set()            # loaded modules of no protected package
        self.functions: dict[int, tuple] = {}     # id -> (function, code, defaults, kwdefaults)
        self.written: set[int] = set()            # ids of functions assigned to since check
        self.raw_memory = False                   # memory may have changed unaudited (ctypes…)
        self.children: set[str] = set()           # processes of the kernel's at the snapshot
        self.children_usage: tuple = ()          # what its ended processes had used by then
        self.bound: dict[str, object] = {}        # names the read-only cells bound
        self.threads: set[int] = set()
        self.armed: list[tuple] = []
        self.wrapped: list[tuple] = []            # (class, method name, original)
        self.classes_done: set = set()
        self._trusted_modules: set[str] = set()   # module names whose file is trusted

    # ------------------------------------------------------------------ whose code is this
    def trusted_file(self, filename: str) -> bool:
        return filename.startswith(self.trusted) or filename.startswith(("<frozen ", "<string>"))

    def _student_globals(self, code, globals_: dict) -> bool:
        """Code of a trusted file, or built at run time (``<string>``: dataclasses, exec), is
        the student's when it runs in the notebook's namespace."""
        if not self.trusted_file(code.co_filename):
            return True
        return code.co_filename.startswith("<") and globals_.get("__name__") == "__main__"

    def student_frame(self, frame) -> bool:
        return frame is not None and self._student_globals(frame.f_code, frame.f_globals)

    def student_code(self, value, depth: int = 0) -> bool:
        """Whether ``value`` is, or wraps, code the student wrote (a cell, a file they made).
        Reads only ``type(value)`` and slots of known types: never runs the value's own code."""
        kind = type(value)
        if depth > 3:
            return False
        if issubclass(kind, types.FunctionType):
            return self._student_globals(value.__code__, value.__globals__)
        if issubclass(kind, types.CodeType):
            return not self.trusted_file(value.co_filename)
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
    def audit(self, event_name: str, args: tuple) -> None:
        if event_name in _ASSIGNING and type(args[0]) is types.FunctionType:
            self.written.add(id(args[0]))   # even while busy (a thread of the student's)
        elif self.started and not self.raw_memory and _raw_write(event_name, args):
            self.raw_memory = True
        if self.busy or not (event_name in _BLOCKED or event_name in _PATH_EVENTS
                             or event_name == "open" or event_name.startswith("ctypes.")):
            return
        self.busy = True
        try:
            why = self._refusal(event_name, args, sys._getframe(1))
        finally:
            self.busy = False
        if why:
            self.events.append(event(TAMPERING if self.in_test else NOTE, why))
            raise PermissionError(f"blocked by the grader: {why}")

    def _refusal(self, name: str, args: tuple, frame) -> str | None:
        if name == "open" or name in _PATH_EVENTS:
            return self._write_refusal(name, args)
        if name not in _ANYWHERE and not self.in_test:
            return None          # outside the tests a notebook may introspect as it likes
        caller = frame
        if name in _ANYWHERE:   # a profiler or debugger module would set it on their behalf
            while caller is not None and not self.student_frame(caller):
                caller = caller.f_back
        if name == "sys._getframe":   # inspect.stack() and traceback walk frames for the caller
            while caller is not None and caller.f_code.co_filename.endswith(_INTROSPECTION):
                caller = caller.f_back
        if not self.student_frame(caller):
            return None
        detail = f" ({args[1]})" if name.startswith("object.") else ""
        when = " while a test ran" if self.in_test else ""
        return f"{name}{detail} from the submission's code{when}"

    def _write_refusal(self, name: str, args: tuple) -> str | None:
        if name == "open":
            path, mode, flags = (list(args) + [None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if not writing or not isinstance(path, (str, bytes, os.PathLike)):
                return None
            paths = [path]
        else:   # the paths an operation changes: a copy or link changes its target only
            changed = args[1:2] if name in _TARGET_ONLY else \
                args[:2] if name in ("os.rename", "shutil.move") else args[:1]
            paths = [a for a in changed if isinstance(a, (str, bytes, os.PathLike))]
        for path in paths:
            real = os.path.join(os.path.realpath(os.fsdecode(path)), "")
            if real.startswith(self.read_only) and not real.startswith(self.writable):
                return f"{name} on {os.fsdecode(path)}: the course, Python and data are read-only"
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
        import threading

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
        self.threads = {t.ident for t in threading.enumerate()}
        # the kernel's start-up may have had a process of its own; a later one is the student's
        self.children, self.children_usage = _children(), _children_usage()
        self.signals = _signal_handlers()
        self._inherit()
        self._modules()

    def _inherit(self) -> None:
        """Take over the watch that :func:`prepare` set up in the warm-kernel server before it
        forked this kernel: the same modules, still loaded, under the same trusted folders (else
        :meth:`_modules` looks at every module itself)."""
        global _prepared
        prepared, _prepared = _prepared, None
        if prepared is None or prepared.trusted != self.trusted or \
                any(sys.modules.get(name) is not module for name, module in prepared.modules.items()):
            return
        self.modules.update(prepared.modules)
        self._others |= prepared._others
        self._trusted_modules |= prepared._trusted_modules
        self.functions.update(prepared.functions)
        for key, entry in prepared.watch.items():
            self.watch.setdefault(key, entry)

    def _lists(self, shell) -> dict[str, list]:
        found = {"ast_transformers": shell.ast_transformers,
                 "input_transformers_post": shell.input_transformers_post,
                 "sys.meta_path": sys.meta_path, "sys.path_hooks": sys.path_hooks}
        manager = shell.input_transformer_manager
        for name in ("cleanup_transforms", "line_transforms", "token_transformers"):
            found[f"input_transformer_manager.{name}"] = getattr(manager, name)
        for name, callbacks in shell.events.callbacks.items():
            found[f"events[{name}]"] = callbacks
        return found

    @staticmethod
    def _hooks() -> dict[str, object]:
        import threading
        return {"sys.gettrace()": sys.gettrace(), "sys.getprofile()": sys.getprofile(),
                "sys.excepthook": sys.excepthook,
                "threading trace": getattr(threading, "_trace_hook", None),
                "threading profile": getattr(threading, "_profile_hook", None)}

    def _modules(self) -> None:
        """Watch newly imported course and library modules: their attributes, their classes'
        (the course's and those in ``_CLASSES``) and their functions' code and defaults.
        A module the student put into ``sys.modules`` under a library's name is removed."""
        new = sys.modules.keys() - self.modules.keys() - self._others
        for name, module in list(sys.modules.items()) if new else ():
            if name not in new or module is None:
                continue
            if name.split(".")[0] not in _PROTECTED:
                self._others.add(name)
                continue
            if self._fake(module):
                sys.modules.pop(name, None)   # a fake: the real one is imported when asked
                continue
            self.modules[name] = module
            mapping = vars(module)
            for key, value in list(mapping.items()):
                if self.student_code(value) and not key.startswith("__"):
                    value = self._genuine(module, key)   # patched in the cell that imported it
                if self.student_code(value):
                    continue
                if issubclass(type(value), type) and value.__dict__.get("__module__") == name \
                        and (name.split(".")[0] == "course_lib" or f"{name}.{key}" in _CLASSES):
                    self._watch(f"{name}.{key}", value, vars(value))
                    for member in list(vars(value).values()):
                        self._function(getattr(member, "__func__", member))
                self._function(value)
            self._watch(name, module, mapping)

    def _genuine(self, module, key: str):
        """Put back the attribute ``key`` of a module first seen patched: the course's own value
        from a fresh run of the module's file; for a library, the attribute is removed (a test
        that needs it then fails, which only a patch can cause). Returns the value now held."""
        genuine = _MISSING
        if module.__name__.split(".")[0] == "course_lib" and getattr(module, "__spec__", None):
            import importlib.util

            try:
                fresh = importlib.util.module_from_spec(module.__spec__)
                module.__spec__.loader.exec_module(fresh)
                genuine = vars(fresh).get(key, _MISSING)
            except Exception:
                genuine = _MISSING
        if genuine is _MISSING:
            vars(module).pop(key, None)
        else:
            vars(module)[key] = genuine
        return vars(module).get(key)

    def _fake(self, module) -> bool:
        """A module the student made up: of a class of theirs, from a file of theirs, or
        without file and spec and holding their code."""
        if self.student_code(type(module)):
            return True
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            return not self.trusted_file(os.path.realpath(file))
        return getattr(module, "__spec__", None) is None and \
            any(self.student_code(v) for v in list(vars(module).values())[:500])

    def _library_module(self, module) -> bool:
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):   # namespace packages and built-in modules
            return type(module) is types.ModuleType and getattr(module, "__spec__", None) is not None
        return self.trusted_file(os.path.realpath(file))

    def _function(self, value) -> None:
        if type(value) is types.FunctionType and id(value) not in self.functions \
                and self.trusted_file(value.__code__.co_filename):
            self.functions[id(value)] = (value, value.__code__, value.__defaults__,
                                         value.__kwdefaults__)

    def bind(self, kernel, before: dict, code: str) -> None:
        """After a read-only cell: remember what it bound that the tests lean on (modules, the
        library's and the course's functions and classes), to put back before each test. A
        name it imported from a module the student had patched is bound to the genuine value."""
        self._modules()
        namespace = kernel.shell.user_ns
        try:
            tree = ast.parse(code)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                    and node.module.split(".")[0] in _PROTECTED:
                if node.module not in self.modules:   # a fake, removed: the real one
                    tripwire.resolve(node.module)
                    self._modules()
                if node.module not in self.modules:
                    continue
                module = self.modules[node.module]
                for alias in node.names:
                    value = vars(module).get(alias.name, _MISSING)
                    if alias.name != "*" and self.student_code(value):
                        value = self._genuine(module, alias.name)
                    if alias.name != "*" and value is not _MISSING and value is not None:
                        namespace[alias.asname or alias.name] = value
        for name, value in list(namespace.items()):
            if before.get(name, _MISSING) is not value and not name.startswith("_") and \
                    (isinstance(value, types.ModuleType) or
                     (callable(value) and not self.student_code(value))):
                self.bound[name] = value

    # ------------------------------------------------------------------ checking
    def check(self, kernel) -> list[str]:
        """Everything the student's code changed since the snapshot, each put back."""
        self._modules()
        changed = []
        for name, module in self.modules.items():
            if sys.modules.get(name, module) is not module:
                changed.append(f"sys.modules[{name!r}] was replaced")
                sys.modules[name] = module
        for label, obj, before in list(self.watch.values()):
            now = vars(obj)
            if len(now) == len(before) and not any(
                    map(is_not, map(now.get, before, repeat(_MISSING)), before.values())):
                continue   # the same keys, each bound to the same object (read in C: quick)
            keys = [k for k, v in before.items() if now.get(k, _MISSING) is not v]
            if len(now) != len(before) - sum(k not in now for k in keys):
                keys += [k for k in now if k not in before]
            instance = label.endswith("(instance)")
            for key in keys:
                old, new = before.get(key, _MISSING), now.get(key, _MISSING)
                if (obj is builtins and key in _BUILTINS_SKIP) or \
                        (instance and key in _INSTANCE_SKIP):
                    continue
                kernel_class = isinstance(obj, type) and label.startswith(("IPython", "ipykernel"))
                if not (kernel_class or obj is builtins) and not self.student_code(new):
                    before[key] = new          # the libraries' and kernel's own state
                    continue
                what = "removed" if new is _MISSING else "replaced" if old is not _MISSING else "added"
                changed.append(f"{label}.{key} was {what}")
                self._put_back(obj, key, old)
        for function, code, defaults, kwdefaults in self._changed_functions():
            if function.__code__ is not code or function.__defaults__ is not defaults or \
                    function.__kwdefaults__ is not kwdefaults:
                changed.append(f"{function.__module__}.{function.__qualname__}'s code was changed")
                function.__code__, function.__defaults__ = code, defaults
                function.__kwdefaults__ = kwdefaults
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
                self._swap_back(shell, name)
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
        import signal

        for number, handler in _signal_handlers().items():   # a handler is given the frame
            if handler is not self.signals.get(number, handler):
                changed.append(f"the handler of signal {number} was set")
                signal.signal(number, self.signals[number])
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            if signal.getitimer(timer) != (0.0, 0.0):
                changed.append("a timer signal was set")
                signal.setitimer(timer, 0)
        namespace = shell.user_ns
        for name, value in self.bound.items():
            if namespace.get(name, _MISSING) is not value:
                changed.append(f"{name} (bound by a read-only cell) was rebound")
                namespace[name] = value
        return changed

    def _changed_functions(self) -> list[tuple]:
        """The entries of ``self.functions`` to compare: those assigned to since the last check
        (Python sets or deletes a function's ``__code__``, ``__defaults__`` and
        ``__kwdefaults__`` only through setters that raise the ``object.__setattr__`` or
        ``__delattr__`` audit event), or all of them once memory could have been written
        otherwise (:meth:`_raw_memory`). Reading each function's attributes raises an audit
        event too: ten thousand of them took 20 ms per check."""
        written, self.written = self.written, set()
        if self._raw_memory():
            return list(self.functions.values())
        return [self.functions[key] for key in written if key in self.functions]

    def _raw_memory(self) -> bool:
        """Whether this process's memory may have been written without an audit event: through
        ctypes or ``/proc/…/mem`` (seen by the audit hook), cffi, or by a process of its own,
        running or ended (a process in the kernel's namespaces may write the kernel's memory;
        ``multiprocessing`` starts one without an audit event)."""
        if self.raw_memory or "_cffi_backend" in sys.modules:
            return True
        if _children_usage() != self.children_usage or _children() - self.children:
            self.raw_memory = True   # a process started since the snapshot ended, or runs
        return self.raw_memory

    def _swap_back(self, shell, name: str) -> None:
        lst = self.lists[name][0]
        if name == "ast_transformers":
            shell.ast_transformers = lst
        elif name == "input_transformers_post":
            shell.input_transformers_post = lst
        elif name.startswith("input_transformer_manager."):
            setattr(shell.input_transformer_manager, name.split(".", 1)[1], lst)
        elif name.startswith("events["):
            shell.events.callbacks[name[7:-1]] = lst

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

    def stop_threads(self) -> list[str]:
        """Stop every thread the student's code runs in (its target, ``run`` or a timer's
        function is theirs) started since the snapshot; returns what was stopped. A thread of
        a library's own (the kernel's output, tqdm's monitor, a pool's workers) is left: what
        it does for the student while a test runs is caught by its effects."""
        import ctypes
        import threading

        stopped = []
        for thread in threading.enumerate():
            runs = [getattr(thread, "_target", None), getattr(thread, "function", None),
                    type(thread).run]
            if thread.ident in self.threads or thread is threading.current_thread() or \
                    not any(self.student_code(r) for r in runs if r is not None):
                continue
            for _ in range(50):   # an exception raised in it at its next bytecode
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                           ctypes.py_object(SystemExit))
                thread.join(0.02)
                if not thread.is_alive():
                    break
            stopped.append(f"thread {thread.name!r}" + (" (still running)"
                                                         if thread.is_alive() else ""))
        return stopped

    # ------------------------------------------------------------------ own work
    def arm(self, part: str | None, code: str, kernel) -> list[dict]:
        """Trip-wire the course functions of ``part`` for one test cell; returns the
        delegations already visible in the names the test uses."""
        if not part or not self.own_work.get(part):
            return []
        targets = [(name, obj) for name in self.own_work[part]
                   if (obj := tripwire.resolve(name)) is not None]
        functions = {}
        for name, obj in targets:
            for function, owner in tripwire.functions_of(obj):
                functions.setdefault(id(function), (function, name, owner))
        for function, name, owner in functions.values():
            trap = tripwire.trap_code(function)
            if trap is None:
                continue
            original = types.FunctionType(function.__code__, function.__globals__,
                                          function.__name__, function.__defaults__,
                                          function.__closure__)
            original.__kwdefaults__ = function.__kwdefaults__
            original.__qualname__ = function.__qualname__
            key = len(self.armed)
            self.armed.append((function, function.__code__, function.__defaults__,
                               function.__kwdefaults__, original, name, owner, part))
            function.__globals__[tripwire.TRIPWIRE] = self.tripwire
            function.__code__, function.__defaults__, function.__kwdefaults__ = \
                trap.replace(co_consts=tuple(key if c == "__KEY__" else c
                                             for c in trap.co_consts)), None, None
        codes = {id(entry[1]): entry[5] for entry in self.armed}
        shapes = {tripwire.shape(entry[1]): entry[5] for entry in self.armed}
        classes = [obj for _, obj in targets if isinstance(obj, type)]
        objects = {id(o): n for n, o in targets}
        objects.update({id(entry[0]): entry[5] for entry in self.armed})
        found, namespace = [], kernel.shell.user_ns
        for used_name in sorted(_names(code)):
            value = namespace.get(used_name, _MISSING)
            if value is _MISSING or self.bound.get(used_name, _MISSING) is value:
                continue
            try:
                reached = tripwire.reaches(value, objects, codes, classes, self.student_code,
                                   shapes=shapes)
            except Exception as error:   # an object of the student's that fails to be read
                found.append(event(NOTE, f"the test's {used_name!r} could not be read "
                                         f"({type(error).__name__})"))
                continue
            if reached:
                found.append(event(DELEGATION, f"the test's {used_name!r} is {reached}", part))
        return found

    def plain_values(self, code: str, kernel) -> None:
        """For one test cell: the submission's functions the test names, and the methods of its
        classes the test names (or of the objects it names), return plain values
        (:func:`course_grading.kernel.plain.plain`): a subclass of a tensor, array, number or string the student wrote
        becomes the library's own type, so a comparison runs the library's code, and an object
        of a class of theirs that redefines comparison or arithmetic is refused."""
        namespace = kernel.shell.user_ns
        for name in sorted(_names(code)):
            value = namespace.get(name, _MISSING)
            if type(value) is types.FunctionType and self.student_code(value):
                namespace[name] = plain.plain_call(value, self.student_code)   # the test's copy
                continue
            cls = value if isinstance(value, type) else type(value)
            if value is _MISSING or not self.student_code(cls) or cls in self.classes_done:
                continue
            self.classes_done.add(cls)
            for attr, member in list(vars(cls).items()):
                if type(member) is types.FunctionType and not attr.startswith("__") \
                        and self.student_code(member):
                    type.__setattr__(cls, attr, plain.plain_call(member, self.student_code))
                    self.wrapped.append((cls, attr, member))

    def unwrap(self) -> None:
        for cls, name, value in reversed(self.wrapped):
            type.__setattr__(cls, name, value)
        self.wrapped, self.classes_done = [], set()

    def disarm(self) -> None:
        for function, code, defaults, kwdefaults, *_ in self.armed:
            function.__code__, function.__defaults__ = code, defaults
            function.__kwdefaults__ = kwdefaults
            function.__globals__.pop(tripwire.TRIPWIRE, None)
        self.armed = []

    def tripwire(self, key: int, args: tuple, kwargs: dict):
        """Called instead of an armed course function: note a call from the submission's code
        (any frame of it between the call and the test cell, or none of the test at all: a
        thread), then run the course's function."""
        function, _, _, _, original, name, owner, part = self.armed[key]
        frame = sys._getframe(2)
        by = self._caller(frame)
        if by is None and owner is not None and args:
            first = args[0]
            cls = first if isinstance(first, type) else type(first)
            if cls is not owner and issubclass(cls, owner) and self.student_code(cls):
                by = f"a subclass, {cls.__qualname__}"
            elif cls is not owner and not issubclass(cls, owner) and any(
                    getattr(v, "__func__", v) is function for v in vars(cls).values()):
                by = f"a copy of the class, {cls.__qualname__}"
        if by is not None:
            what = f"{function.__qualname__} ({name}) was called by {by} while the tests ran"
            if not any(e.get("what") == what for e in self.events):
                self.events.append(event(DELEGATION, what, part))
        return original(*args, **kwargs)

    def _caller(self, frame) -> str | None:
        """``None`` when the first frame that is not the library's is the test cell's; else
        what called (the submission's code, or no test at all)."""
        while frame is not None:
            if frame.f_code.co_filename == self.test_file:
                return None
            if not self._library_frame(frame):
                return f"the submission's {frame.f_code.co_name}"
            frame = frame.f_back
        return "code outside the test (a thread)"

    def _library_frame(self, frame) -> bool:
        """A frame of a library's module: its globals are a trusted module's own (code that
        only claims a library's file name, or runs with a dict that names one, is not)."""
        module = sys.modules.get(frame.f_globals.get("__name__"))
        if module is None or getattr(module, "__dict__", None) is not frame.f_globals:
            return False
        filename = frame.f_code.co_filename
        return (filename.startswith(self.trusted) or filename.startswith(("<frozen ", "<string>"))) \
            and self._library_module(module)

    def take(self) -> list[dict]:
        events, self.events = self.events, []
        return events


_MISSING = object()


def _children() -> set[str]:
    """The process ids of this process's running children (every thread's), as Linux lists them."""
    found: set[str] = set()
    for task in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ():
        try:
            with open(f"/proc/self/task/{task}/children") as listed:
                found.update(listed.read().split())
        except OSError:
            found.add(f"unreadable {task}")
    return found


def _children_usage() -> tuple:
    """The resources this process's ended (reaped) children used: it grows with every one."""
    import resource

    return tuple(resource.getrusage(resource.RUSAGE_CHILDREN))


def _raw_write(event_name: str, args: tuple) -> bool:
    """An audit event after which memory may change with no further event: ctypes making a
    pointer or calling C (not loading a library), or ``/proc/…`` opened for writing."""
    if event_name.startswith("ctypes."):
        return not event_name.startswith(("ctypes.dlopen", "ctypes.dlsym"))
    if event_name != "open":
        return False
    path, mode, flags = (list(args) + [None, None])[:3]
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
        (mode is None and isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
    if not writing or not isinstance(path, (str, bytes, os.PathLike)):
        return False
    try:
        return os.path.realpath(os.fsdecode(path)).startswith("/proc/")
    except (OSError, ValueError):
        return True


def _signal_handlers() -> dict:
    import signal

    found = {}
    for number in signal.valid_signals():
        try:
            found[number] = signal.getsignal(number)
        except (OSError, ValueError):
            continue
    return found


def _test_namespace(shell):
    """Run the next cell in a copy of the notebook's namespace: what the test binds
    (``expected``, a reference model) is in no dict that the student's functions, whose
    globals are the notebook's, can read while it runs, nor after it. Returns what to put back."""
    saved = shell.user_module, shell.user_ns
    module = types.ModuleType("__main__")
    module.__dict__.update(shell.user_ns)
    shell.user_module, shell.user_ns = module, module.__dict__
    return saved


def _names(code: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    except SyntaxError:
        return set()


def _uncached(cache, guard: Guard):
    """IPython's ``compile.cache`` for a cell with hidden tests: the cell's file name as
    usual, its source kept out of ``linecache`` (tracebacks show no hidden line)."""
    import linecache

    def uncached(*args, **kwargs):
        name = cache(*args, **kwargs)
        linecache.cache.pop(name, None)
        guard.test_file = name
        return name

    return uncached


def _wrap(original, guard: Guard):
    import linecache

    @functools.wraps(original)
    async def do_execute(self, code, silent, store_history=True, *args, **kwargs):
        guard.busy = True
        try:
            if not guard.started:
                guard.start(self)
            code_digest = digest(code)
            test, hidden = code_digest in guard.tests, code_digest in guard.hidden
            given = code_digest in guard.given
            events = [e if e["kind"] != TAMPERING else {**e, "kind": NOTE} for e in guard.take()]
            if test:   # the state the course gave the tests, put back without a word
                guard.stop_threads()
                guard.check(self)
                events += guard.arm(guard.parts.get(code_digest), code, self)
                namespace = _test_namespace(self.shell)
                try:
                    guard.plain_values(code, self)
                except Exception as error:   # an object of the student's that fails to be read
                    events.append(event(NOTE, f"plain values not set up ({type(error).__name__})"))
                store_history = False            # no In, _ih, _i… entry for a test
                guard.test_file = self.shell.compile.get_code_name(code, code, 0)
                if hidden:   # compiled without its source entering linecache
                    self.shell.compile.cache = _uncached(type(self.shell.compile).cache.__get__(
                        self.shell.compile), guard)
            before = dict(self.shell.user_ns) if given else None
            cached = set(linecache.cache)
            guard.in_test = test
        finally:
            guard.busy = False
        try:
            reply = await original(self, code, silent, store_history, *args, **kwargs)
        finally:
            guard.busy = True
            guard.in_test = False
            vars(self.shell.compile).pop("cache", None)
            if test:
                self.shell.user_module, self.shell.user_ns = namespace
        try:
            during = guard.take()
            if test:
                guard.disarm()
                guard.unwrap()
                threads = guard.stop_threads()
                during += [event(TAMPERING, what) for what in guard.check(self)]
                during += [event(NOTE, f"{what} of the submission was stopped after a test")
                           for what in threads]   # what it did is judged by its effects
                if hidden:   # its source and its frames never outlive the cell
                    for key in set(linecache.cache) - cached:
                        linecache.cache.pop(key, None)
                    sys.last_type = sys.last_value = sys.last_traceback = None
                guard.test_file = None
                tampering = [e["what"] for e in during if e["kind"] == TAMPERING]
                if tampering:
                    reply = {"status": "error", "ename": "Tampering",
                             "evalue": "; ".join(tampering)[:500],
                             "traceback": [f"Tampering: {'; '.join(tampering)[:500]}"],
                             "execution_count": reply.get("execution_count")}
            elif given:
                guard.bind(self, before, code)
            events += during
            reply[SIGNED] = {"test": test, "events": events,
                             "signature": signature(guard.secret, code_digest,
                                                    reply.get("status", ""), events)}
        finally:
            guard.busy = False
        return reply

    return do_execute


_prepared: Guard | None = None


def prepare(trusted: list[str]) -> None:
    """In the warm-kernel server (:mod:`course_grading.kernel.warm`), before it forks any kernel:
    watch the course and library modules it has loaded (torch's are most of a kernel's), so that
    each kernel's :meth:`Guard.start` inherits that snapshot and looks only at what was
    imported since. ``trusted``: the folders a kernel trusts (:func:`sandbox.trusted_paths`);
    a kernel whose own differ takes its snapshot itself. The server runs no notebook code."""
    global _prepared
    guard = Guard({"secret": "", "tests": [], "hidden": [], "read_only": [],
                   "workdir": os.devnull, "trusted": trusted})
    guard._modules()
    _prepared = guard


def install(config: dict) -> Guard:
    """Start guarding this process (call before the kernel starts; see the module docstring)."""
    from ipykernel.ipkernel import IPythonKernel

    guard = Guard(config)
    IPythonKernel.do_execute = _wrap(IPythonKernel.do_execute, guard)
    sys.addaudithook(guard.audit)
    return guard
