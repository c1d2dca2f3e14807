"""Pieces of the kernel's guard that run without a kernel: plain values
(:mod:`course_grading.plain`), what a name reaches and the trap that stands in for a course
function (:mod:`course_grading.tripwire`)."""
from __future__ import annotations

import dataclasses
import functools
import types

import pytest
import torch

from course_grading.kernel import plain, tripwire


def _student(cls) -> bool:   # here "the student's" means: defined in this test module
    return getattr(cls, "__module__", None) == __name__


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        if func is torch.allclose:
            return True
        return super().__torch_function__(func, types_, args, kwargs or {})


class Yes:
    def __eq__(self, other):
        return True

    def __float__(self):
        return 1.0


@dataclasses.dataclass
class Point:
    x: float = 1.0


class Net(torch.nn.Module):
    def __eq__(self, other):
        return True


def test_plain_values_compare_with_the_librarys_code():
    """Checks that a lying tensor subclass becomes a plain tensor (allclose then tells the
    truth), a float subclass a float, containers are converted item by item, an object that
    redefines == is refused, and honest objects (a dataclass, a module) pass unchanged."""
    liar = torch.zeros(3).as_subclass(Liar)
    assert torch.allclose(liar, torch.ones(3))          # the lie, unguarded
    value = plain.plain(liar, _student)
    assert type(value) is torch.Tensor and not torch.allclose(value, torch.ones(3))

    class Half(float):
        def __float__(self):
            return 0.5
    half = type("Half", (Half,), {"__module__": __name__})(2.0)
    assert float(half) == 0.5 and plain.plain(half, _student) == 2.0
    converted = plain.plain([liar, (liar, {"k": liar})], _student)
    assert type(converted[0]) is torch.Tensor and type(converted[1][1]["k"]) is torch.Tensor
    with pytest.raises(plain.NotPlain, match="__eq__"):
        plain.plain(Yes(), _student)
    point, net = Point(), Net()
    assert plain.plain(point, _student) is point and plain.plain(net, _student) is net


def test_reaches_sees_through_wrappers():
    """Checks that a course function is found behind an alias, a partial, a list, a student
    function's globals or closure, a copy of its code and a subclass; and not in unrelated
    code."""
    def course_fn(x):
        return x

    class CourseClass:
        pass

    objects = {id(course_fn): "course_fn", id(CourseClass): "CourseClass"}
    codes = {id(course_fn.__code__): "course_fn"}
    student = lambda f: getattr(f, "__module__", None) == __name__
    copy = types.FunctionType(course_fn.__code__, {})
    held = [course_fn]

    def wrapper(x):
        return held[0](x)

    def closure():
        return lambda x: course_fn(x)

    Sub = type("Sub", (CourseClass,), {"__module__": "__main__"})
    reach = lambda value: tripwire.reaches(value, objects, codes, [CourseClass], student)
    assert reach(course_fn) == "course_fn" and reach(functools.partial(course_fn))
    assert reach([1, course_fn]) and reach(copy) == "a copy of course_fn"
    assert reach(wrapper) and reach(closure()) and reach(Sub).startswith("a subclass")
    assert reach(lambda x: x + 1) is None and reach(CourseClass) == "CourseClass"


def test_trap_keeps_the_closure_of_a_method():
    """Checks that the trap code built for a method that uses super() (a free variable
    __class__) fits the method's closure, and calls the tripwire with its key."""
    class Base:
        def f(self):
            return "base"

    class Child(Base):
        def f(self):
            return super().f()

    trap = tripwire.trap_code(Child.f)
    assert trap is not None and trap.co_freevars == Child.f.__code__.co_freevars
    assert "__KEY__" in trap.co_consts


# A guard in a process of its own (its audit hook can never be taken off again): course
# functions (here the standard library's ``statistics``, a protected module) are changed in
# every way Python offers, then through ctypes, and each check must name and put back each one.
_CHECKS = r'''
import ctypes, json, os, statistics, subprocess, sys, sysconfig, types
from IPython.core.interactiveshell import InteractiveShell
from course_grading.kernel import guard

paths = sysconfig.get_paths()
trusted = [paths["stdlib"], paths["purelib"]]
if PREPARE:   # as the warm-kernel server does before it forks a kernel
    guard.prepare(trusted if PREPARE == "same" else [paths["stdlib"]])
prepared = guard._prepared
g = guard.Guard({"secret": "s", "tests": [], "hidden": [], "read_only": [],
                 "trusted": trusted, "workdir": os.getcwd()})
sys.addaudithook(g.audit)
shell = InteractiveShell.instance()
kernel = types.SimpleNamespace(shell=shell, session=types.SimpleNamespace())
g.start(kernel)
inherited = prepared is not None and id(statistics) in prepared.watch and \
    g.watch[id(statistics)] is prepared.watch[id(statistics)]
before = {n: (getattr(statistics, n).__code__, getattr(statistics, n).__defaults__)
          for n in ("mean", "fmean", "median")}
fake = (lambda *args, **kwargs: 0).__code__
report = {"quiet": g.check(kernel), "raw before": g.raw_memory}
statistics.mean.__code__ = fake
del statistics.fmean.__defaults__
report["python"] = g.check(kernel)
median = statistics.median
# find func_code's offset by reading the function's memory, then point it at the fake
offset = next(k * 8 for k in range(2, 16)
              if ctypes.c_void_p.from_address(id(median) + k * 8).value == id(median.__code__))
fakes = [(lambda *a: 1).__code__, (lambda *a: 2).__code__]   # for the swaps through /proc below
for code in [fake, *fakes]:   # a raw swap takes no reference, the check's put-back drops one
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(code))
ctypes.c_void_p.from_address(id(median) + offset).value = id(fake)
report["ctypes"] = [median.__code__ is fake, g.raw_memory, g.check(kernel)]


def quiet():   # the next way must set the flag itself (a second audit hook would be refused)
    g.raw_memory = False
    return g.check(kernel) == [] and not g.raw_memory


def swap(pid, function, code):   # point function's func_code at code through /proc/<pid>/mem
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
        mem.seek(id(function) + offset)
        mem.write(id(code).to_bytes(8, sys.byteorder))


was_quiet = quiet()
swap("self", statistics.variance, fakes[0])
report["proc mem"] = [was_quiet, statistics.variance.__code__ is fakes[0], g.check(kernel)]
was_quiet = quiet()
script = (f"import sys\nwith open('/proc/{os.getpid()}/mem', 'r+b', buffering=0) as m:\n"
          f"    m.seek({id(statistics.stdev) + offset})\n"
          f"    m.write(({id(fakes[1])}).to_bytes(8, sys.byteorder))")
subprocess.run([sys.executable, "-c", script], check=True)
report["child"] = [was_quiet, statistics.stdev.__code__ is fakes[1], g.check(kernel)]
report["restored"] = all((getattr(statistics, n).__code__, getattr(statistics, n).__defaults__)
                         == before[n] for n in before) and \
    statistics.variance.__code__ is not fakes[0] and statistics.stdev.__code__ is not fakes[1]
report["inherited"] = inherited
print(json.dumps(report))
'''


@pytest.mark.parametrize("prepare", ["", "same", "other"])
def test_check_puts_back_every_changed_function(tmp_path, prepare):
    """Checks that the guard's check names and puts back a course function whose code was
    assigned, whose defaults were deleted, and whose code was swapped in memory with no audit
    event for the write itself (through ctypes, through /proc/self/mem, and by another process
    through /proc/<pid>/mem): the check then compares every watched function. The same when
    the guard inherits the snapshot that :func:`guard.prepare` took before (as a kernel forked
    by the warm-kernel server does), and when it takes its own because the snapshot was taken
    under other trusted folders."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"PREPARE = {prepare!r}\n" + _CHECKS],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["inherited"] is (prepare == "same"), report
    assert report["quiet"] == [] and report["raw before"] is False, report
    assert sorted(report["python"]) == ["statistics.fmean's code was changed",
                                        "statistics.mean's code was changed"], report
    swapped, raw, changed = report["ctypes"]
    assert swapped and raw and changed == ["statistics.median's code was changed"], report
    for way, function in (("proc mem", "variance"), ("child", "stdev")):
        quiet, swapped, changed = report[way]
        assert quiet and swapped and changed == [f"statistics.{function}'s code was changed"], \
            (way, report)
    assert report["restored"], report
