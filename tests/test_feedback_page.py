"""The feedback page a student reads (:func:`course_grading.grade.feedback.feedback_html`):
Markdown rendered, nothing that runs, and a written answer still to grade said so."""
from __future__ import annotations

import nbformat

from course_grading.grade.feedback import feedback_html
from course_grading.grade.record import Outcome

STUDENT_MD = ("# My notes\n\n| K | error |\n|---|---|\n| 1 | 0.3 |\n\n$$\\theta^\\star$$ "
              "<img src=x onerror=alert(1)> <script>alert(2)</script> [a](javascript:alert(3))")


def _page(needs_manual=()):
    cells = [nbformat.v4.new_markdown_cell("# Assignment\n\nPart 1 asks for **θ**."),
             nbformat.v4.new_markdown_cell(STUDENT_MD),
             nbformat.v4.new_code_cell("x = 1")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    outcome = Outcome("ada", {"part": 1.0, "why": 0.0}, 1.0, list(needs_manual))
    return feedback_html(notebook, notebook, outcome)


def test_markdown_is_rendered_and_nothing_runs():
    """Checks headings, bold and a pipe table rendered; the student's raw HTML shown as text,
    no script, no event handler, no javascript: link; TeX kept as text."""
    page = _page()
    assert "<h1>Assignment</h1>" in page and "<strong>θ</strong>" in page
    assert "<table>" in page and "<td>0.3</td>" in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;img" in page and "&lt;script&gt;" in page
    assert "javascript:" not in page
    assert "\\theta^\\star" in page


def test_a_written_answer_still_to_grade_is_said():
    """Checks the note on a part a person has not graded yet, and its absence once graded."""
    assert "why is still to be graded by a person" in _page(["why"])
    assert "still to be graded" not in _page()
