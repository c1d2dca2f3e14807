"""The test-cell helpers of the assignments (course_lib.checks) and their old import path."""
from __future__ import annotations

import pytest

from course_lib import checks


def test_expect_written_names_the_unfinished_part():
    """checks that a stub's NotImplementedError becomes a message naming the part; others pass."""
    with pytest.raises(AssertionError, match="prototypes is not written yet"):
        with checks.expect_written("prototypes"):
            raise NotImplementedError()
    with pytest.raises(ValueError):
        with checks.expect_written("prototypes"):
            raise ValueError("a student's own error stays as it is")


def test_expect_raises_passes_only_on_the_expected_error():
    """checks that the expected error passes, and that nothing raised or another error fails
    with the test's explanation and what happened."""
    with checks.expect_raises(ValueError, "γ = 1.5 is not a discount"):
        raise ValueError("bad γ")
    with pytest.raises(AssertionError, match=r"γ = 1.5 is not a discount \(nothing was raised\)"):
        with checks.expect_raises(ValueError, "γ = 1.5 is not a discount"):
            pass
    with pytest.raises(AssertionError, match=r"\(got TypeError: no\)"):
        with checks.expect_raises(ValueError, "γ = 1.5 is not a discount"):
            raise TypeError("no")


def test_expect_raises_lets_a_stub_reach_expect_written():
    """checks that an unwritten part inside expect_raises is still reported as not written."""
    with pytest.raises(AssertionError, match="discounted_returns is not written yet"):
        with checks.expect_written("discounted_returns"):
            with checks.expect_raises(ValueError, "γ = 1.5 is not a discount"):
                raise NotImplementedError()


def test_old_import_path_of_released_notebooks_still_works():
    """checks that `from course_lib.grading import expect_written` (in released notebooks) is
    the same helper, and that it brings no grading code into the teaching library."""
    from course_lib.grading import expect_written

    assert expect_written is checks.expect_written


def test_a_stub_called_from_a_cell_is_named_in_one_line():
    """checks that a bare NotImplementedError raised by a function defined in a notebook cell
    names that function, and that any other error keeps IPython's usual traceback."""
    cell = compile("def prototypes(x):\n    raise NotImplementedError()\n",
                   "/tmp/ipykernel_42/1234.py", "exec")
    namespace: dict = {}
    exec(cell, namespace)
    with pytest.raises(NotImplementedError) as stub:
        namespace["prototypes"](1)
    assert checks.unwritten_part(stub.value) == "prototypes"
    line = checks._short_traceback(None, NotImplementedError, stub.value, stub.tb)
    assert len(line) == 1 and "prototypes is not written yet" in line[0]
    for error in (NotImplementedError("torch has no such kernel"), ValueError()):
        assert checks.unwritten_part(error) is None
    assert checks.show_unwritten_parts() is False   # not in IPython
