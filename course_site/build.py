"""The course's main job: execute every lecture notebook into ``build/`` and collect results.

``python -m course_site.build`` (called by ``make course``) runs each notebook in ``notebooks/``
at the budget ``COURSE_BUDGET`` names (default: ``default``) and writes

- ``build/notebooks/<name>.ipynb`` — the executed notebook,
- ``build/html/<name>.html`` — the same as a web page,
- ``build/figures/`` — the figures and each notebook's headline numbers,
- ``build/results.json`` — ``{"budget", "seed", "notebooks": {name: {"budget", "seconds",
  "figures", "claims"}}, "benchmarks": {...}, "skipped": {...}, "failed": {...}}``; ``seed`` is
  the ``COURSE_SEED`` every notebook's seeds were moved by (0 unless set).
- ``build/book/index.html`` — the course book, rendered from all of the above by
  :mod:`course_site.book`.

A notebook declares the data sets it needs in its metadata (``"course": {"data": [...]}``).
When one of them cannot be had, the notebook is skipped — the others still run — and the
run ends with a list of what was skipped, why, and how to provide the data.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter

from course_grading.check.run import HeadlessClient
from course_lib import data
from course_lib.budget import get_budget
from course_lib.paths import NOTEBOOKS, build_dir, lecture_notebooks
from course_lib.seeding import course_seed

from . import book, record


def _unix_socket_kernels(folder: Path) -> type:
    """A kernel manager class whose kernels listen on Unix sockets in ``folder``."""
    class UnixSocketKernel(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=str(folder / "k"), **kwargs)
    return UnixSocketKernel


def execute(path: Path, out: Path, threads: int | None = None) -> float:
    """Execute one notebook (cwd = its folder), save it and its HTML; return the seconds taken.
    ``threads``: OMP/MKL threads of its kernel (default: as the environment says)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                            if threads else {})}
    try:   # the kernel talks over Unix sockets in a private folder (not over TCP)
        with tempfile.TemporaryDirectory(prefix="course-kernel-") as sockets:
            client = HeadlessClient(nb, timeout=1800, kernel_name="python3",
                                    kernel_manager_class=_unix_socket_kernels(Path(sockets)),
                                    resources={"metadata": {"path": str(path.parent)}})
            client.execute(env=env)
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


def reuses(path: Path) -> list[str]:
    """The notebooks whose trained models ``path`` loads from the cache (its metadata's
    ``"course": {"reuses": [...]}``): it runs after them."""
    return nbformat.read(path, as_version=4).metadata.get("course", {}).get("reuses", [])


def jobs() -> int:
    """Notebooks executed at once: ``COURSE_JOBS``, default the machine's cores. Most notebooks
    run one thread, so on 2 cores two of them take little longer than one."""
    return max(1, int(os.environ.get("COURSE_JOBS", os.cpu_count() or 1)))


def expected_seconds(path: Path) -> float:
    """How long ``path`` took at the default budget when it was last measured by hand (its
    metadata's ``"course": {"seconds": ...}``; 0 when it says nothing): the schedule's guess
    before this machine has recorded a run."""
    return float(nbformat.read(path, as_version=4).metadata.get("course", {}).get("seconds", 0.0))


def _order(paths: list[Path]) -> list[Path]:
    """Longest chain first: a notebook's own seconds (in the last run recorded here, else
    :func:`expected_seconds`) plus the longest chain of the notebooks that reuse it, so a long
    notebook and what waits for it start early and the last to finish is a short one; course
    order among equals."""
    last = record.read().get("notebooks", {})
    users = {p.stem: [q for q in paths if p.stem in reuses(q)] for p in paths}

    def seconds(p: Path) -> float:
        return last[p.stem]["seconds"] if "seconds" in last.get(p.stem, {}) else expected_seconds(p)

    def chain(p: Path) -> float:
        return seconds(p) + max(map(chain, users[p.stem]), default=0.0)

    return sorted(paths, key=lambda p: -chain(p))


def main(folder: Path = NOTEBOOKS) -> int:
    """Execute the notebooks of ``folder`` (default: ``notebooks/``, then render the course book
    from them), :func:`jobs` at a time, each after the ones it reuses; 1 if one failed, else 0."""
    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    budget = get_budget()
    results = {"budget": budget.name, "seed": course_seed(), "notebooks": {}, "skipped": {},
               "failed": {}}
    runnable = []
    for path in lecture_notebooks(folder):
        missing = data.missing_for(path)
        if missing:
            results["skipped"][path.stem] = [str(err) for err in missing]
            print(f"[skip] {path.stem}: needs {', '.join(e.name for e in missing)}", flush=True)
        else:
            runnable.append(path)
    workers = min(jobs(), max(len(runnable), 1))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending, running = _order(runnable), {}
        while pending or running:
            ready = [p for p in pending if not set(reuses(p)) & ({q.stem for q in pending}
                                                                 | set(running.values()))]
            for path in ready[:workers - len(running)]:
                pending.remove(path)
                print(f"[run ] {path.stem} (budget {budget.name}) …", flush=True)
                running[pool.submit(_run, path, out, budget, threads=max(1, (os.cpu_count() or 1)
                                                                          // workers))] = path.stem
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                outcome = future.result()
                if "error" in outcome:
                    results["failed"][name] = outcome["error"]
                    print(f"[FAIL] {name}: {outcome['error'].split(':')[0]}", flush=True)
                else:
                    results["notebooks"][name] = outcome
                    print(f"       {name} done in {outcome['seconds']:.0f} s", flush=True)
    results["notebooks"] = dict(sorted(results["notebooks"].items()))
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    results["jobs"] = workers
    # the benchmarks `make bench` recorded stay; time the data cache when Omniglot is there
    record.update(results, benchmarks=benchmarks() if data.checked("omniglot") is None else {})
    summary(results, out)
    if Path(folder) == NOTEBOOKS:  # the book is of the course's notebooks, not a test folder's
        print(f"wrote the course book: {book.build(out)}")
    return 1 if results["failed"] else 0


def _run(path: Path, out: Path, budget, threads: int) -> dict:
    """Execute one notebook; its entry of results.json, or ``{"error": ...}``."""
    name = path.stem
    for stale in (f"{name}.json", f"{name}.claims.json"):
        (out / "figures" / stale).unlink(missing_ok=True)
    try:
        seconds = execute(path, out, threads)
    except Exception as err:  # keep going: one failing notebook must not hide the others
        return {"error": f"{type(err).__name__}: {book.plain(str(err))[-2000:]}"}
    entry = {"budget": budget.name, "seconds": round(seconds, 1), "figures": {}}
    figures = out / "figures" / f"{name}.json"
    if figures.exists():
        entry["figures"] = json.loads(figures.read_text())["figures"]
    claims = out / "figures" / f"{name}.claims.json"
    if claims.exists():   # a claim that does not hold fails the notebook (Claims.verify)
        entry["claims"] = json.loads(claims.read_text())["claims"]
    return entry


def summary(results: dict, out: Path) -> None:
    print(f"\nwrote {out / record.NAME}: {len(results['notebooks'])} notebooks executed "
          f"(COURSE_SEED={results.get('seed', 0)})")
    if results["notebooks"]:
        total = sum(r["seconds"] for r in results["notebooks"].values())
        print(f"notebooks: {results.get('wall_seconds', total):.0f} s wall time with "
              f"{results.get('jobs', 1)} at once ({total:.0f} s of notebook time)")
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
