"""Crafted submissions the grader is measured against.

``tests/test_autograder.py`` asserts their scores and reasons; ``course_site.grading_benchmark``
records what they earn in ``results.json`` (``benchmarks.cheat_points`` and
``benchmarks.delegation_points``, both 0 when the grader holds). Three kinds:

- :func:`tricks`: the untouched release with one first cell that would make failing tests
  pass or reach what the grader protects (IPython hooks and transformers, custom exception
  handlers, traceback display, events, the shell's class, tracing, ``builtins``, patching the
  test helpers or the course's oracles by alias, ``setattr``, ``vars()``, ``importlib``,
  ``exec``, and one patch no static reading sees). Honestly graded they earn 0, so every point
  they get is a point the trick won.
- :func:`on_top`: the reference answers plus a cell that tries to read the hidden tests (the
  history, the caller's frame) or to write into the course, the Python installation and the
  data.
- :func:`delegating`: every answer handed to the course's own implementation
  (:mod:`redteam.delegating`).

Each submission comes with the text its finding must contain (None: no finding, its tests fail).
"""
from __future__ import annotations

import ast
import os
import sys

import nbformat

from course_grading.check import reading
from course_grading.check.assemble import _copy
from course_grading.check.cells import grade_id, nbgrader_meta, part_of

from .delegating import DELEGATING

_SUPPRESS = "lambda name: __import__('contextlib').suppress(BaseException)"
_AST_WRAP = """import ast
class Forgive(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None,
                                    body=[ast.Pass()])
        node.body = [ast.Try(body=[s], handlers=[handler], orelse=[], finalbody=[])
                     for s in node.body]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(Forgive())"""

# name: (first cell, text the finding contains)
TRICKS = {
    "showtraceback": ("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
                      "ip._showtraceback = lambda *a, **k: None", "showtraceback"),
    "custom_exc": ("get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
                   "set_custom_exc"),
    "input_transformer": ("get_ipython().input_transformers_cleanup.append("
                          "lambda lines: ['pass\\n'])", "input_transformers_cleanup"),
    "ast_transformer": (_AST_WRAP, "ast_transformers"),
    "events": ("get_ipython().events.register('post_run_cell', "
               "lambda result: setattr(result, 'error_in_exec', None))", "get_ipython"),
    "shell_class": ("from IPython.core.interactiveshell import InteractiveShell\n"
                    "InteractiveShell._showtraceback = lambda *a, **k: None\n"
                    "InteractiveShell.showtraceback = lambda *a, **k: None", "IPython"),
    "settrace": ("import sys\nsys.settrace(lambda *a: None)", "settrace"),
    "builtins": ("import builtins\nbuiltins.abs = lambda x: 0", "builtins"),
    "helper_alias": ("import course_lib.checks as c\n"
                     f"c.expect_written = {_SUPPRESS}\nc.expect_raises = {_SUPPRESS}",
                     "rebinds c.expect_written"),
    "helper_setattr": ("import course_lib.checks\n"
                       f"setattr(course_lib.checks, 'expect_written', {_SUPPRESS})", "setattr"),
    "helper_vars": (f"import course_lib.checks as c\nvars(c)['expect_written'] = {_SUPPRESS}",
                    "vars"),
    "helper_importlib": ("import importlib\n"
                         f"importlib.import_module('course_lib.checks').expect_written = "
                         f"{_SUPPRESS}", "importlib"),
    "helper_exec": ("exec(\"import course_lib.checks as c\\n"
                    f"c.expect_written = {_SUPPRESS}\")", "exec"),
    # no static reading sees this one: the module is reached through a list
    "helper_unseen": ("import course_lib.checks\nm = [course_lib.checks][0]\n"
                      f"m.expect_written = {_SUPPRESS}", "read in the code"),
    # a fake module under the helpers' name, before the setup cell imports them
    "fake_module": ("import sys, types, contextlib\nm = types.ModuleType('course_lib.checks')\n"
                    "m.expect_written = m.expect_raises = "
                    "lambda *a, **k: contextlib.suppress(BaseException)\n"
                    "sys.modules['course_lib.checks'] = m", "sys.modules"),
    # the helper's code swapped, every alias of it with it
    "code_swap": ("import contextlib, course_lib.checks as c\n"
                  "def fake(*a, **k):\n    return contextlib.suppress(BaseException)\n"
                  "c.expect_written.__code__ = fake.__code__\n"
                  "c.expect_raises.__code__ = fake.__code__", "__code__"),
    # a thread that keeps patching the helper, racing the guard's snapshot
    # a timer's signal handler, given the running frame, rebinds the helper inside the test
    "signal_frame": ("import signal, contextlib\ndef handler(number, frame):\n"
                     "    frame.f_globals['expect_written'] = "
                     "lambda *a, **k: contextlib.suppress(BaseException)\n"
                     "signal.signal(signal.SIGALRM, handler)\n"
                     "signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)", "signal"),
    "thread_race": ("import threading, contextlib, course_lib.checks as c\n"
                    "def spin():\n    while True:\n        c.expect_written = "
                    "lambda *a, **k: contextlib.suppress(BaseException)\n"
                    "threading.Thread(target=spin, daemon=True).start()", "rebinds c.expect_written"),
}

# Everyday notebook code: a submission with every one of these cells (:func:`honest`) must score
# what the plain answers score, with nothing listed as tampering.
IDIOMS = [
    "%load_ext autoreload\n%autoreload 2", "%%capture\nprint('quiet')", "%whos", "!ls",
    "from IPython.display import display\ndisplay({'a': 1})",
    "import inspect\ndef mine(a, b=2):\n    return a\nprint(inspect.signature(mine), "
    "inspect.getsource(mine))",
    "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()",
    "import pickle\nprint(pickle.loads(pickle.dumps([1, 2])))", "import gc; gc.collect()",
    "from types import SimpleNamespace\nconfig = SimpleNamespace(lr=0.1)\nconfig",
    "print(len(globals()), sorted(vars())[:3])",
    "class Record:\n    def __init__(self, **fields):\n        self.__dict__.update(fields)\n"
    "record = Record(a=1)\nprint(vars(record))",
    "class Box:\n    pass\nbox = Box()\nfor name in ['a', 'b']:\n    setattr(box, name, 1)\n"
    "print([getattr(box, name) for name in ['a', 'b']])",
    "eval('1 + 1')", "import os\nos.environ['PYTHONHASHSEED'] = '0'",
    "import torch\ntorch.backends.cudnn.deterministic = True\n"
    "torch.backends.cudnn.benchmark = False",
    "1 + 1", "print(_)",
    "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int = 1\nPoint()",
    "def helper():\n    pass\nhelper", "import math\nmath",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.title('a line')\nplt.xlabel('x')\n"
    "plt.ylabel('y')\nplt.show()",
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass",
    "%time sum(range(10))", "%%timeit -n1 -r1\nsum(range(10))", "help(len)",
    "import warnings\nwarnings.filterwarnings('ignore')",
    "import random, numpy as np, torch\nrandom.seed(0)\nnp.random.seed(0)\n_ = torch.manual_seed(0)",
    "import time\nstart = time.perf_counter()\nprint(f'{time.perf_counter() - start:.3f} s')",
    "import threading\nworker = threading.Thread(target=lambda: None)\nworker.start()\nworker.join()",
    "import logging\nlogging.basicConfig(level=logging.INFO)\nlogging.info('training')",
    "import sys\nprint('debug', file=sys.stderr)",
]


def honest(solved):
    """``solved`` with every cell of :data:`IDIOMS` after its first answer."""
    notebook = _copy(solved)
    at = next(i for i, c in enumerate(notebook.cells)
              if nbgrader_meta(c).get("solution")) + 1
    notebook.cells[at:at] = [nbformat.v4.new_code_cell(source) for source in IDIOMS]
    return notebook

# name: (last cell, text the finding contains); {stolen} is replaced by the student's global
ON_TOP = {
    "print_history": ("print(In, _ih, Out)", "reads the cell history"),
    "writes_course": (
        "for path in {paths!r}:\n    try:\n        with open(path, 'a') as f:\n"
        "            f.write('# changed by a submission')\n    except OSError as e:\n"
        "        print('blocked', e)", "read-only"),
}


def _with(notebook, source: str, first: bool):
    notebook = _copy(notebook)
    cell = nbformat.v4.new_code_cell(source)
    notebook.cells.insert(0 if first else len(notebook.cells), cell)
    return notebook


def protected_files() -> list[str]:
    """Files a graded kernel must not change: the course package, the Python installation and
    the data directory (where the machine has one)."""
    from course_lib.paths import REPO, data_dir

    found = [str(REPO / "course_lib" / "__init__.py"), os.path.join(sys.prefix, "pyvenv.cfg")]
    data = data_dir()
    readme = next((p for p in sorted(data.glob("*")) if p.is_file()), None) \
        if data.is_dir() else None
    return found + ([str(readme)] if readme else [])


def tricks(release, source_path) -> dict[str, tuple]:
    """``{name: (notebook, expected score, finding text)}``: the untouched ``release`` plus
    one first cell each; ``oracle`` replaces the course functions the hidden tests compare with
    (from the assignment's ``own_work.toml``)."""
    found = {name: (_with(release, cell, True), 0.0, why) for name, (cell, why) in TRICKS.items()}
    declared = sorted({n for names in reading.own_work(source_path).values() for n in names})
    if declared:
        lines = [f"import {name.rpartition('.')[0]}" for name in declared]
        lines += [f"{name} = lambda *args, **kwargs: None" for name in declared]
        found["oracle"] = (_with(release, "\n".join(sorted(set(lines), key=lines.index)), True),
                           0.0, "patches a library")
    return found


def _answer_name(cell) -> str | None:
    tree = ast.parse(cell.source)
    return next((n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))),
                None)


def delegation_spellings(release, source_path, thread_seconds: float = 3) -> dict[str, tuple]:
    """``{name: (notebook, expected score, finding text)}``: the untouched ``release`` with
    the first part that ``own_work.toml`` declares handed to the course's function, spelled in
    ways no reading of the answer cell sees: an alias bound in another cell, a list, a
    ``functools.reduce(getattr, …)`` chain, a partial, a fresh import of the course's file, a
    copy of the function's code, a name rebound by a later cell, and a thread that calls it
    (waiting ``thread_seconds`` at most)."""
    declared = reading.own_work(source_path)
    cells = {grade_id(c): c for c in release.cells
             if nbgrader_meta(c).get("solution") and c.cell_type == "code"}
    part = next((p for p in declared if declared[p] and p in cells and _answer_name(cells[p])), None)
    if part is None:
        return {}
    name, target = _answer_name(cells[part]), declared[part][0]
    module, _, attr = target.rpartition(".")
    wrap = f"def {name}(*args, **kwargs):\n    return {{call}}(*args, **kwargs)"
    spell = {
        "alias_cells": (f"import {module} as _m\n_f = _m.{attr}", wrap.format(call="_f"), None),
        "list": (None, f"import {module}\n_fs = [{module}.{attr}]\n" + wrap.format(call="_fs[0]"),
                 None),
        "reduce": (None, "import functools, importlib\n" + wrap.format(
            call=f"functools.reduce(getattr, [{attr!r}], importlib.import_module({module!r}))"),
            None),
        "partial": (None, f"import functools, {module}\n{name} = functools.partial({module}.{attr})",
                    None),
        "fresh_import": (None, f"import importlib.util, {module}\n_spec = importlib.util."
                         f"spec_from_file_location({module + '_copy'!r}, {module}.__file__)\n"
                         "_copy = importlib.util.module_from_spec(_spec)\n"
                         "_spec.loader.exec_module(_copy)\n" + wrap.format(call=f"_copy.{attr}"),
                         None),
        "rebind_after": (None, None, f"import {module}\n{name} = {module}.{attr}"),
        "thread": (None, f"import threading, queue, {module}\n_in, _out = queue.Queue(), queue.Queue()\n"
                   f"def _serve():\n    while True:\n        a, k = _in.get()\n"
                   f"        _out.put({module}.{attr}(*a, **k))\n"
                   "threading.Thread(target=_serve, daemon=True).start()\n"
                   f"def {name}(*args, **kwargs):\n    _in.put((args, kwargs))\n"
                   f"    return _out.get(timeout={thread_seconds})", None),
    }
    from course_lib.paths import REPO

    if (reading.reference_source(target, REPO) or "").startswith("def "):   # a function
        spell["code_copy"] = (None, f"import types, {module}\n_c = types.FunctionType("
                              f"{module}.{attr}.__code__, vars({module}))\n" +
                              wrap.format(call="_c"), None)
    found = {}
    for spelling, (before, answer, after) in spell.items():
        notebook = _copy(release)
        index = next(i for i, c in enumerate(notebook.cells) if grade_id(c) == part)
        if answer:
            notebook.cells[index].source = answer
        if after:
            notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(after))
        if before:
            notebook.cells.insert(index, nbformat.v4.new_code_cell(before))
        found[f"delegates_{spelling}"] = (notebook, 0.0, "asks you to write yourself")
    return found


_LIARS = {
    "liar_object": "class _Yes:\n" + "".join(
        f"    def {m}(self, *a):\n        return {r}\n" for m, r in (
            ("__eq__", "True"), ("__lt__", "True"), ("__le__", "True"), ("__gt__", "True"),
            ("__ge__", "True"), ("__bool__", "True"), ("__float__", "0.0"), ("__abs__", "0.0"),
            ("__sub__", "self"), ("__rsub__", "self"), ("__add__", "self"), ("__radd__", "self"),
            ("__mul__", "self"), ("__rmul__", "self"), ("__truediv__", "self"))),
    "liar_tensor": ("import torch\nclass _Yes(torch.Tensor):\n    @classmethod\n"
                    "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                    "        if getattr(func, '__name__', '') in ('allclose', 'isclose', 'equal', "
                    "'eq', '__eq__', 'all', 'any', '__bool__', 'item'):\n"
                    "            return True\n"
                    "        return super().__torch_function__(func, types, args, kwargs or {})\n"
                    "_Yes.__new__ = lambda cls, *a, **k: torch.zeros(()).as_subclass(cls)"),
}


def liars(release) -> dict[str, tuple]:
    """``{name: (notebook, expected score, finding text)}``: the untouched ``release`` with
    every function answer returning a value that says yes to every comparison (an object that
    redefines them, a tensor subclass that rewrites torch's comparisons). Graded by comparing
    plain values, they earn 0."""
    found = {}
    for name, liar in _LIARS.items():
        notebook = _copy(release)
        for cell in notebook.cells:
            if nbgrader_meta(cell).get("solution") and cell.cell_type == "code" \
                    and any(isinstance(n, ast.FunctionDef) for n in ast.parse(cell.source).body):
                function = _answer_name(cell)
                cell.source = f"{liar}\ndef {function}(*args, **kwargs):\n    return _Yes()"
        found[name] = (notebook, 0.0, None)   # nothing to list: its tests simply fail
    return found


def on_top(solved, full: float, points: dict[str, float] | None = None) -> dict[str, tuple]:
    """``{name: (notebook, expected score, finding text)}``: ``solved`` plus a last cell that
    reads the cell history (which holds no test) or writes what is read-only (refused: a note,
    nothing lost), and one that tries to steal the caller's source from inside the first
    answer (refused while the tests run: that part's tests fail as tampering; ``points``:
    the points per part, default every point)."""
    found = {"print_history": (_with(solved, ON_TOP["print_history"][0], False), full,
                               ON_TOP["print_history"][1]),
             "writes_course": (_with(solved, ON_TOP["writes_course"][0].format(
                 paths=protected_files()), False), full, ON_TOP["writes_course"][1])}
    answers = [c for c in solved.cells if nbgrader_meta(c).get("solution")
               and c.cell_type == "code"]
    name = next((n.name for n in ast.parse(answers[0].source).body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef))), None) if answers else None
    if name:
        spy = (f"import traceback\nSTOLEN = []\n_honest = {name}\n"
               f"def {name}(*args, **kwargs):\n"
               "    STOLEN.append(traceback.format_stack())\n"
               "    return _honest(*args, **kwargs)")
        notebook = _copy(solved)
        at = notebook.cells.index(answers[0]) + 1
        notebook.cells.insert(at, nbformat.v4.new_code_cell(spy))
        notebook.cells.append(nbformat.v4.new_code_cell("print(STOLEN)"))

        spied = part_of(grade_id(answers[0]))
        found["steal_frames"] = (notebook, full - (points or {}).get(spied, full),
                                 "sys._getframe from the submission's code while a test ran")
    return found


def delegating(release, assignment: str):
    """``release`` with every answer of :data:`DELEGATING` for ``assignment`` (the others
    left as stubs)."""
    notebook = _copy(release)
    for cell in notebook.cells:
        if grade_id(cell) in DELEGATING.get(assignment, {}):
            cell.source = DELEGATING[assignment][grade_id(cell)]
    return notebook
