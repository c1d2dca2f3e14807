"""Old home of the test-cell helpers, kept for one term for released notebooks.

Assignments released before the grading tool moved to :mod:`course_grading` import
``from course_lib.grading import expect_written``. That keeps working; new notebooks import
from :mod:`course_lib.checks`. Remove after the term that ends in 2027.
"""
from .checks import expect_raises, expect_written

__all__ = ["expect_raises", "expect_written"]
