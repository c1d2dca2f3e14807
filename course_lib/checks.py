"""Helpers for the test cells of assignments: messages a student can act on.

- :func:`expect_written` — a part whose function is still the release's stub
  (``raise NotImplementedError()``) fails with "… is not written yet", not a traceback.
- :func:`expect_raises` — the block must raise a given error (bad input must be refused):
  nothing raised, or another error, fails with the test's own explanation.

Both are context managers, used as ``with expect_written("prototypes"): …`` in the assignments
``transfer`` … ``rl``.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def expect_written(part: str):
    """In an assignment's test cell: a part whose function still raises NotImplementedError
    fails with a message that says what to do, instead of a traceback into the stub."""
    try:
        yield
    except NotImplementedError:
        raise AssertionError(f"{part} is not written yet: replace `raise NotImplementedError()` "
                             f"in its cell by your code and run that cell again") from None


@contextlib.contextmanager
def expect_raises(error: type[BaseException], why: str):
    """The block must raise ``error`` (e.g. ``ValueError`` for a bad shape or γ outside [0, 1]).

    Nothing raised, or another exception, is an AssertionError that starts with ``why`` (the
    test's explanation, e.g. "γ = 1.5 is not a discount: raise ValueError"). A stub's
    NotImplementedError passes through, so :func:`expect_written` can name the unwritten part.
    """
    try:
        yield
    except error:
        return
    except NotImplementedError:
        raise
    except Exception as err:
        raise AssertionError(f"{why} (got {type(err).__name__}: {err})") from None
    raise AssertionError(f"{why} (nothing was raised)")
