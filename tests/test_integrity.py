"""The grader's reading of a submission's code (:mod:`course_grading.integrity`) and its
reading of the kernel's replies (:func:`course_grading.runner.judge`), without a kernel."""
from __future__ import annotations

import nbformat
import pytest

from course_grading import course as course_dir
from course_grading.check import assemble, cells, reading, run
from course_grading.check.verdict import penalise, police
from course_grading.kernel import guard
import redteam

REPO = course_dir.REPO
ASSIGNMENTS = course_dir.source_assignments(REPO)

# spelling → text of the finding it must give
TRICKS = {
    "get_ipython().set_custom_exc((BaseException,), print)": "set_custom_exc",
    "ip = get_ipython()\nip.showtraceback = print": "showtraceback",
    "get_ipython().input_transformers_cleanup.append(f)": "input_transformers_cleanup",
    "get_ipython().ast_transformers.append(t)": "ast_transformers",
    "get_ipython().events.register('post_run_cell', f)": "get_ipython",
    "import IPython": "imports IPython",
    "import sys\nsys.settrace(f)": "settrace",
    "import torch\ntorch.sys.setprofile(f)": "setprofile",
    "import builtins\nbuiltins.len = f": "builtins",
    "__builtins__.len = f": "__builtins__",
    "import torch as t\nx = t\nx.allclose = f": "rebinds x.allclose",
    "import numpy as np\nsetattr(np, 'allclose', f)": "setattr(np, …)",
    "import torch\nvars(torch)['allclose'] = f": "vars",
    "import importlib\nimportlib.import_module('torch')": "importlib",
    "exec('x = 1')": "exec",
    "getattr(torch, 'all' + 'close')": "computed attribute name",
    "f.__code__ = g.__code__": "__code__",
    "print(In)": "In",
    "print(_ih[-1])": "_ih",
    "print(_i3)": "_i3",
    "import inspect": "inspect",
    "import traceback": "traceback",
    "def f():\n    return g.__globals__": "__globals__",
    "%load_ext something": "%load_ext",
    "%time exec('x = 1')": "exec",
    "%%timeit\nprint(In)": "In",
    "!ls": "shell command",
    "from course_lib.checks import expect_raises\nexpect_raises.x = 1": "rebinds expect_raises.x",
    "import course_lib.checks as c\nc.expect_written = f": "rebinds c.expect_written",
    "from unittest import mock": "unittest",
}


@pytest.mark.parametrize("source, why", TRICKS.items(), ids=range(len(TRICKS)))
def test_every_trick_spelling_is_read(source, why):
    """Checks that each spelling of a trick gives a finding that names it."""
    hits = reading.tricks(source, {"torch": "torch"})
    assert any(why in h.what for h in hits), hits


def test_honest_code_is_not_a_trick():
    """Checks ordinary answers: models, attribute stores on one's own objects, loops with `_`,
    getattr with a literal name, %matplotlib, sys.stderr, and code that does not parse."""
    honest = ["import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.weight.data.zero_()\n"
              "model.bias.requires_grad = False\nfor _ in range(3):\n    pass\n"
              "w = getattr(model, 'weight')\nx, _ = 1, 2",
              "%matplotlib inline", "%timeit sum(range(10))", "import sys\nprint('debug', file=sys.stderr)",
              "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()",
              "this is not python ("]
    for source in honest:
        assert reading.tricks(source, {"torch": "torch"}) == [], source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_answers_are_clean(assignment):
    """Checks that the reference answers, the release's own cells and its try-it cells give no
    finding but, at most, the note that an answer is close to the course's code (which the
    reference answers are, by design: pcgrad's is 91% the same)."""
    release = nbformat.read(REPO / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    source_path = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    source = nbformat.read(source_path, as_version=4)
    graded = assemble.graded_notebook(assemble.solved(release, source), release, source)
    verdict = police(graded, reading.own_work(source_path), {}, REPO, release)
    assert verdict.parts == {}, verdict
    assert all("the same code as" in f.what and not f.costs for f in verdict.findings)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_delegation_is_read(assignment):
    """Checks that every delegating answer (call, alias, subclass, wrapper, re-import) is read
    as a note on its part, and that the reading alone costs nothing (the run decides)."""
    release = nbformat.read(REPO / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    source_path = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    source = nbformat.read(source_path, as_version=4)
    graded = assemble.graded_notebook(redteam.delegating(release, assignment), release, source)
    verdict = police(graded, reading.own_work(source_path), {}, REPO)
    noted = {f.cell for f in verdict.findings
             if "asks you to write yourself" in f.what and not f.costs}
    assert noted == set(redteam.DELEGATING[assignment]) and verdict.parts == {}


def test_delegation_spellings():
    """Checks the spellings of using a declared function, and that other course code is free."""
    declared = {"posterior_mean_var": ("course_lib.bayes.posterior",),
                "EWC": ("course_lib.continual.methods.EWC",)}
    given = {"bayes": "course_lib.bayes"}
    used = ["from course_lib.bayes import posterior as p", "x = bayes.posterior(y)",
            "import course_lib.bayes as b\nf = b.posterior", "f = getattr(bayes, 'posterior')",
            "from course_lib.continual import EWC\nclass Mine(EWC):\n    pass"]
    for source in used:
        assert reading.delegations(source, declared, given), source
    for source in ["from course_lib.bayes import sample_tasks", "bayes.marginal_log_likelihood"]:
        assert reading.delegations(source, declared, given) == [], source


def _tiny(cells):
    nb = nbformat.v4.new_notebook()
    for kind, gid, source, flags in cells:
        cell = nbformat.v4.new_code_cell(source)
        if gid:
            cell.metadata.nbgrader = {"grade_id": gid, **flags}
        nb.cells.append(cell)
    return nb


def test_only_what_the_run_saw_costs_points():
    """Checks the verdict's rule: what the reading sees (a trick, a delegation) is a note that
    costs nothing; the guard's delegation event zeroes its part, its tampering event is listed
    as costing, its note is not."""
    test = {"grade": True, "locked": True, "points": 1}
    nb = _tiny([("code", "a", "from course_lib.bayes import posterior\ndef a():\n    return posterior()",
                 {"solution": True}),
                ("code", "a-visible", "assert a()", test),
                ("code", "b", "def b():\n    return 1", {"solution": True}),
                ("code", "b-visible", "assert b()", test),
                ("code", None, "print(In)", {}),
                ("code", "c", "def c():\n    return 1", {"solution": True}),
                ("code", "c-visible", "assert c()", test)])
    declared = {"a": ("course_lib.bayes.posterior",)}
    read = police(nb, declared, {}, REPO)
    assert read.parts == {} and len(read.findings) == 2 and not any(f.costs for f in read.findings)
    runtime = {1: [guard.event(guard.DELEGATION, "posterior was called by a()", "a")],
               3: [guard.event(guard.TAMPERING, "builtins.len was replaced")],
               4: [guard.event(guard.NOTE, "sys.settrace from the submission's code")]}
    verdict = police(nb, declared, runtime, REPO)
    assert set(verdict.parts) == {"a"}
    costs = {f.cell: f.costs for f in verdict.findings if f.cell != "a"}
    assert costs == {"a-visible": True, "b-visible": True, "cell 4": False}, verdict.findings
    penalise(nb, verdict)
    failed = [cells.grade_id(c) for c in nb.cells
              if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed == ["a-visible"]


def test_replies_are_judged():
    """Checks that an unsigned reply is tampering, and that a signed reply saying `error` fails
    a test cell that shows no error (a silenced traceback)."""
    cell = nbformat.v4.new_code_cell("assert False")
    cell.metadata.nbgrader = {"grade_id": "t", "grade": True, "locked": True, "points": 1}
    assert run.judge(cell, {"status": "ok"}, "secret") != []
    assert cell.outputs[-1].ename == run.TAMPERING
    cell.outputs = []
    status, events = "error", []
    signed = {"test": True, "events": events, "signature": guard.signature(
        "secret", guard.digest(cell.source), status, events)}
    assert run.judge(cell, {"status": status, "ename": "AssertionError", "evalue": "",
                               guard.SIGNED: signed}, "secret") == []
    assert [o.ename for o in cell.outputs] == ["AssertionError"]
    forged = {**signed, "signature": guard.signature("guess", guard.digest(cell.source), "ok", [])}
    assert run.judge(cell, {"status": "ok", guard.SIGNED: forged}, "secret") != []


def test_similarity():
    """Checks that the similarity ratio ignores docstrings and layout and tells code apart."""
    a = 'def f(x):\n    """Doc."""\n    return (x + 1) * 2\n'
    assert reading.similarity(a, "def f(x):\n    return (x+1)*2") == 1.0
    assert reading.similarity(a, "def g(values):\n    total = 0\n    for v in values:\n"
                                   "        total += v\n    return total") < 0.6
