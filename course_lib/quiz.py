"""Check your understanding: short questions at the end of a lecture notebook, with instant
feedback in JupyterLab (ipywidgets) and in the static book (a small HTML form, no server).

A notebook's questions live in ``course_lib/quizzes/<notebook>.toml``, not in its cells, so
the answer is not printed in the cell a reader runs (like the key at the back of a book)::

    [[question]]
    prompt = "Why does …?"
    options = ["…", "…", "…"]
    answer = 1                 # index into options
    why = "… {gap:.1f} points …"

The cell is ``display(quiz("04_black_box_meta_learning", gap=…))``: prompts, options and
explanations may name the notebook's numbers (``{gap:.1f}``), filled in from the keywords, so a
question stays true at every budget and seed. In the book's HTML the answer and explanation
are encoded, not plain text; the form decodes them when the reader checks an answer.
"""
from __future__ import annotations

import base64
import html
import json
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

RIGHT, WRONG = "✓ Right. ", "✗ Not quite; try again. "
FOLDER = Path(__file__).parent / "quizzes"
MARKER = "course-quiz"   # the HTML form's class (the book keeps the form of such an output)


@dataclass(frozen=True)
class Question:
    prompt: str
    options: list[str]
    answer: int
    why: str

    def __post_init__(self):
        if not 0 <= self.answer < len(self.options) or len(set(self.options)) != len(self.options):
            raise ValueError(f"answer {self.answer} should index {len(self.options)} distinct "
                             f"options ({self.prompt!r})")


def feedback(options: list[str], answer: int, chosen: str | None, why: str) -> str:
    """The line shown under a question once ``chosen`` is picked ('' before any choice)."""
    if chosen is None:
        return ""
    if chosen not in options:
        raise ValueError(f"{chosen!r} is not one of the options {options}")
    return RIGHT + why if options.index(chosen) == answer else WRONG


def questions(notebook: str, **numbers) -> list[Question]:
    """The questions of ``notebook`` (its ``quizzes/<notebook>.toml``), with ``numbers`` filled
    into their text; a missing file or number is an error that names it."""
    path = FOLDER / f"{notebook}.toml"
    if not path.exists():
        raise FileNotFoundError(f"no questions for {notebook!r}: expected {path}")
    fill = lambda text: text.format_map(numbers)
    try:
        return [Question(fill(q["prompt"]), [fill(o) for o in q["options"]], int(q["answer"]),
                         fill(q["why"]))
                for q in tomllib.loads(path.read_text())["question"]]
    except KeyError as missing:
        raise KeyError(f"{path.name} needs the number {missing} (pass it to quiz())") from None


def question(prompt: str, options: list[str], answer: int, why: str):
    """One question as an ipywidgets box: the prompt, a radio button per option and, once the
    reader picks one, whether it is right and why."""
    import ipywidgets as widgets

    Question(prompt, options, answer, why)   # checks the answer index
    choice = widgets.RadioButtons(options=options, value=None, layout={"width": "max-content"})
    verdict = widgets.HTML()

    def show(change):
        verdict.value = feedback(options, answer, change["new"], why)

    choice.observe(show, names="value")
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(prompt)}</b>"), choice, verdict])


class Quiz:
    """A notebook's questions: live widgets in JupyterLab, an HTML form in the book and in
    any page nbconvert makes, the prompts and options as text elsewhere."""

    def __init__(self, items: list[Question]):
        self.items = items

    def __repr__(self) -> str:
        return "\n\n".join(f"{q.prompt}\n" + "\n".join(f"  ( ) {o}" for o in q.options)
                           for q in self.items)

    def _repr_html_(self) -> str:
        return form(self.items)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": repr(self), "text/html": form(self.items)}
        try:
            import ipywidgets as widgets
            from IPython import get_ipython

            if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
                box = widgets.VBox([question(q.prompt, q.options, q.answer, q.why)
                                    for q in self.items])
                # the widget for JupyterLab; the text and the form stay for other readers
                bundle = {**(box._repr_mimebundle_() or {}), **bundle}
        except ImportError:
            pass
        return bundle


def quiz(notebook: str, **numbers) -> Quiz:
    """The check-your-understanding questions of ``notebook``, for ``display``."""
    return Quiz(questions(notebook, **numbers))


def encode(text: str, key: str) -> str:
    """``text`` XOR-ed with ``key`` and base64-encoded: unreadable in the page's source, read
    back by the form's script (:data:`SCRIPT`). Not a secret, a covered answer key."""
    data, k = text.encode(), key.encode()
    return base64.b64encode(bytes(b ^ k[i % len(k)] for i, b in enumerate(data))).decode()


def decode(encoded: str, key: str) -> str:
    data, k = base64.b64decode(encoded), key.encode()
    return bytes(b ^ k[i % len(k)] for i, b in enumerate(data)).decode()


# one function, defined by the first form of a page; each form's button calls it
SCRIPT = """<script>
window.courseQuizCheck = window.courseQuizCheck || function (button) {
  var form = button.closest("form"), out = form.querySelector(".course-quiz-verdict");
  var picked = form.querySelector("input:checked");
  if (!picked) { out.textContent = "Pick an answer first."; return; }
  var key = form.dataset.key, raw = atob(form.dataset.answer), bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i) ^ key.charCodeAt(i % key.length);
  var answer = JSON.parse(new TextDecoder().decode(bytes));
  out.textContent = Number(picked.value) === answer.index ? "RIGHT" + answer.why : "WRONG";
};
</script>""".replace("RIGHT", RIGHT).replace("WRONG", WRONG)


def form(items: list[Question]) -> str:
    """The questions as HTML forms: radio buttons, a Check button, the verdict under it."""
    parts = [SCRIPT]
    for q in items:
        key = secrets.token_hex(8)
        name = f"q{key}"
        answer = encode(json.dumps({"index": q.answer, "why": q.why}), key)
        options = "".join(f'<label style="display:block"><input type="radio" name="{name}" '
                          f'value="{i}"> {html.escape(o)}</label>' for i, o in enumerate(q.options))
        parts.append(f'<form class="{MARKER}" data-key="{key}" data-answer="{answer}" '
                     f'onsubmit="return false"><p><b>{html.escape(q.prompt)}</b></p>{options}'
                     '<button type="button" onclick="courseQuizCheck(this)">Check</button> '
                     '<span class="course-quiz-verdict"></span></form>')
    return "\n".join(parts)
