"""The course book (course_site.book): pages from results.json, then the real site in a browser.

The slow test executes a small set of lecture notebooks (``SMALL_SET``) at the quick budget with
``course_site.build`` into a temporary ``COURSE_BUILD`` (and fails if one of them fails; nbval
then skips them, so each runs once per test run) — executing all of them takes many
minutes — builds the book from it (every other lecture notebook gets its "not executed" page),
and opens every page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium; ``make test`` installs them). ``COURSE_BOOK_TEST_BUILD=build`` checks the
book of an existing full build instead (e.g. after ``make course``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from browser import chromium
from course_site import book, build
from course_lib import paths
from course_lib.paths import build_dir

# no data set needed, seconds each: figures, display equations, an interact widget, tqdm bars
SMALL_SET = ["03_bayesian_view", "08_rl_basics"]
SCREENSHOTS = build_dir() / "book-screenshots"  # the real build/, not the test's COURSE_BUILD

RESULTS = {"budget": "quick", "benchmarks": {"omniglot_cached_load_seconds": 0.41},
           "notebooks": {"05_maml": {"budget": "quick", "seconds": 61.0, "figures": {
               "maml_omniglot_5w1s_acc": 0.9012, "maml_train_steps": 100.0},
               "claims": {"MAML beats the linear probe": {"holds": True, "value": 0.12,
                                                          "threshold": 0.0, "margin": 0.031},
                          "MAML is near its paper": {"holds": True, "value": 0.90,
                                                     "threshold": 0.85, "margin": 0.25},
                          "α = 0.4 is for the long run": {"holds": False, "value": 0.2,
                                                          "threshold": 0.3, "margin": -0.1}}}},
           "skipped": {"06_prototypical_networks": ["Omniglot is missing: set COURSE_DATA"]},
           "failed": {"04_black_box_meta_learning": "\x1b[31mRuntimeError\x1b[0m: boom"}}


# ---------------------------------------------------------------------------- pages, fast
def test_results_page_puts_paper_values_beside_figures():
    """checks a figure with a paper value gets it and its source, one without gets "—", every
    notebook has a status row (with how many of its claims hold), its claims are a table of
    value, threshold and margin, false first and then smallest margin first, and the benchmarks
    are listed."""
    page = book.results_page(RESULTS)
    assert "| `maml_omniglot_5w1s_acc` | 0.9012 | quick | 61 | 0.987 | MAML, Finn" in page
    assert "| `maml_train_steps` | 100 | quick | 61 | — | — |" in page
    assert "Finn et al. 2017" in page
    assert "06_prototypical_networks <notebooks/06_prototypical_networks>` | skipped" in page
    assert "04_black_box_meta_learning <notebooks/04_black_box_meta_learning>` | failed" in page
    assert "| `omniglot_cached_load_seconds` | 0.41 |" in page
    assert "| executed | quick | 61 | 2 | 2 of 3 |" in page
    rows = [line for line in page.splitlines() if line.startswith(("| MAML ", "| α"))]
    assert rows == ["| α = 0.4 is for the long run | ✗ | 0.2 | 0.3 | -0.1 |",   # false first,
                    "| MAML beats the linear probe | ✓ | 0.12 | 0 | 0.031 |",  # then by margin
                    "| MAML is near its paper | ✓ | 0.9 | 0.85 | 0.25 |"]


def test_paper_values_name_real_figures():
    """checks every paper value is keyed by a figure that its notebook reports."""
    for name, figure in book.PAPER:
        source = (paths.REPO / "notebooks" / f"{name}.ipynb").read_text()
        assert f"{figure}=" in source, (name, figure)


def test_skipped_and_failed_notebooks_get_a_page(tmp_path):
    """checks the page of a skipped notebook gives the reason, a failed one the error, and both
    say how to re-run them in JupyterLab."""
    (tmp_path / "notebooks").mkdir()
    for name in ("06_prototypical_networks", "04_black_box_meta_learning"):
        book.notebook_page(paths.REPO / "notebooks" / f"{name}.ipynb", RESULTS, tmp_path,
                           tmp_path)
    skipped = (tmp_path / "notebooks" / "06_prototypical_networks.md").read_text()
    assert skipped.startswith("# 06 ·") and "**skipped**" in skipped
    assert "Omniglot is missing" in skipped
    failed = (tmp_path / "notebooks" / "04_black_box_meta_learning.md").read_text()
    assert "**failed**" in failed and "RuntimeError: boom" in failed and "\x1b" not in failed
    assert all("`make lab`" in page for page in (skipped, failed))


def test_a_failed_notebook_shows_its_outputs_up_to_the_failure(tmp_path):
    """checks that when the build kept the partly executed copy of a failed notebook, its page
    is that notebook: its text, the outputs of the cells that ran, the failing cell's error in
    plain text (no terminal colour codes) and a warning at the top; the home page marks it."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    name = "04_black_box_meta_learning"
    nb = new_notebook(cells=[
        new_markdown_cell("# 04 · Black-box meta-learning\nSome text the reader needs."),
        new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")]),
        new_code_cell("boom()", outputs=[new_output("error", ename="RuntimeError", evalue="boom",
                                                    traceback=["\x1b[31mRuntimeError\x1b[0m: boom"])]),
        new_code_cell("print(2)")])
    (tmp_path / "out" / "notebooks").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "out" / "notebooks" / f"{name}.ipynb")
    (tmp_path / "src" / "notebooks").mkdir(parents=True)
    book.notebook_page(paths.REPO / "notebooks" / f"{name}.ipynb", RESULTS, tmp_path / "out",
                       tmp_path / "src")
    page = nbformat.read(tmp_path / "src" / "notebooks" / f"{name}.ipynb", as_version=4)
    top = page.cells[0].source
    assert top.startswith("# 04 ·") and "```{warning}" in top and "**failed**" in top
    assert "RuntimeError: boom" in top and "Some text the reader needs." in top
    assert page.cells[1].outputs[0].text == "1\n"
    assert page.cells[2].outputs[0].traceback == ["RuntimeError: boom"]
    assert "\x1b" not in json.dumps(page)
    home = book.index_page(book.topics({"transfer"}), instructor=False, results=RESULTS)
    assert f"{{doc}}`notebooks/{name}` — **failed in the last build**" in home
    assert "1 notebook(s) failed in the last build" in home
    assert "`notebooks/06_prototypical_networks` — *skipped" in home


def test_student_edition_never_shows_solutions(tmp_path):
    """checks the student edition renders assignments/ and the instructor edition solutions/."""
    (tmp_path / "assignments").mkdir()
    assert book.assignment_page("transfer", tmp_path, instructor=False)
    student = (tmp_path / "assignments" / "transfer.ipynb").read_text()
    assert "BEGIN SOLUTION" not in student and "student release" in student
    assert not book.assignment_page("no_such_assignment", tmp_path, instructor=False)
    assert book.assignment_page("transfer", tmp_path, instructor=True)
    instructor = (tmp_path / "assignments" / "transfer.ipynb").read_text()
    assert "BEGIN SOLUTION" in instructor and "Instructor edition" in instructor


def test_home_page_lists_the_curriculum_in_order():
    """checks the home page names the topics in course order, each notebook in number order,
    the lectures by title (no file), and a hidden toctree for every notebook."""
    page = book.index_page(book.topics({"transfer", "maml_protonets"}), instructor=False)
    heads = [line for line in page.splitlines() if line.startswith("## ")]
    assert heads[0] == "## 1 · Transfer learning and fine-tuning"
    assert [h.split(" · ")[0] for h in heads] == [f"## {i}" for i in range(1, len(heads) + 1)]
    positions = [page.index(f"notebooks/{p.stem}`") for p in paths.lecture_notebooks()]
    assert positions == sorted(positions)
    assert f"*{book.COMPSCI760}*" in page and ".txt" not in page and "shared" not in page
    assert page.count("assignments/maml_protonets\n") == 1     # one toctree entry, two topics
    assert "- Assignment: not released yet" in page or "continual" in page


def test_static_widgets():
    """checks a progress bar is dropped and an interact widget becomes its control's value plus
    the figure its output area held; other outputs and no widget state are left."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def view(model_id):
        return new_output("display_data", data={book.WIDGET_VIEW: {"model_id": model_id},
                                                "text/plain": "0%|   | 0/9"})

    figure = {"output_type": "display_data", "data": {"image/png": "iVBO"}, "metadata": {}}
    state = {"bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_p"]}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 9.0}},
             "ui": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s",
                                                                      "IPY_MODEL_o"]}},
             "s": {"model_name": "FloatSliderModel", "state": {"description": "gamma",
                                                                "value": 0.9}},
             "o": {"model_name": "OutputModel", "state": {"outputs": [figure]}}}
    printed = new_output("stream", name="stdout", text="done\n")
    nb = new_notebook(cells=[new_code_cell(outputs=[view("bar"), printed, view("ui")])],
                      metadata={"widgets": {book.WIDGET_STATE: {"state": state}}})
    outputs = book.static_widgets(nb).cells[0].outputs
    assert [o.get("text", "") for o in outputs[:1]] == ["done\n"]
    assert "gamma = 0.9" in outputs[1].text
    assert outputs[2].data == {"image/png": "iVBO"} and len(outputs) == 3
    assert "widgets" not in nb.metadata


# ---------------------------------------------------------------------------- the site, slow
@pytest.mark.slow
def test_course_build_renders_the_book(tmp_path, monkeypatch):
    """checks that the course build (build.main on notebooks/) ends by rendering the book, with
    a page per lecture notebook (stand-in executions: nothing is run)."""
    from course_lib import data

    def execute(path, out, threads=None):
        (out / "notebooks").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / "notebooks" / path.name)
        return 0.1

    monkeypatch.setenv("COURSE_BUILD", str(tmp_path))
    monkeypatch.setattr(build, "execute", execute)
    monkeypatch.setattr(data, "available", lambda name: None)
    monkeypatch.setattr(data, "_status", {})  # forget what earlier tests found
    monkeypatch.setattr(build, "benchmarks", lambda: {})
    assert build.main() == 0
    pages = {p.stem for p in (tmp_path / "book" / "notebooks").glob("*.html")}
    assert pages == {p.stem for p in paths.lecture_notebooks()}
    assert (tmp_path / "book" / "_static" / "mathjax" / "MathJax.js").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(the book's folder, results.json) of a build of SMALL_SET, or of COURSE_BOOK_TEST_BUILD."""
    given = os.environ.get("COURSE_BOOK_TEST_BUILD")
    tmp = tmp_path_factory.mktemp("book")
    if given:
        out = Path(given)
    else:
        folder, out = tmp / "notebooks", tmp / "build"
        folder.mkdir()
        for name in SMALL_SET:
            shutil.copy(paths.REPO / "notebooks" / f"{name}.ipynb", folder)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COURSE_BUILD", str(out))
            mp.setenv("COURSE_BUDGET", "quick")
            build.main(folder=folder)
        # nbval leaves these notebooks to this test (see conftest.py): they must have run
        results = json.loads((out / "results.json").read_text())
        assert results["failed"] == {} and set(results["notebooks"]) == set(SMALL_SET), results
    assert book.build(out) == out / "book" / "index.html"
    book.build(out, instructor=True)
    return out / "book", json.loads((out / "results.json").read_text())


JS_PAGE = """
const done = arguments[arguments.length - 1];
const report = () => done({
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.name),
  images: [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0,
                                           !!i.closest('.cell_output')]),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  assets: [...document.querySelectorAll('script[src], link[rel=stylesheet]')]
            .map(e => e.src || e.href),
  fonts: [...document.fonts].filter(f => f.status === 'error').map(f => f.family),
  math: document.querySelectorAll('.math.nohighlight').length,  // Sphinx's, not MathJax's
  untypeset: [...document.querySelectorAll('.math.nohighlight')]
               .filter(e => !e.querySelector('.MathJax, .MathJax_Display'))
               .map(e => e.textContent.slice(0, 80)),
  typeset: document.querySelectorAll('.MathJax').length,
  math_errors: document.querySelectorAll('.MathJax_Error, merror, .merror').length,
  tables: [...document.querySelectorAll('table')].map(t => t.innerText),
  text: document.body.innerText,
});
const start = Date.now();
if (!document.querySelector('script[src*="MathJax.js"]')) { report(); } else {
  (function wait() {  // until MathJax has typeset the page, or 20 s (then the checks fail)
    if (window.MathJax && MathJax.Hub && MathJax.Hub.Register)
      MathJax.Hub.Register.StartupHook('End', () => setTimeout(report, 100));
    else if (Date.now() - start > 20000) report();
    else setTimeout(wait, 50);
  })();
}
"""


def visit_all(root: Path, shots: dict[str, str] | None = None) -> dict[Path, dict]:
    """Open every page of the site under ``root`` (file://) and return what JS_PAGE saw, with
    the browser's log; ``shots``: page (relative) → screenshot name under SCREENSHOTS (a second
    one, ``<name>-figure.png``, centred on the page's first figure when it has one)."""
    seen = {}
    with chromium(root.parent / f"chromium-profile-{root.name}") as driver:
        pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.parts)
        for page in sorted(pages, key=lambda p: p != root / "index.html"):  # home first
            driver.get(page.as_uri())
            seen[page] = driver.execute_async_script(JS_PAGE)
            seen[page]["log"] = driver.get_log("browser")
            name = (shots or {}).get(page.relative_to(root).as_posix())
            if name:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
                figure = driver.find_elements("css selector", ".cell_output img")
                if figure:
                    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                                          figure[0])
                    driver.save_screenshot(str(SCREENSHOTS / f"{name}-figure.png"))
    return seen


def local(url: str) -> Path | None:
    """The file a file:// URL points at, None for any other scheme."""
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def check_page(page: Path, info: dict, ids: dict[Path, set]) -> list[str]:
    """Every problem on one page: broken local links or anchors, failed or remote loads, images
    that did not load, math left untypeset, errors in the browser's log."""
    problems = []
    for url in info["links"]:
        target = local(url)
        if target is None:
            continue  # an external link (a paper, nbgrader's docs), not an asset
        fragment = unquote(urlparse(url).fragment)
        if not target.exists():
            problems.append(f"broken link {url}")
        elif fragment and target in ids and fragment not in ids[target]:
            problems.append(f"missing anchor {url}")
    for url in info["resources"] + info["assets"]:
        if not url.startswith(("file:", "data:", "blob:")):
            problems.append(f"loads from the network: {url}")
        elif local(url) is not None and not local(url).exists():
            problems.append(f"missing resource {url}")
    problems += [f"image not loaded {src[:80]}" for src, ok, _ in info["images"] if not ok]
    # MathJax_Blank is MathJax's probe: a font that never loads, by design
    problems += [f"font failed {family}" for family in info["fonts"] if family != "MathJax_Blank"]
    problems += [f"browser log: {e['message']}" for e in info["log"] if e["level"] == "SEVERE"]
    problems += [f"equation not typeset: {tex!r}" for tex in info["untypeset"]]
    if info["math_errors"]:
        problems.append(f"{info['math_errors']} MathJax errors")
    for raw in ("$$", "\\(", "\\["):
        if raw in info["text"]:
            problems.append(f"raw {raw!r} in the visible text")
    return [f"{page.name}: {p}" for p in problems]


def figures_in(path: Path) -> int:
    """The image outputs of an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    return sum(any(k.startswith("image/") for k in o.get("data", {}))
               for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.slow
def test_book_in_a_browser(site):
    """checks, in headless Chromium over file://: every page of both editions loads with no
    broken internal link or anchor, nothing from the network, no failed load, every image
    loaded, every equation typeset by the bundled MathJax; each executed notebook's page shows
    all its figures; the results table lists each executed notebook with its figures; the
    student edition has no solutions, the instructor edition says what it is."""
    root, results = site
    executed = next(iter(results["notebooks"]), None)
    shots = {"index.html": "home"}
    if executed:
        shots[f"notebooks/{executed}.html"] = "notebook"
    seen = visit_all(root, shots)
    ids = {page: set(info["ids"]) for page, info in seen.items()}
    problems = [p for page, info in seen.items() for p in check_page(page, info, ids)]
    assert not problems, "\n".join(problems)

    notebooks = {p.stem for p in (root / "notebooks").glob("*.html")}
    assert notebooks == {p.stem for p in paths.lecture_notebooks()}     # every lecture notebook
    assert sum(info["typeset"] for info in seen.values()) > 0   # equations somewhere, typeset
    shown = {}
    for name in results["notebooks"]:
        info = seen[root / "notebooks" / f"{name}.html"]
        shown[name] = sum(inside for _, _, inside in info["images"])
        # an interact widget's figure lives in the widget state, not in the cell's outputs
        assert shown[name] >= figures_in(root.parent / "notebooks" / f"{name}.ipynb"), name
        assert "make lab" in info["text"] and f"notebooks/{name}.ipynb" in info["text"]
    assert not results["notebooks"] or max(shown.values()) > 0   # figures somewhere, loaded
    tables = "\n".join(seen[root / "results.html"]["tables"])
    for name, record in results["notebooks"].items():
        assert name in tables
        assert all(figure in tables for figure in record["figures"])
    assert "Benchmarks" in seen[root / "results.html"]["text"]
    home = seen[root / "index.html"]["text"]
    assert "1 · Transfer learning and fine-tuning" in home and "make lab" in home
    for page, info in seen.items():
        assert "BEGIN SOLUTION" not in info["text"] and "BEGIN HIDDEN TESTS" not in info["text"]

    instructor = visit_all(root.parent / "book-instructor")
    ids = {page: set(info["ids"]) for page, info in instructor.items()}
    problems = [p for page, info in instructor.items() for p in check_page(page, info, ids)]
    assert not problems, "\n".join(problems)
    pages = [info["text"] for page, info in instructor.items() if "assignments" in page.parts]
    assert pages and all("Instructor edition" in text for text in pages)
    assert any("BEGIN HIDDEN TESTS" in text or "BEGIN SOLUTION" in text for text in pages)
    assert all((SCREENSHOTS / f"{name}.png").stat().st_size > 10_000 for name in shots.values())


@pytest.mark.slow
def test_quizzes_work_in_the_book(site):
    """checks, in headless Chromium, every question form of each executed notebook's page:
    Check with nothing picked asks for a choice, a wrong option says try again, the right one
    (from the notebook's questions file) says right with its explanation."""
    import tomllib

    from course_lib import quiz

    root, results = site
    with chromium(root.parent / "chromium-profile-quiz") as driver:
        for name in results["notebooks"]:
            answers = [q["answer"] for q in tomllib.loads(
                (quiz.FOLDER / f"{name}.toml").read_text())["question"]]
            driver.get((root / "notebooks" / f"{name}.html").as_uri())
            forms = driver.find_elements("css selector", "form.course-quiz")
            assert len(forms) == len(answers), name
            for form, answer in zip(forms, answers):
                verdict = form.find_element("css selector", ".course-quiz-verdict")
                button = form.find_element("css selector", "button")
                options = form.find_elements("css selector", "input[type=radio]")
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", form)
                button.click()
                assert verdict.text == "Pick an answer first."
                options[(answer + 1) % len(options)].click()
                button.click()
                assert verdict.text.startswith("✗ Not quite"), verdict.text
                options[answer].click()
                button.click()
                assert verdict.text.startswith("✓ Right.") and len(verdict.text) > 20, verdict.text
