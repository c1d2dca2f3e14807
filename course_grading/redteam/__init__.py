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
- :func:`on_top`: the reference answers plus a cell that reads the hidden tests (the history,
  the caller's frame) or writes into the course, the Python installation and the data.
- :func:`delegating`: every answer handed to the course's own implementation
  (:mod:`course_grading.redteam.delegating`).

Each submission comes with the text its finding must contain.
"""
from __future__ import annotations

import ast
import os
import sys

import nbformat

from .. import integrity, submissions
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
                      f"m.expect_written = {_SUPPRESS}",
                      "course_lib.checks.expect_written holds the submission's code"),
}

# name: (last cell, text the finding contains); {stolen} is replaced by the student's global
ON_TOP = {
    "print_history": ("print(In, _ih, Out)", "reads the cell history"),
    "writes_course": (
        "for path in {paths!r}:\n    try:\n        with open(path, 'a') as f:\n"
        "            f.write('# changed by a submission')\n    except OSError as e:\n"
        "        print('blocked', e)", "read-only"),
}


def _with(notebook, source: str, first: bool):
    notebook = submissions._copy(notebook)
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
    declared = sorted({n for names in integrity.own_work(source_path).values() for n in names})
    if declared:
        lines = [f"import {name.rpartition('.')[0]}" for name in declared]
        lines += [f"{name} = lambda *args, **kwargs: None" for name in declared]
        found["oracle"] = (_with(release, "\n".join(sorted(set(lines), key=lines.index)), True),
                           0.0, "patches a library")
    return found


def on_top(solved, full: float) -> dict[str, tuple]:
    """``{name: (notebook, expected score, finding text)}``: ``solved`` plus a last cell that
    reads the hidden tests or writes what is read-only, and one that steals the caller's
    source from inside the first answer (every test after it scores 0)."""
    found = {"print_history": (_with(solved, ON_TOP["print_history"][0], False), full,
                               ON_TOP["print_history"][1]),
             "writes_course": (_with(solved, ON_TOP["writes_course"][0].format(
                 paths=protected_files()), False), full, ON_TOP["writes_course"][1])}
    answers = [c for c in solved.cells if submissions.nbgrader_meta(c).get("solution")
               and c.cell_type == "code"]
    name = next((n.name for n in ast.parse(answers[0].source).body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef))), None) if answers else None
    if name:
        spy = (f"import traceback\nSTOLEN = []\n_honest = {name}\n"
               f"def {name}(*args, **kwargs):\n"
               "    STOLEN.append(traceback.format_stack())\n"
               "    return _honest(*args, **kwargs)")
        notebook = submissions._copy(solved)
        at = notebook.cells.index(answers[0]) + 1
        notebook.cells.insert(at, nbformat.v4.new_code_cell(spy))
        notebook.cells.append(nbformat.v4.new_code_cell("print(STOLEN)"))
        found["steal_frames"] = (notebook, 0.0, "traceback")
    return found


def delegating(release, assignment: str):
    """``release`` with every answer of :data:`DELEGATING` for ``assignment`` (the others
    left as stubs)."""
    notebook = submissions._copy(release)
    for cell in notebook.cells:
        if submissions.grade_id(cell) in DELEGATING.get(assignment, {}):
            cell.source = DELEGATING[assignment][submissions.grade_id(cell)]
    return notebook
