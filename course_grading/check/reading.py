"""What a submission's own code may not do, read from its source before it runs.

Every code cell a student can change (answers, their own cells, the release's try-it cells) is
parsed as IPython would run it (magics become calls) and checked for two things:

- **tricks** (:func:`tricks`): code that changes how the kernel runs, transforms, traces or
  reports later cells, or patches the libraries and helpers the tests use, or reads what the
  grader keeps from the student (the cell history, frames, tracebacks). The categories and
  their spellings are in ``_NAMES``, ``_MODULES``, ``_ATTRIBUTES`` and ``_DUNDERS``.
- **delegation** (:func:`delegations`): an answer that calls, aliases, subclasses, wraps or
  re-imports a course function its part asks the student to write, directly or through a name
  one of the student's own cells bound to it. Each assignment lists those functions in
  ``own_work.toml`` next to its source notebook (:func:`own_work`). Everything else in
  ``course_lib`` (data, samplers, models, plots, and the course's version of *another* part,
  which later parts may use) stays usable.

Both readings are notes for the instructor and never cost a point by themselves: ordinary
notebooks use ``inspect``, ``globals()`` or ``%autoreload``, and a determined student spells a
trick in a way no parser sees. Points are decided by what the code does, which the kernel's
:mod:`course_grading.kernel.guard` observes (:func:`course_grading.check.verdict.police`): tampering while a test runs fails that
test, and a call of the course's implementation from the submission while a part's tests run
scores the part 0. This module never runs the code it reads and never imports ``torch``.
"""
from __future__ import annotations

import ast
import difflib
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


OWN_WORK_FILE = "own_work.toml"

# Names whose use reaches the kernel, the interpreter or the cell history.
_NAMES = {
    "get_ipython": "reaches the IPython shell",
    "__IPYTHON__": "reaches the IPython shell",
    "__builtins__": "reaches the interpreter's builtins",
    "__import__": "imports by a computed name",
    "exec": "runs code built at run time",
    "eval": "runs code built at run time",
    "compile": "compiles code at run time",
    "globals": "reads or rewrites the namespace by name",
    "vars": "reads or rewrites a namespace by name",
    "locals": "reads a namespace by name",
    "breakpoint": "starts a debugger",
    "In": "reads the cell history", "Out": "reads the cell history",
    "_ih": "reads the cell history", "_oh": "reads the cell history",
    "_dh": "reads the cell history", "_sh": "reaches the IPython shell",
}

_HISTORY = re.compile(r"^_(i{1,3}|i\d+|\d+|_{1,2})?$")   # _, __, ___, _i, _ii, _i7, _7

# Modules whose import alone is a trick: the kernel, the interpreter's internals, code from
# strings or bytes, frame and traceback access, the grader and test tools.
_MODULES = {
    **dict.fromkeys(["IPython", "ipykernel", "jupyter_client", "traitlets", "zmq",
                     "comm", "matplotlib_inline"], "reaches the kernel"),
    **dict.fromkeys(["builtins", "importlib", "imp", "runpy", "code", "codeop", "types",
                     "site", "sitecustomize"], "reaches the interpreter's import or code machinery"),
    **dict.fromkeys(["ctypes", "cffi", "gc", "atexit", "faulthandler", "signal", "sys.monitoring"],
                    "reaches the interpreter's internals"),
    **dict.fromkeys(["inspect", "traceback", "linecache", "dis", "tracemalloc", "bdb", "pdb",
                     "trace", "profile", "cProfile"],
                    "reads frames, tracebacks or source"),
    **dict.fromkeys(["pickle", "marshal", "shelve", "dill", "cloudpickle", "copyreg", "_pickle"],
                    "loads code from bytes"),
    **dict.fromkeys(["unittest", "mock", "pytest", "_pytest", "nbgrader", "course_grading",
                     "nbclient", "nbformat", "sqlite3"], "reaches the grader or its test tools"),
}

# Attributes that are the kernel's or the interpreter's hooks, whatever object they hang on.
_ATTRIBUTES = {
    **dict.fromkeys(["settrace", "setprofile", "gettrace", "getprofile", "_getframe",
                     "_current_frames", "addaudithook", "excepthook", "displayhook",
                     "meta_path", "path_hooks", "path_importer_cache", "setrecursionlimit",
                     "setswitchinterval", "set_asyncgen_hooks", "call_tracing"],
                    "changes how the interpreter runs code"),
    **dict.fromkeys(["input_transformers_cleanup", "input_transformers_post",
                     "input_transformer_manager", "ast_transformers", "set_custom_exc",
                     "custom_exceptions", "CustomTB", "InteractiveTB", "SyntaxTB",
                     "showtraceback", "_showtraceback", "showsyntaxerror", "showindentationerror",
                     "run_cell", "run_cell_async", "run_code", "run_ast_nodes", "transform_cell",
                     "user_ns", "user_global_ns", "user_ns_hidden", "history_manager",
                     "register_magic_function", "run_line_magic", "run_cell_magic", "system",
                     "do_execute", "execute_request", "shell_handlers", "displayhook_class",
                     "builtin_trap", "display_trap", "ev", "ex"],
                    "changes how the kernel runs or reports cells"),
    **dict.fromkeys(["f_back", "f_globals", "f_locals", "f_code", "f_builtins", "f_trace",
                     "tb_frame", "tb_next", "gi_frame", "gi_code", "cr_frame", "cr_code",
                     "ag_frame", "co_consts", "co_code", "co_names"],
                    "reads frames or compiled code"),
    **dict.fromkeys(["attrgetter", "methodcaller"], "reaches attributes by computed names"),
}

# Dunder attributes that open a way around the other rules (others, like __init__, are fine).
_DUNDERS = {"__dict__", "__globals__", "__code__", "__closure__", "__builtins__",
            "__subclasses__", "__bases__", "__base__", "__mro__", "__defaults__",
            "__kwdefaults__", "__setattr__", "__delattr__", "__getattribute__", "__reduce__",
            "__reduce_ex__", "__traceback__", "__loader__", "__spec__", "__import__",
            "__wrapped__", "__self__", "__func__", "__objclass__", "__annotations__",
            "__set_name__", "__init_subclass__", "__class_getitem__", "__getstate__",
            "__setstate__", "__module__"}

_ALLOWED_MAGICS = {"matplotlib", "time", "timeit"}   # the code given to %time is read too

# Roots whose attributes are patched even when the cell did not import them (the kernel's
# own names, and the names the course's setup cells import).
_LIBRARY_ROOTS = {"sys", "torch", "numpy", "np", "math", "random", "F", "nn", "course_lib",
                  "grading", "checks", "expect_raises", "expect_written", "functools", "operator",
                  "itertools", "collections", "copy", "os", "time", "warnings", "threading"}


@dataclass(frozen=True)
class Hit:
    """One thing a cell does that it may not: ``line`` of the cell and why."""
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def python_source(cell_source: str) -> str:
    """The cell as IPython runs it: magics and shell escapes become ``get_ipython()`` calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(cell_source)
    except Exception:   # the kernel fails on it too: nothing runs
        return cell_source


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _magic(node: ast.Call) -> str | None:
    """The name of ``get_ipython().run_line_magic('name', …)`` (or ``'!'`` for a shell escape)."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) \
            and _dotted(func.value.func) == "get_ipython":
        if func.attr == "system" or func.attr == "getoutput":
            return "!"
        if func.attr in ("run_line_magic", "run_cell_magic") and node.args \
                and isinstance(node.args[0], ast.Constant):
            return str(node.args[0].value)
    return None


def imported_names(tree: ast.AST) -> dict[str, str]:
    """``{name bound in the cell: module or object it stands for}`` for every import, and for
    plain aliases of those names (``t = torch``)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):   # t = torch, f = course_lib.bayes.posterior
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            full = _resolve(node.value, bound)
            if full:
                bound[node.targets[0].id] = full
    return bound


def _resolve(node: ast.AST, bound: dict[str, str]) -> str | None:
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    if head not in bound:
        return None
    return bound[head] + (f".{rest}" if rest else "")


def _module_hit(name: str) -> str | None:
    for module, why in _MODULES.items():
        if name == module or name.startswith(module + "."):
            return f"imports {name}: {why}"
    return None


def tricks(cell_source: str, libraries: dict[str, str] | None = None) -> list[Hit]:
    """Every trick in a cell (see the module docstring), in line order.

    Args:
        libraries: names the notebook's other cells bound to imports (``{"np": "numpy"}``);
            storing into their attributes counts as patching a library.
    """
    try:
        tree = ast.parse(python_source(cell_source))
    except SyntaxError:
        return []    # it does not run, so it cannot do anything
    bound = {**(libraries or {}), **imported_names(tree)}
    hits: list[Hit] = []

    def hit(node, what):
        hits.append(Hit(getattr(node, "lineno", 0), what))

    allowed = {id(inner) for node in ast.walk(tree)
               if isinstance(node, ast.Call) and _magic(node) in _ALLOWED_MAGICS
               for inner in ast.walk(node)}
    for node in ast.walk(tree):   # %time code, %%timeit … cell: the code they run
        if isinstance(node, ast.Call) and _magic(node) in _ALLOWED_MAGICS:
            for arg in node.args[1:]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    hits += [Hit(node.lineno, h.what) for h in tricks(arg.value, bound)]
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (why := _module_hit(alias.name)):
                    hit(node, why)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if (why := _module_hit(module)):
                hit(node, why)
            for alias in node.names:
                if alias.name == "*" and module.split(".")[0] not in ("math",):
                    hit(node, f"star-imports {module}: every name it holds may shadow a test's")
                elif (why := _module_hit(f"{module}.{alias.name}")) and not _module_hit(module):
                    hit(node, why)
                elif module == "sys" and alias.name in _ATTRIBUTES | {"modules": ""}:
                    hit(node, f"imports sys.{alias.name}: changes how the interpreter runs code")
        elif isinstance(node, ast.Name):
            if node.id in _NAMES:
                hit(node, f"uses {node.id}: {_NAMES[node.id]}")
            elif isinstance(node.ctx, ast.Load) and _HISTORY.match(node.id):
                hit(node, f"uses {node.id}: reads the cell history")
        elif isinstance(node, ast.Attribute):
            if node.attr in _ATTRIBUTES:
                hit(node, f"uses .{node.attr}: {_ATTRIBUTES[node.attr]}")
            elif node.attr in _DUNDERS or (node.attr == "__class__" and
                                           isinstance(node.ctx, (ast.Store, ast.Del))):
                hit(node, f"uses .{node.attr}: reaches an object's internals")
            elif node.attr == "modules" and _resolve(node.value, bound) == "sys":
                hit(node, "uses sys.modules: swaps or patches imported modules")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            magic = _magic(node)
            if magic == "!":
                hit(node, "runs a shell command")
            elif magic is not None and magic not in _ALLOWED_MAGICS:
                hit(node, f"runs the IPython magic %{magic}")
            if name in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
                attr = node.args[1]
                if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
                    hit(node, f"{name} with a computed attribute name")
                elif attr.value in _ATTRIBUTES or attr.value in _DUNDERS:
                    hit(node, f"{name}(…, {attr.value!r}): reaches an object's internals")
                elif name in ("setattr", "delattr") and _is_library(node.args[0], bound):
                    hit(node, f"{name}({ast.unparse(node.args[0])}, …): patches a library")
            if name in ("object.__setattr__", "type.__setattr__", "super.__setattr__"):
                hit(node, f"{name}: patches an object behind its back")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in _flatten(targets):
                if isinstance(target, (ast.Attribute, ast.Subscript)) and _is_library(target, bound):
                    hit(node, f"rebinds {ast.unparse(target)}: patches a library or test helper")
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            pass   # a student's own globals are theirs
    return sorted(set(hits), key=lambda h: (h.line, h.what))


def _flatten(targets):
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flatten(target.elts)
        else:
            yield target


def _is_library(node: ast.AST, bound: dict[str, str]) -> bool:
    """Whether ``node`` (an object or an attribute/item of one) is rooted at an imported name."""
    root = _root(node)
    return root is not None and (root in bound or root in _LIBRARY_ROOTS)


@lru_cache(maxsize=None)
def _own_work(path: str) -> dict[str, tuple[str, ...]]:
    parts = tomllib.loads(Path(path).read_text()).get("parts", {})
    return {part: tuple(names) for part, names in parts.items()}


def own_work(source_notebook: Path | str) -> dict[str, tuple[str, ...]]:
    """``{part: course functions the part asks the student to write}`` from the
    ``own_work.toml`` beside ``source_notebook`` (empty without one)."""
    path = Path(source_notebook).with_name(OWN_WORK_FILE)
    return _own_work(str(path)) if path.is_file() else {}


def delegations(cell_source: str, declared: dict[str, tuple[str, ...]],
                libraries: dict[str, str] | None = None) -> list[tuple[str, Hit]]:
    """``(course function, where)`` for every use in a cell of a course function ``declared``
    lists: a call, an alias, a base class, a wrapper or an import of it, under any name
    (``libraries``: what the names of the notebook's read-only cells stand for)."""
    try:
        tree = ast.parse(python_source(cell_source))
    except SyntaxError:
        return []
    wanted = {name for names in declared.values() for name in names}
    if not wanted:
        return []
    bound = {**(libraries or {}), **imported_names(tree)}
    found = []

    def match(full: str | None):
        if full is None:
            return None
        for name in wanted:
            if full == name or full.startswith(name + "."):
                return name
            # a re-export: course_lib.continual.EWC for course_lib.continual.ewc.EWC
            if full.startswith("course_lib.") and full.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1] \
                    and name.startswith(full.rsplit(".", 1)[0] + "."):
                return name
        return None

    for node in ast.walk(tree):
        full = None
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (name := match(f"{node.module}.{alias.name}")):
                    found.append((name, Hit(node.lineno, f"imports {name}")))
            continue
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            full = _resolve(node, bound)
        elif isinstance(node, ast.Call) and _dotted(node.func) == "getattr" and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant):
            base = _resolve(node.args[0], bound)
            full = f"{base}.{node.args[1].value}" if base else None
        if (name := match(full)):
            found.append((name, Hit(getattr(node, "lineno", 0), f"uses {name}")))
    unique = {(n, h.line): (n, h) for n, h in found}
    return [unique[k] for k in sorted(unique, key=lambda k: (k[1], k[0]))]


def _names_used(source: str) -> set[str]:
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _bindings(source: str, declared: dict[str, tuple[str, ...]],
              libraries: dict[str, str]) -> dict[str, str]:
    """``{name: course function}`` for the names a cell binds (imports, assignments, functions,
    classes) whose definition uses a declared course function."""
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return {}
    found = {}
    for node in tree.body:
        uses = delegations(ast.unparse(node), declared, libraries)
        if not uses:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.asname or a.name.split(".")[0] for a in node.names]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in _flatten(targets) if isinstance(t, ast.Name)]
        else:
            names = []
        found.update({name: uses[0][0] for name in names})
    return found


def libraries_of(cell_sources) -> dict[str, str]:
    """Import bindings of a notebook's cells (the setup cells bind ``torch``, ``bayes`` …)."""
    bound: dict[str, str] = {}
    for source in cell_sources:
        try:
            bound.update(imported_names(ast.parse(python_source(source))))
        except SyntaxError:
            continue
    return bound


def _normalised(source: str) -> str:
    """Code without docstrings, comments or formatting, for a similarity ratio."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def similarity(answer: str, reference: str) -> float:
    """How much of ``answer``'s code is ``reference``'s (0 to 1), ignoring docstrings,
    comments and layout."""
    a, b = _normalised(answer), _normalised(reference)
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0


def verbatim(answer: str, reference: str) -> list[str]:
    """The docstring and comment lines of ``reference`` (20 characters or more) that
    ``answer`` holds word for word: the prose a paste keeps and an own answer does not."""
    import io
    import tokenize

    prose = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(reference).readline):
            if token.type == tokenize.COMMENT or (token.type == tokenize.STRING and
                                                  token.string.startswith(('"""', "'''"))):
                prose |= {line.strip(" #\"'") for line in token.string.splitlines()}
    except (tokenize.TokenError, SyntaxError):
        return []
    return sorted(line for line in prose if len(line) >= 20 and line in answer)


def reference_source(name: str, repo: Path) -> str | None:
    """The source of course function ``name`` (``course_lib.bayes.posterior``), read from its
    file without importing it."""
    module, _, attr = name.rpartition(".")
    base = repo / Path(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not path.is_file():
        return None
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == attr:
            return ast.get_source_segment(text, node)
    return None
