"""Check-your-understanding questions (course_lib.quiz)."""
import pytest

from course_lib import quiz


def test_feedback_says_right_with_the_reason_and_wrong_without_it():
    """checks no line before a choice, the reason after the right one, and a retry otherwise."""
    options = ["195", "475", "500"]
    assert quiz.feedback(options, 1, None, "v1's threshold") == ""
    assert quiz.feedback(options, 1, "475", "v1's threshold") == "✓ Right. v1's threshold"
    assert quiz.feedback(options, 1, "195", "v1's threshold").startswith("✗")
    with pytest.raises(ValueError, match="not one of the options"):
        quiz.feedback(options, 1, "200", "")


def test_question_widget_gives_feedback_when_an_option_is_picked():
    """checks the widget: nothing selected at first, feedback once the reader picks."""
    box = quiz.question("Solved at?", ["195", "475"], 1, "v1's threshold")
    _, choice, verdict = box.children
    assert choice.value is None and verdict.value == ""
    choice.value = "475"
    assert verdict.value == "✓ Right. v1's threshold"
    with pytest.raises(ValueError, match="distinct options"):
        quiz.question("?", ["a", "a"], 0, "")
