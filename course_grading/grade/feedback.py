"""Feedback a student may read and notebooks an instructor may open: hidden tests removed, and
nothing a browser would run."""
from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from ..check.assemble import _copy
from ..check.cells import grade_id, has_hidden_tests, hidden_part, is_locked


def hidden_lines(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> set[str]:
    """Lines of the hidden tests that the release does not show (long enough to be telling)."""
    shown = {line.strip() for c in release.cells for line in c.source.splitlines()}
    found = set()
    for cell in source.cells:
        if has_hidden_tests(cell):
            body = hidden_part(cell)
            found |= {line.strip() for line in body.splitlines()
                      if len(line.strip()) >= 16 and line.strip() not in shown}
    return found


def _texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.get("text", "")]
    if output.output_type == "error":
        return ["\n".join(output.get("traceback", [])), str(output.get("evalue", ""))]
    return [str(v) for v in output.get("data", {}).values()]


def own_lines(notebook: nbformat.NotebookNode) -> set[str]:
    """The stripped lines of a notebook's cells other than hidden tests (what the student
    wrote or was shown)."""
    return {line.strip() for c in notebook.cells if not has_hidden_tests(c)
            for line in c.source.splitlines()}


def leaks(executed, release, source=None, lines: set[str] | None = None) -> list[str]:
    """Labels of the cells (other than hidden tests) whose outputs show hidden test code that
    the student did not write themselves (``optimizer.step()`` in a student's own traceback
    is their line, whatever a hidden test also holds)."""
    lines = hidden_lines(release, source) if lines is None else lines
    lines = lines - own_lines(executed)
    found = []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type == "code" and not has_hidden_tests(cell) and lines and any(
                line in text for o in cell.outputs for text in _texts(o) for line in lines):
            found.append(grade_id(cell) or f"cell {index}")
    return found


def student_view(executed: nbformat.NotebookNode, release: nbformat.NotebookNode,
                 lines: set[str] = frozenset()) -> nbformat.NotebookNode:
    """``executed`` as a student may see it: cells with hidden tests show the release's
    (visible) source and only whether they passed, never the hidden code or its traceback;
    an output of another cell that shows any of the hidden test ``lines`` is removed."""
    released = {grade_id(c): c for c in release.cells if grade_id(c)}
    view = _copy(executed)
    for cell in view.cells:
        if cell.cell_type == "code" and not has_hidden_tests(cell) and lines:
            cell.outputs = [o if not any(line in text for text in _texts(o) for line in lines)
                            else nbformat.v4.new_output("stream", name="stdout", text=
                                "[output removed by the grader: it showed hidden test code]\n")
                            for o in cell.outputs]
        if has_hidden_tests(cell):
            gid = grade_id(cell)
            cell.source = released[gid].source if gid in released else "# hidden tests"
            errors = [o.ename for o in cell.outputs if o.output_type == "error"]
            verdict = f"hidden tests: failed ({errors[0]})" if errors else "hidden tests: passed"
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict + "\n")]
    return view

_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          "pre{background:#f6f6f6;padding:.5em;overflow-x:auto}"
          ".out{background:#fff;border-left:3px solid #ccc}.err{border-left:3px solid #c33}"
          "td,th{padding:.2em 1em;border-bottom:1px solid #ddd}")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _output_html(output) -> str:
    if output.output_type == "stream":
        return f"<pre class=out>{html.escape(output.text)}</pre>"
    if output.output_type == "error":
        text = _ANSI.sub("", "\n".join(output.traceback) or f"{output.ename}: {output.evalue}")
        return f"<pre class='out err'>{html.escape(text)}</pre>"
    data = output.get("data", {})
    if "image/png" in data:
        png = _image(data["image/png"], "image/png")
        return f"<img alt='figure' src='data:image/png;base64,{png}'>" if png else \
            "<pre class=out>[an image that is not a PNG was left out]</pre>"
    return f"<pre class=out>{html.escape(str(data.get('text/plain', '')))}</pre>"

_SHOWN = ("text/plain", "image/png", "image/jpeg")   # what a graded notebook's outputs keep


def inert(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with nothing that a browser would run when the instructor opens it in the
    Formgrader or a student opens the feedback: outputs keep plain text and re-encoded PNG and
    JPEG images only (HTML, JavaScript, SVG, widgets become their plain text), and the student's
    markdown cells show HTML tags as text (a tag's ``<`` written as ``&lt;`` outside math;
    Markdown and math still render). Attachments other than PNG and JPEG images are dropped."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                data = output.get("data")
                if data is None:
                    continue
                kept = {k: v for k, v in data.items() if k in _SHOWN}
                for kind in ("image/png", "image/jpeg"):
                    if kind in kept and _image(kept[kind], kind) is None:
                        kept.pop(kind)
                    elif kind in kept:
                        kept[kind] = _image(kept[kind], kind)
                if not kept:
                    kept = {"text/plain": f"[an output of type {', '.join(sorted(data))} was "
                                          "left out by the grader]"}
                output["data"] = kept
                output.get("metadata", {}).pop("text/html", None)
        elif cell.cell_type == "markdown" and not is_locked(cell):
            cell.source = _tags_as_text(cell.source)
            attachments = cell.get("attachments", {})
            for key in list(attachments):
                images = {k: _image(v, k) for k, v in attachments[key].items()
                          if k in ("image/png", "image/jpeg")}
                images = {k: v for k, v in images.items() if v}
                if images:
                    attachments[key] = images
                else:
                    attachments.pop(key)
    return notebook

_MATH = re.compile(r"(\$\$.*?\$\$|\$[^$\n]*\$)", re.DOTALL)

_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def _tags_as_text(markdown: str) -> str:
    """Markdown with every HTML tag's ``<`` written ``&lt;`` (shown, not parsed), outside math."""
    parts = _MATH.split(markdown)
    return "".join(part if i % 2 else _TAG.sub("&lt;", part) for i, part in enumerate(parts))

_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8"}


def _image(text, kind: str = "image/png") -> str | None:
    """A notebook's base64 image, decoded and encoded again (so nothing but base64 reaches a
    page), or None when it is not one of ``kind``."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(str(text).encode("ascii", "strict"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if raw.startswith(_MAGIC[kind]) else None


def _markdown(text: str) -> str:
    """A markdown cell as HTML: headings, lists, tables, code; raw HTML escaped and harmful
    links dropped (mistune's escaping renderer), so nothing on the page runs; math stays as
    its TeX source (no script typesets it)."""
    import mistune

    return mistune.create_markdown(escape=True, plugins=["table", "math", "strikethrough"])(text)


def feedback_html(executed, release, outcome, source=None) -> str:
    """Per-student feedback (``outcome``: :class:`~.record.Outcome`), one self-contained HTML
    page: points per part, the reasons and
    findings, then every cell of the graded notebook as the student may see it (markdown
    rendered, :func:`_markdown`)
    (:func:`student_view`). Plain HTML: nbconvert's exporter costs most of a second per
    notebook, which a class of hundreds pays on every grading run. Given the ``source``, no
    line of its hidden tests survives anywhere on the page (notes included)."""
    rows = "".join(f"<tr><td>{html.escape(part)}</td><td>{score:g}</td></tr>"
                   for part, score in outcome.parts.items())
    pending = [f"{gid} is still to be graded by a person: its points (0 until then) and the "
               "total may change" for gid in outcome.needs_manual]
    notes = "".join(f"<li>{html.escape(r)}</li>"
                    for r in pending + outcome.reasons + outcome.tampering)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback: "
             f"{html.escape(outcome.student)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Feedback for {html.escape(outcome.student)}</h1>",
             f"<table><tr><th>part</th><th>points</th></tr>{rows}<tr><th>total</th>"
             f"<th>{outcome.total:g}</th></tr></table>", f"<ul>{notes}</ul>" if notes else ""]
    lines = hidden_lines(release, source) - own_lines(executed) if source is not None \
        else frozenset()
    for cell in student_view(executed, release, lines).cells:
        if cell.cell_type == "code":
            parts.append(f"<pre>{html.escape(cell.source)}</pre>")
            parts += [_output_html(o) for o in cell.outputs]
        else:
            parts.append(f"<div class=md>{_markdown(cell.source)}</div>")
    page = "\n".join(parts + ["</body></html>"])
    for line in sorted(lines, key=len, reverse=True):   # by construction, whatever the path
        page = page.replace(html.escape(line), "[hidden test code removed]")
    return page



class StudentView(Preprocessor):
    """nbgrader's own feedback (the Formgrader's *Generate Feedback*, ``nbgrader
    generate_feedback``) as a student may see it: each autograded notebook goes through
    :func:`student_view` (hidden tests shown as passed or failed, never their code or
    traceback; outputs that show hidden test lines removed) and :func:`inert` before nbgrader
    renders it (Markdown and math as in JupyterLab). ``nbgrader_config.py`` puts it first in
    ``GenerateFeedback.preprocessors``."""
    enabled = Bool(True)

    def preprocess(self, nb, resources):
        from .. import course

        info = resources["nbgrader"]
        root = Path.cwd()   # nbgrader converts from the course directory
        name = f"{info['notebook']}.ipynb"
        release = nbformat.read(course.folder(root, "release", info["assignment"]) / name,
                                as_version=4)
        source = nbformat.read(course.folder(root, "source", info["assignment"]) / name,
                               as_version=4)
        lines = hidden_lines(release, source) - own_lines(nb)
        return inert(student_view(nb, release, lines)), resources
