"""Tests compare plain values: what a tested function of the submission returns, as the
library's own types (:func:`plain`), so that a comparison runs the library's code and not the
student's. Runs inside the graded kernel; reaches ``torch`` and ``numpy`` only if the notebook
imported them."""
from __future__ import annotations

import functools
import sys

# what a class redefines to make a wrong value compare as right
_LYING = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__",
          "__int__", "__index__", "__abs__", "__sub__", "__rsub__", "__add__", "__radd__",
          "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__neg__", "__round__",
          "__array__", "__torch_function__"}


class NotPlain(TypeError):
    """A tested function returned an object whose class redefines comparison or arithmetic."""


def plain(value, student, depth: int = 0):
    """``value`` as the library's own types: a tensor, array, number or string of a subclass
    the student wrote becomes a plain one (same data), and lists, tuples and dicts are
    converted item by item; an object of a class of theirs (other than a ``torch.nn.Module``)
    that redefines comparison or arithmetic (``_LYING``) raises :class:`NotPlain`. ``student``
    tells whether a class is the student's."""
    kind = type(value)
    if depth > 20 or kind in (int, float, bool, complex, str, bytes, type(None)):
        return value
    if kind in (list, tuple, dict) or (issubclass(kind, tuple) and not student(kind)):
        old = list(value.values()) if kind is dict else list(value)
        items = [plain(v, student, depth + 1) for v in old]
        if all(a is b for a, b in zip(items, old)):
            return value        # nothing to convert: the very object (a test may check `is`)
        if kind is dict:
            return dict(zip(value.keys(), items))
        return items if kind is list else tuple(items) if kind is tuple else kind(*items) \
            if hasattr(kind, "_fields") else kind(items)
    if not student(kind):
        return value
    torch, numpy = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(value, torch.Tensor) and \
            not isinstance(value, torch.nn.Parameter):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(value, torch.Tensor)
    if numpy is not None and isinstance(value, numpy.ndarray):
        return numpy.ndarray.view(value, numpy.ndarray)
    for base, convert in ((bool, bool), (int, int.__index__), (float, float.__float__),
                          (complex, complex.__complex__), (str, str.__str__),
                          (bytes, bytes.__bytes__)):
        if isinstance(value, base):
            return base(convert(value))
    if torch is not None and isinstance(value, torch.nn.Module):
        return value
    lying = sorted(a for c in kind.__mro__ if student(c) for a, f in vars(c).items()
                   if a in _LYING and not _generated(f))
    if lying:
        raise NotPlain(f"a tested function returned a {kind.__qualname__}, a class of the "
                       f"submission's that redefines {', '.join(lying[:4])}: the tests compare "
                       "plain values (numbers, tensors, arrays, lists)")
    return value


def _generated(function) -> bool:
    """A method that ``dataclasses`` wrote (its ``__eq__`` compares the fields, honestly)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_qualname.startswith("__create_fn__.")


def plain_call(function, student):
    """``function`` returning :func:`plain` values (see
    :meth:`course_grading.kernel.guard.Guard.plain_values`); ``student`` as for :func:`plain`."""
    @functools.wraps(function)
    def plain_call(*args, **kwargs):
        return plain(function(*args, **kwargs), student)

    return plain_call
