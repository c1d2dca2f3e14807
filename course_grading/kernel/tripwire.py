"""Own work, checked by effect: the course functions a part asks the student to write,
trip-wired while that part's tests run (:meth:`course_grading.kernel.guard.Guard.arm`).

A course function is trapped by swapping its ``__code__`` for a trap (:func:`trap_code`), so
every name, alias, list, partial, bound method or thread that holds the function object calls
the trap; :func:`reaches` finds a course function behind what a test names (a copy of its
code, a fresh import of its file, a subclass, a student's function that holds one). Runs
inside the graded kernel; never imports ``torch``.
"""
from __future__ import annotations

import functools
import types

TRIPWIRE = "__course_tripwire__"   # the name a trap calls, put in the module's globals


def resolve(name: str):
    """The object ``course_lib.x.y`` names (imported if needed), or None."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def functions_of(obj):
    """``(function, owner class or None)`` for a course function, or each method of a class."""
    if type(obj) is types.FunctionType:
        yield obj, None
    elif isinstance(obj, type):
        for value in vars(obj).values():
            inner = getattr(value, "__func__", value)
            if isinstance(value, property):
                inner = value.fget
            if type(inner) is types.FunctionType:
                yield inner, obj


def shape(code) -> tuple:
    """What makes two code objects the same code of the same file (a fresh import of a
    course module, or a copy through ``marshal``), whatever object holds it."""
    return (code.co_filename, code.co_firstlineno, code.co_code, code.co_names)


def reaches(value, objects: dict, codes: dict, classes: list, student, depth: int = 0,
             seen: set | None = None, shapes: dict | None = None) -> str | None:
    """Which course object ``value`` is, copies or wraps (identity, a copy of its code, a
    partial, a bound method, a subclass, a container, a class of the student's, or a function
    of the student's whose globals or closure hold one), or None."""
    seen = set() if seen is None else seen
    if depth > 4 or id(value) in seen:
        return None
    seen.add(id(value))
    if id(value) in objects:
        return objects[id(value)]
    kind = type(value)
    if kind is types.FunctionType and id(value.__code__) in codes:
        return f"a copy of {codes[id(value.__code__)]}"
    if kind is types.FunctionType and shapes and shape(value.__code__) in shapes:
        return f"a fresh copy of {shapes[shape(value.__code__)]}"
    inner = None
    if kind is types.FunctionType and student(value):
        names = set(value.__code__.co_names)
        for const in value.__code__.co_consts:   # nested functions and comprehensions
            if isinstance(const, types.CodeType):
                names |= set(const.co_names)
        inner = [value.__globals__[n] for n in sorted(names) if n in value.__globals__] + \
            [c.cell_contents for c in (value.__closure__ or ()) if _filled(c)] + \
            list(value.__defaults__ or ()) + module_attributes(value)
    elif issubclass(kind, functools.partial):
        inner = [value.func]
    elif issubclass(kind, types.MethodType):
        inner = [value.__func__]
    elif issubclass(kind, (staticmethod, classmethod)):
        inner = [value.__func__]
    elif issubclass(kind, (list, tuple, set, frozenset)):
        inner = list(value)[:50]
    elif issubclass(kind, dict):
        inner = list(value.values())[:50]
    elif issubclass(kind, type):
        if any(c is not value and issubclass(value, c) for c in classes):
            return "a subclass of " + next(objects[id(c)] for c in classes
                                           if issubclass(value, c))
        inner = [getattr(v, "__func__", v) for v in vars(value).values()]   # a copied class
    if inner:
        for item in inner:
            if isinstance(item, types.ModuleType):
                continue
            reached = reaches(item, objects, codes, classes, student, depth + 1, seen, shapes)
            if reached:
                return reached
    return None


def module_attributes(function) -> list:
    """The objects a function's code reaches as ``module.attribute`` (``a.b.c`` through
    modules): the bytecode's global loads followed by attribute loads."""
    import dis

    found = []
    for code in [function.__code__] + [c for c in function.__code__.co_consts
                                       if isinstance(c, types.CodeType)]:
        current = None
        for instruction in dis.get_instructions(code):
            if instruction.opname == "LOAD_GLOBAL":
                current = function.__globals__.get(instruction.argval)
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and \
                    isinstance(current, types.ModuleType):
                current = vars(current).get(instruction.argval)
                if current is not None and not isinstance(current, types.ModuleType):
                    found.append(current)
            else:
                current = None
    return found


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def trap_code(function) -> types.CodeType | None:
    """A code object taking any arguments and calling the tripwire with a key (``"__KEY__"``
    in its constants), with ``function``'s free variables so that its closure still fits."""
    free = function.__code__.co_freevars
    lines = ["def _outer():"] + [f"    {v} = None" for v in free] + [
        "    def _trap(*args, **kwargs):"] + ([f"        {', '.join(free)}"] if free else []) + [
        f"        return {TRIPWIRE}('__KEY__', args, kwargs)", "    return _trap"]
    namespace: dict = {}
    exec(compile("\n".join(lines), function.__code__.co_filename, "exec"), namespace)
    trap = namespace["_outer"]().__code__
    if trap.co_freevars != free:
        return None
    return trap.replace(co_name=function.__code__.co_name,
                        co_qualname=function.__code__.co_qualname)
