"""Helpers for the test cells of assignments: messages a student can act on.

- :func:`expect_written` — a part whose function is still the release's stub
  (``raise NotImplementedError()``) fails with "… is not written yet", not a traceback.
- :func:`expect_raises` — the block must raise a given error (bad input must be refused):
  nothing raised, or another error, fails with the test's own explanation.

Both are context managers, used as ``with expect_written("prototypes"): …`` in the assignments
``transfer`` … ``rl``.

Importing this module in JupyterLab also shortens what a student sees when any cell calls a
part that is still a stub: one line naming the function to write
(:func:`show_unwritten_parts`), where IPython would print a traceback into the stub. The cell
still fails, so "Run All" stops there. Graded kernels are left as they are: the grader's
guard (:mod:`course_grading.guard`) reports any custom exception handler as tampering.
"""
from __future__ import annotations

import contextlib
import sys

NOT_WRITTEN = ("{name} is not written yet: write it where its cell says `# YOUR CODE HERE`, run "
               "that cell, then run this one again")


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


def unwritten_part(error: BaseException) -> str | None:
    """The name of the function whose stub raised ``error`` (a bare ``NotImplementedError()``
    raised by a function defined in a notebook cell), or ``None`` for any other error."""
    if type(error) is not NotImplementedError or error.args:
        return None
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    code = tb.tb_frame.f_code
    in_a_cell = "ipykernel_" in code.co_filename or code.co_filename.startswith("<ipython-")
    return code.co_name if in_a_cell and code.co_name != "<module>" else None


def _short_traceback(shell, etype, value, tb, tb_offset=None):
    """IPython's custom exception handler (IPython shows nothing itself once one is set): one
    line for a stub, the usual traceback for anything else; the cell fails either way."""
    name = unwritten_part(value)
    if name is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    stb = [f"\x1b[0;31mNotImplementedError\x1b[0m: {NOT_WRITTEN.format(name=name)}"]
    if shell is not None:
        shell._showtraceback(etype, value, stb)   # an error output, as for any failed cell
    return stb


def show_unwritten_parts() -> bool:
    """In an IPython kernel (not a graded one), report a stub's ``NotImplementedError`` in one
    line that names the part. Returns whether the handler is now installed."""
    if "course_grading.guard" in sys.modules:   # a graded kernel: leave the kernel untouched
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if shell is None:
        return False
    shell.set_custom_exc((NotImplementedError,), _short_traceback)
    return True


show_unwritten_parts()
