"""The course's main job: execute every lecture notebook into ``build/`` and collect results.

``python -m course_site.build`` (called by ``make course``) runs each notebook in ``notebooks/``
at the budget ``COURSE_BUDGET`` names (default: ``default``) and writes

- ``build/notebooks/<name>.ipynb`` — the executed notebook,
- ``build/html/<name>.html`` — the same as a web page,
- ``build/figures/`` — the figures and each notebook's headline numbers,
- ``build/results.json`` — ``{"notebooks": {name: {"budget", "seconds", "figures"}},
  "benchmarks": {...}, "skipped": {...}, "failed": {...}}``.
- ``build/book/index.html`` — the course book, rendered from all of the above by
  :mod:`course_site.book`.

A notebook declares the data sets it needs in its metadata (``"course": {"data": [...]}``).
When one of them cannot be had, the notebook is skipped — the others still run — and the
run ends with a list of what was skipped, why, and how to provide the data.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from course_lib import data
from course_lib.budget import get_budget
from course_lib.paths import NOTEBOOKS, build_dir, lecture_notebooks

from . import book, record


def execute(path: Path, out: Path) -> float:
    """Execute one notebook (cwd = its folder), save it and its HTML; return the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        seconds = time.perf_counter() - start
        (out / "notebooks").mkdir(parents=True, exist_ok=True)
        (out / "html").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / "notebooks" / path.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out / "html" / path.with_suffix(".html").name).write_text(html)
    return seconds


def benchmarks() -> dict:
    """Speed figures the brief promises: loading cached Omniglot (target: under 2 s)."""
    data.load_omniglot("background")  # fills the cache if needed
    start = time.perf_counter()
    data.load_omniglot("background"), data.load_omniglot("evaluation")
    return {"omniglot_cached_load_seconds": round(time.perf_counter() - start, 3)}


def main(folder: Path = NOTEBOOKS) -> int:
    """Execute the notebooks of ``folder`` (default: ``notebooks/``, then render the course book
    from them); 1 if one failed, else 0."""
    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    budget = get_budget()
    results = {"budget": budget.name, "notebooks": {}, "skipped": {}, "failed": {}}
    for path in lecture_notebooks(folder):
        name = path.stem
        missing = data.missing_for(path)
        if missing:
            results["skipped"][name] = [str(err) for err in missing]
            print(f"[skip] {name}: needs {', '.join(e.name for e in missing)}", flush=True)
            continue
        print(f"[run ] {name} (budget {budget.name}) …", flush=True)
        (out / "figures" / f"{name}.json").unlink(missing_ok=True)
        try:
            seconds = execute(path, out)
        except Exception as err:  # keep going: one failing notebook must not hide the others
            results["failed"][name] = f"{type(err).__name__}: {str(err)[-2000:]}"
            print(f"[FAIL] {name}: {type(err).__name__}", flush=True)
            continue
        entry = {"budget": budget.name, "seconds": round(seconds, 1), "figures": {}}
        figures = out / "figures" / f"{name}.json"
        if figures.exists():
            entry["figures"] = json.loads(figures.read_text())["figures"]
        results["notebooks"][name] = entry
        print(f"       done in {seconds:.0f} s", flush=True)
    # the benchmarks `make bench` recorded stay; time the data cache when Omniglot is there
    record.update(results, benchmarks=benchmarks() if data.checked("omniglot") is None else {})
    summary(results, out)
    if Path(folder) == NOTEBOOKS:  # the book is of the course's notebooks, not a test folder's
        print(f"wrote the course book: {book.build(out)}")
    return 1 if results["failed"] else 0


def summary(results: dict, out: Path) -> None:
    print(f"\nwrote {out / record.NAME}: {len(results['notebooks'])} notebooks executed")
    for name, why in results["failed"].items():
        print(f"\nFAILED {name}: {why}")
    if results["skipped"]:
        print("\nSkipped because a data set is missing:")
        for name, reasons in results["skipped"].items():
            print(f"\n- {name}")
            for reason in reasons:
                print("    " + reason.replace("\n", "\n    "))


if __name__ == "__main__":
    sys.exit(main())
