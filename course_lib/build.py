"""The course's main job: execute every lecture notebook into ``build/`` and collect results.

``python -m course_lib.build`` (called by ``make course``) runs each notebook in ``notebooks/``
at the budget ``COURSE_BUDGET`` names (default: ``default``) and writes

- ``build/notebooks/<name>.ipynb`` — the executed notebook,
- ``build/html/<name>.html`` — the same as a web page,
- ``build/figures/`` — the figures and each notebook's headline numbers,
- ``build/results.json`` — ``{"notebooks": {name: {"budget", "seconds", "figures"}},
  "benchmarks": {...}, "skipped": {...}, "failed": {...}}``.
- ``build/book/index.html`` — the course book, rendered from all of the above by
  :mod:`course_lib.book`.

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

from . import data
from .budget import get_budget
from .results import build_dir

REPO = Path(__file__).resolve().parents[1]


def notebooks(folder: Path = REPO / "notebooks") -> list[Path]:
    """The lecture notebooks, in course order (their file names start with the number)."""
    return sorted(folder.glob("[0-9]*.ipynb"))


def needed_data(nb) -> list[str]:
    return list(nb.metadata.get("course", {}).get("data", []))


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


def main(folder: Path = REPO / "notebooks") -> int:
    """Execute the notebooks of ``folder`` (default: ``notebooks/``, then render the course book
    from them); 1 if one failed, else 0."""
    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    budget = get_budget()
    results = {"budget": budget.name, "notebooks": {}, "benchmarks": {}, "skipped": {},
               "failed": {}}
    status = {}
    for path in notebooks(folder):
        name = path.stem
        missing = []
        for ds in needed_data(nbformat.read(path, as_version=4)):
            if ds not in status:
                status[ds] = data.available(ds)
            if status[ds] is not None:
                missing.append(status[ds])
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
        record = {"budget": budget.name, "seconds": round(seconds, 1), "figures": {}}
        figures = out / "figures" / f"{name}.json"
        if figures.exists():
            record["figures"] = json.loads(figures.read_text())["figures"]
        results["notebooks"][name] = record
        print(f"       done in {seconds:.0f} s", flush=True)
    if "omniglot" not in status:  # no notebook asked: check before timing, never crash here
        status["omniglot"] = data.available("omniglot")
    previous = out / "results.json"   # keep the figures `make bench` wrote earlier
    if previous.exists():
        results["benchmarks"] = json.loads(previous.read_text()).get("benchmarks", {})
    if status["omniglot"] is None:
        results["benchmarks"].update(benchmarks())
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    summary(results, out)
    if folder == REPO / "notebooks":  # the book is of the course's notebooks, not a test folder's
        from . import book
        print(f"wrote the course book: {book.build(out)}")
    return 1 if results["failed"] else 0


def summary(results: dict, out: Path) -> None:
    print(f"\nwrote {out / 'results.json'}: {len(results['notebooks'])} notebooks executed")
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
