"""Check-your-understanding questions (course_lib.quiz): every lecture notebook has them, their
answers are not in the notebook, and the book's HTML form grades a choice."""
import ast
import json
import string
import tomllib

import nbformat
import pytest

from course_lib import paths, quiz


def test_feedback_says_right_with_why_or_try_again():
    """checks the verdict line: nothing before a choice, the explanation for the right option,
    "try again" (without the explanation) for a wrong one, an error for an unknown one."""
    options = ["195", "475"]
    assert quiz.feedback(options, 1, None, "v1's threshold") == ""
    assert quiz.feedback(options, 1, "475", "v1's threshold") == "✓ Right. v1's threshold"
    assert quiz.feedback(options, 1, "195", "v1's threshold") == quiz.WRONG
    with pytest.raises(ValueError):
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


def _quiz_calls(path):
    """(notebook name, keyword names) of every ``quiz(...)`` call in the notebook's code."""
    calls = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or "quiz(" not in cell.source:
            continue
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "quiz":
                calls.append((node.args[0].value, {k.arg for k in node.keywords}))
    return calls


def _placeholders(text: str) -> set[str]:
    return {field.split(".")[0].split("[")[0]
            for _, field, _, _ in string.Formatter().parse(text) if field}


@pytest.mark.parametrize("path", paths.lecture_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_asks_why_with_the_answers_kept_out_of_its_cells(path):
    """checks each lecture notebook calls quiz() once for its own questions file, which holds
    at least two questions; every number a question names is passed to the call; and no cell
    of the notebook holds an explanation (the answer is not readable in the source)."""
    calls = _quiz_calls(path)
    assert [name for name, _ in calls] == [path.stem], calls
    data = tomllib.loads((quiz.FOLDER / f"{path.stem}.toml").read_text())["question"]
    assert len(data) >= 2
    needed = set()
    for q in data:
        quiz.Question(q["prompt"], q["options"], q["answer"], q["why"])   # a valid answer
        needed |= _placeholders(q["prompt"] + q["why"] + "".join(q["options"]))
    assert needed <= calls[0][1], f"quiz() must be given {sorted(needed - calls[0][1])}"
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    for q in data:
        plain = q["why"].split("{")[0].strip()
        assert len(plain) < 25 or plain not in source, f"the explanation is in the notebook: {plain!r}"


def test_the_html_form_hides_the_answer_and_decodes_it():
    """checks the form a page shows: the options in order, one Check button per question, and
    the answer and explanation present only encoded (the form's key decodes them)."""
    items = [quiz.Question("Why?", ["because a", "because b"], 1, "b is the reason, 0.123")]
    page = quiz.form(items)
    assert page.count('type="radio"') == 2 and page.count("courseQuizCheck(this)") == 1
    assert "b is the reason" not in page and '"index"' not in page
    key = page.split('data-key="')[1].split('"')[0]
    encoded = page.split('data-answer="')[1].split('"')[0]
    assert json.loads(quiz.decode(encoded, key)) == {"index": 1, "why": "b is the reason, 0.123"}
    shown = quiz.Quiz(items)._repr_mimebundle_()
    assert quiz.MARKER in shown["text/html"] and "because b" in shown["text/plain"]


def test_numbers_are_filled_in_and_a_missing_one_is_named(tmp_path, monkeypatch):
    """checks a question's text takes the notebook's numbers, and a missing number is a
    KeyError that names it and the call to fix."""
    (tmp_path / "99_demo.toml").write_text(
        '[[question]]\nprompt = "Gap {gap:.1f}?"\noptions = ["x", "y"]\nanswer = 0\n'
        'why = "it was {gap:.2f}"\n')
    monkeypatch.setattr(quiz, "FOLDER", tmp_path)
    [q] = quiz.questions("99_demo", gap=1.234)
    assert q.prompt == "Gap 1.2?" and q.why == "it was 1.23"
    with pytest.raises(KeyError, match="gap.*quiz"):
        quiz.questions("99_demo")
