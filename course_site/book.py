"""The course book: the executed course as a static web site that works offline.

``python -m course_site.book [--instructor]`` (also run at the end of ``python -m course_site.build``,
i.e. ``make course``) reads what the build left in ``build/`` — the executed notebooks in
``build/notebooks/``, ``build/results.json`` — and renders with Sphinx + MyST-NB, without
re-executing anything,

- ``build/book/index.html`` — the curriculum in order: each topic's lecture notebooks, its
  assignment and the lectures it covers, cited by title (the lecture notes are not the
  course's to publish, so the book links to none),
- ``build/book/notebooks/<name>.html`` — every lecture notebook with its outputs and figures
  (a page that says why, for one the build skipped or that failed),
- ``build/book/results.html`` — the headline figures beside the papers' values, the benchmarks,
- ``build/book/assignments/<name>.html`` — the student release of each assignment.

``--instructor`` renders the nbgrader sources of ``solutions/`` (solutions and hidden tests) in
place of the student release, into ``build/book-instructor/``. Equations are typeset by the
MathJax 2.7 that the ``jupyter_server_mathjax`` package ships, copied into the site: no page
loads anything from the network, so ``index.html`` can be opened straight from the disk.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell, new_output

from course_lib.paths import REPO, build_dir, lecture_notebooks

from . import record

# the lectures the course is built from, cited by their own titles
CS330_3 = "Stanford CS 330, lecture 3: Transfer Learning + Start of Meta-Learning"
CS330_3_NOTES = "a student's notes of Stanford CS 330, lecture 3"
COMPSCI760 = "Auckland COMPSCI 760 (2024): Transfer Learning"
LECTURE9 = "Lecture 9: Multi-Task and Transfer Learning"
TRANSFER_META = "Transfer- and Meta-Learning (with RL basics)"

# (number of the lecture notebooks, topic, assignment, {lecture: the part of it the topic covers})
CURRICULUM = [
    ("01", "Transfer learning and fine-tuning", "transfer", {
        CS330_3: "multi-task vs transfer, fine-tuning and its design choices, when common "
                 "wisdom breaks",
        CS330_3_NOTES: "the same lecture",
        COMPSCI760: "tasks and domains, the transfer taxonomy, instance/feature/parameter "
                    "transfer, adapters",
        LECTURE9: "negative transfer, transfer variants",
        TRANSFER_META: "general-to-specific layers, applied examples"}),
    ("02", "Multi-task learning", "multitask", {
        LECTURE9: "multi-task architectures and weighting, negative transfer",
        CS330_3: "multi-task vs transfer",
        COMPSCI760: "multi-task learning"}),
    ("03", "The Bayesian view of meta-learning", "bayes", {
        CS330_3: "the Bayesian view, the meta-learning problem and recipe",
        CS330_3_NOTES: "the same lecture"}),
    ("04", "Black-box meta-learning", "black_box", {
        LECTURE9: "black-box meta-learning; in-context learning (\"Language Models are Few-Shot "
                  "Learners\" on the slide of meta-learning's failures)",
        CS330_3: "the meta-learning problem and recipe"}),
    ("05", "MAML and its family", "maml_protonets", {
        LECTURE9: "optimisation-based meta-learning",
        TRANSFER_META: "MAML's algorithm"}),
    ("06", "Prototypical networks, \"a closer look\"", "maml_protonets", {
        LECTURE9: "\"a closer look\""}),
    ("07", "Continual learning", "continual", {
        LECTURE9: "continual learning",
        TRANSFER_META: "La-MAML"}),
    ("08", "RL basics", "rl", {
        TRANSFER_META: "RL basics"}),
]

# (notebook, figure) → (the paper's value in the figure's units, its source); all Omniglot
# figures are the papers' 5-way test accuracies (98.7 % → 0.987), in the setting the name says
PAPER = {
    ("04_black_box_meta_learning", "attention_omniglot_5w1s_acc"):
        (0.981, "matching networks, Vinyals et al. 2016"),
    ("04_black_box_meta_learning", "incontext_pixels_5w1s_acc"):
        (0.828, "memory-augmented network from pixels, second instance, Santoro et al. 2016"),
    ("05_maml", "maml_omniglot_5w1s_acc"): (0.987, "MAML, Finn et al. 2017"),
    ("06_prototypical_networks", "maml_omniglot_5w1s_acc_06"): (0.987, "MAML, Finn et al. 2017"),
    ("06_prototypical_networks", "maml_omniglot_5w5s_acc"): (0.999, "MAML, Finn et al. 2017"),
    ("06_prototypical_networks", "protonet_omniglot_5w1s_acc"):
        (0.988, "ProtoNet, Snell et al. 2017"),
    ("06_prototypical_networks", "protonet_omniglot_5w5s_acc"):
        (0.997, "ProtoNet, Snell et al. 2017"),
    ("06_prototypical_networks", "matching_omniglot_5w1s_acc"):
        (0.981, "matching networks, Vinyals et al. 2016"),
    ("06_prototypical_networks", "matching_omniglot_5w5s_acc"):
        (0.989, "matching networks, Vinyals et al. 2016"),
    ("06_prototypical_networks", "relation_omniglot_5w1s_acc"):
        (0.996, "relation networks, Sung et al. 2018"),
    ("06_prototypical_networks", "relation_omniglot_5w5s_acc"):
        (0.998, "relation networks, Sung et al. 2018"),
    ("08_rl_basics", "reinforce_rtg_cartpole_return"):
        (475.0, "Gymnasium: CartPole-v1 is solved at a mean return of 475 over 100 episodes"),
}

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
QUIZ = 'class="course-quiz"'   # course_lib.quiz's forms
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MATHJAX = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # relative to _static/
CONF = {  # written to the generated conf.py
    "project": "Transfer learning and meta-learning",
    "extensions": ["myst_nb"],
    "html_theme": "sphinx_book_theme",
    "html_title": "Transfer learning and meta-learning",
    "html_theme_options": {"show_toc_level": 2, "navbar_persistent": [],  # one search box
                           "footer_content_items": []},                  # no "By <author>"
    "html_context": {"default_mode": "light"},
    "nb_execution_mode": "off",       # the pages show the outputs `make course` produced
    "nb_ipywidgets_js": {},           # never the widgets' JavaScript from a CDN (static_widgets)
    "myst_enable_extensions": ["dollarmath", "amsmath"],
    "myst_update_mathjax": False,     # it writes a MathJax 3 config; ours is MathJax 2
    "mathjax_path": MATHJAX,
    "mathjax2_config": {"tex2jax": {"inlineMath": [["\\(", "\\)"]],
                                    "displayMath": [["$$", "$$"], ["\\[", "\\]"]]},
                        # the package ships only the STIX-Web fonts (no TeX fonts, no images);
                        # MathJax_Blank, a probe font, is looked up locally, not at about:blank
                        # (which a page opened from file:// may not load)
                        "HTML-CSS": {"availableFonts": [], "preferredFont": None,
                                     "webFont": "STIX-Web", "imageFont": None,
                                     "styles": {"@font-face": {"font-family": "MathJax_Blank",
                                                               "src": "local('MathJax_Blank')"}}},
                        "MMLorHTML": {"prefer": "HTML"},      # not Chromium's native MathML
                        # its preview and the hidden MathML of AssistiveMML want the TeX fonts
                        "fast-preview": {"disabled": True}, "menuSettings": {"assistiveMML": False},
                        "showMathMenu": False, "messageStyle": "none"},
    "html_static_path": ["_static"],
    "html_css_files": ["book.css"],
}
CSS = """/* compact tables, so that the results' six columns fit the page */
.bd-article table { font-size: 0.85em; }
.bd-article table th, .bd-article table td { padding: 0.3em 0.5em; }
.bd-article table code { padding: 0; border: none; background: none; }
"""


def title(path: Path) -> str:
    """The first ``# heading`` of a notebook, or its file name."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return path.stem


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without terminal colour codes (a traceback's ``\x1b[31m`` …)."""
    return ANSI.sub("", text)


def with_note(nb, note: str, kind: str = "note"):
    """``nb`` with a MyST ``{note}`` (or another admonition ``kind``) right under its title (or
    first, without one)."""
    box = f"\n\n```{{{kind}}}\n{note}\n```\n\n"
    if nb.cells and nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "):
        heading, _, rest = nb.cells[0].source.partition("\n")
        nb.cells[0].source = heading + box + rest
    else:
        nb.cells.insert(0, new_markdown_cell(box.strip()))
    return nb


def static_widgets(nb):
    """``nb`` with its widgets made static (the site has no widget JavaScript): a progress bar
    is dropped, an interactive widget shows its controls' values and the outputs it held."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def tree(ref: str):
        model = state.get(ref.replace("IPY_MODEL_", ""), {"state": {}})
        yield model
        for child in model["state"].get("children", []):
            yield from tree(child)

    for cell in (c for c in nb.cells if c.cell_type == "code"):
        outputs = []
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            if QUIZ in output["data"].get("text/html", ""):   # questions: keep their HTML form
                output["data"] = {k: v for k, v in output["data"].items() if k != WIDGET_VIEW}
                outputs.append(output)
                continue
            models = list(tree(view["model_id"]))
            if any(m.get("model_name", "").endswith("ProgressModel") for m in models):
                continue  # tqdm's bar: its last state is whatever the last refresh drew
            values = [f"{m['state']['description']} = {m['state']['value']}" for m in models
                      if m["state"].get("description") and "value" in m["state"]]
            outputs.append(new_output("stream", name="stdout", text="Interactive widget (live "
                                      f"in JupyterLab), as run: {', '.join(values)}\n"))
            outputs += [nbformat.from_dict(o) for m in models
                        if m.get("model_name") == "OutputModel" for o in m["state"]["outputs"]]
        cell.outputs = outputs
    return nb


def notebook_page(path: Path, results: dict, out: Path, src: Path) -> None:
    """Write the page of lecture notebook ``path``: the executed copy with a note on how to
    re-run it, or — skipped, failed, never run — a page that says so."""
    name, rerun = path.stem, (f"To re-run it: `make lab` at the repository root, then open "
                              f"`notebooks/{path.name}` in JupyterLab.")
    record = results["notebooks"].get(name)
    if record is not None:
        nb = nbformat.read(out / "notebooks" / path.name, as_version=4)
        note = (f"Executed by `make course` at the **{record['budget']}** budget in "
                f"{record['seconds']:.0f} s; the outputs below are that run's. {rerun}")
        nbformat.write(with_note(static_widgets(nb), note), src / "notebooks" / path.name)
        return
    if name in results.get("skipped", {}):
        why = ("was **skipped** by the last build: a data set it needs is missing "
               "(`make data` says how to provide it, then `make course`).",
               "\n\n".join(results["skipped"][name]))
    elif name in results.get("failed", {}):
        error = plain(results["failed"][name])
        executed = out / "notebooks" / path.name
        if executed.exists():   # the text and outputs up to the failure, then the error
            nb = nbformat.read(executed, as_version=4)
            for cell in nb.cells:
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        output["traceback"] = [plain(line) for line in output["traceback"]]
            note = (f"This notebook **failed** in the last `make course`: the outputs below "
                    f"are that run's, up to the cell that failed (its error is shown there); "
                    f"later cells did not run. The error:\n\n````text\n{error[-1500:]}\n````"
                    f"\n\n{rerun}")
            nbformat.write(with_note(static_widgets(nb), note, "warning"),
                           src / "notebooks" / path.name)
            return
        why = "**failed** in the last build:", error
    else:
        why = "has not been executed by a build yet (`make course`).", ""
    text = f"# {title(path)}\n\n```{{warning}}\nThis notebook {why[0]}\n```\n\n"
    if why[1]:
        text += f"````text\n{why[1]}\n````\n\n"
    (src / "notebooks" / f"{name}.md").write_text(text + rerun + "\n")


def assignment_page(name: str, src: Path, instructor: bool) -> bool:
    """Write the page of assignment ``name``: the student release from ``assignments/``, or the
    nbgrader source from ``solutions/`` for ``instructor``; False when there is none."""
    folder = "solutions" if instructor else "assignments"
    path = REPO / folder / name / f"{name}.ipynb"
    if not path.exists():
        return False
    if instructor:
        note = (f"**Instructor edition**: the nbgrader source `solutions/{name}/{name}.ipynb`, "
                "with the solutions and the hidden tests. Do not give this page to students.")
    else:
        note = (f"The student release `assignments/{name}/{name}.ipynb` (no solutions, visible "
                f"tests only). To work on it: `make lab`, open that file, and check your answers "
                f"with `.venv/bin/course check {name}`.")
    nb = nbformat.read(path, as_version=4)
    nbformat.write(with_note(nb, note), src / "assignments" / path.name)
    return True


def fmt(value) -> str:
    """A figure for a table: 4 significant digits, "—" for none."""
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, (int, float)) else json.dumps(value)


def holds(claim) -> bool:
    """A claim's verdict in results.json (a row with ``holds``, or a bare bool of old builds)."""
    return bool(claim["holds"] if isinstance(claim, dict) else claim)


def by_margin(claim) -> tuple:
    """Sort key: false claims first, then the smallest margin; claims without one last."""
    margin = claim.get("margin") if isinstance(claim, dict) else None
    return (holds(claim), margin is None, margin or 0.0)


def results_page(results: dict) -> str:
    """The results page (MyST markdown): one row per notebook, then each notebook's figures
    beside the papers' values, then the benchmarks."""
    lines = ["# Results", "", f"The figures of the last build (budget **{results.get('budget')}**, "
             "from `build/results.json`). The papers' values are at paper scale "
             "(`make paper`, a GPU); the notebooks run at a laptop's budget.", "",
             "| notebook | status | budget | run time (s) | figures | claims hold |",
             "|---|---|---|---|---|---|"]
    names = sorted({*results["notebooks"], *results.get("skipped", {}),
                    *results.get("failed", {})})
    for name in names:
        record = results["notebooks"].get(name)
        if record is None:
            status = "skipped" if name in results.get("skipped", {}) else "failed"
            lines.append(f"| {{doc}}`{name} <notebooks/{name}>` | {status} | — | — | — | — |")
        else:
            claims = record.get("claims", {})
            held = (f"{sum(holds(c) for c in claims.values())} of {len(claims)}"
                    if claims else "—")
            lines.append(f"| {{doc}}`{name} <notebooks/{name}>` | executed | {record['budget']} | "
                         f"{record['seconds']:.0f} | {len(record['figures'])} | {held} |")
    for name, record in results["notebooks"].items():
        lines += ["", f"## {name}", "", f"Budget **{record['budget']}**, run time "
                  f"{record['seconds']:.0f} s: {{doc}}`the notebook <notebooks/{name}>`.", "",
                  "| figure | value | budget | time (s) | paper | paper's source |",
                  "|---|---|---|---|---|---|"]
        for key, value in record["figures"].items():
            paper, source = PAPER.get((name, key), (None, "—"))
            lines.append(f"| `{key}` | {fmt(value)} | {record['budget']} | "
                         f"{record['seconds']:.0f} | {fmt(paper)} | {source} |")
        if record.get("claims"):
            lines += ["", "| claim of the text (smallest margin first) | holds | value | "
                      "threshold | margin |", "|---|---|---|---|---|"]
            for claim, row in sorted(record["claims"].items(), key=lambda c: by_margin(c[1])):
                row = row if isinstance(row, dict) else {"holds": row}
                lines.append(f"| {claim.replace('|', '∣')} | {'✓' if row['holds'] else '✗'} | "
                             f"{fmt(row.get('value'))} | {fmt(row.get('threshold'))} | "
                             f"{fmt(row.get('margin'))} |")
    lines += ["", "## Benchmarks", ""]
    if results.get("benchmarks"):
        lines += ["| benchmark | value |", "|---|---|"]
        lines += [f"| `{k}` | {fmt(v)} |" for k, v in results["benchmarks"].items()]
    else:
        lines.append("None recorded (`make bench` measures them).")
    return "\n".join(lines) + "\n"


def index_page(topics: list, instructor: bool, results: dict | None = None) -> str:
    """The home page (MyST markdown): how to read and re-run, then the curriculum in order.

    ``topics``: (topic, [notebook path], assignment or None, {lecture title: part}).
    ``results``: the build's results.json; a notebook that failed or was skipped in it is
    marked beside its link, and a line under the introduction counts them."""
    results = results or {}
    failed, skipped = results.get("failed", {}), results.get("skipped", {})
    mark = lambda name: (" — **failed in the last build**" if name in failed else
                         " — *skipped (a data set is missing)*" if name in skipped else "")
    edition = ("**Instructor edition**: the assignments are the nbgrader sources in `solutions/`, "
               "with solutions and hidden tests. Do not give this site to students."
               if instructor else "The assignments are the student release (`assignments/`).")
    lines = ["# Transfer learning and meta-learning", "",
             "Every lecture notebook of the course as `make course` executed it, with its outputs "
             "and figures, and the {doc}`results <results>` beside the papers'. " + edition, "",
             "To re-run a page: `make lab` at the repository root opens JupyterLab; open the "
             "notebook's path given on the page (`notebooks/<name>.ipynb`). "
             "`python -m course_site.book` rebuilds this site from `build/`.", ""]
    if failed:
        lines += [f"```{{warning}}\n{len(failed)} notebook(s) failed in the last build: "
                  + ", ".join(f"{{doc}}`notebooks/{name}`" for name in sorted(failed))
                  + ". Their pages show the outputs up to the failure and the error.\n```", ""]
    toc, seen = [], set()
    for number, (topic, pages, assignment, lectures) in enumerate(topics, 1):
        lines += [f"## {number} · {topic}", ""]
        links = ", ".join(f"{{doc}}`notebooks/{p.stem}`" + mark(p.stem) for p in pages)
        lines.append(f"- Lecture notebooks: {links or '—'}")
        if assignment is None:
            lines.append("- Assignment: not released yet")
        else:
            lines.append(f"- Assignment: {{doc}}`assignments/{assignment}`")
        lines.append("- Lectures:" + ("" if lectures else " —"))
        lines += [f"  - *{title}*: {part}" for title, part in lectures.items()] + [""]
        entries = [f"notebooks/{p.stem}" for p in pages]
        if assignment is not None and assignment not in seen:
            seen.add(assignment)
            entries.append(f"assignments/{assignment}")
        toc += ["", f"```{{toctree}}\n:hidden:\n:caption: {number} · {topic}\n\n"
                + "\n".join(entries) + "\n```"]
    toc += ["", "```{toctree}\n:hidden:\n\nresults\n```"]
    return "\n".join(lines + toc) + "\n"


def topics(assignments: set[str]) -> list:
    """The curriculum with the lecture notebooks of ``notebooks/`` in number order; a notebook
    whose number no topic claims goes into a last topic so that every one gets a page."""
    found = lecture_notebooks()
    claimed, result = set(), []
    for number, topic, assignment, lectures in CURRICULUM:
        pages = [p for p in found if p.name.startswith(number)]
        claimed.update(pages)
        result.append((topic, pages, assignment if assignment in assignments else None,
                       lectures))
    rest = [p for p in found if p not in claimed]
    if rest:
        result.append(("Other notebooks", rest, None, {}))
    return result


def write_sources(out: Path, src: Path, instructor: bool) -> None:
    """Write the Sphinx project of the book into ``src``: conf.py, the home page, the results
    page, a page per lecture notebook and per assignment."""
    path = out / record.NAME
    if not path.exists():
        raise SystemExit(f"no {path}: run `make course` (python -m course_site.build) first")
    results = json.loads(path.read_text())
    for folder in ("notebooks", "assignments"):
        (src / folder).mkdir(parents=True)
    conf = dict(CONF)
    if instructor:
        conf["html_theme_options"] = {**CONF["html_theme_options"], "announcement":
                                      "Instructor edition: solutions and hidden tests"}
    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in conf.items()))
    (src / "_static").mkdir()
    (src / "_static" / "book.css").write_text(CSS)
    for path in lecture_notebooks():
        notebook_page(path, results, out, src)
    released = {a for *_, a, _ in CURRICULUM if assignment_page(a, src, instructor)}
    (src / "index.md").write_text(index_page(topics(released), instructor, results))
    (src / "results.md").write_text(results_page(results))


def build(out: Path | None = None, instructor: bool = False) -> Path:
    """Render the book from the build in ``out`` (default: ``build/``) into ``out/book/``
    (``out/book-instructor/``); return the path of its ``index.html``."""
    from sphinx.cmd.build import build_main  # imported here: Sphinx is slow to import

    out = build_dir() if out is None else Path(out)
    dest = out / ("book-instructor" if instructor else "book")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        write_sources(out, src, instructor)
        shutil.rmtree(dest, ignore_errors=True)  # no page of an earlier build survives
        code = build_main(["-b", "html", "-q", "-d", str(Path(tmp) / "doctrees"),
                           str(src), str(dest)])
    if code:
        raise RuntimeError(f"Sphinx failed (exit {code}) building {dest}")
    shutil.copytree(files("jupyter_server_mathjax") / "static", dest / "_static" / "mathjax")
    return dest / "index.html"


def main(argv: list[str] | None = None) -> int:
    """``python -m course_site.book [--instructor]``: render the book, print where it is."""
    parser = argparse.ArgumentParser(prog="python -m course_site.book", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--instructor", action="store_true", help="render solutions/ (with "
                        "solutions and hidden tests) into build/book-instructor/")
    args = parser.parse_args(argv)
    index = build(instructor=args.instructor)
    print(f"wrote the course book: {index} (open it in a browser; it works offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
