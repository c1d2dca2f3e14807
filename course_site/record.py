"""``build/results.json``: what the course produced, and the one module that writes it.

    {"budget": …, "notebooks": {name: {"budget", "seconds", "figures"}},
     "skipped": {name: [reason, …]}, "failed": {name: error},
     "benchmarks": {figure: value, …}}

The course build (:mod:`course_site.build`) replaces the notebook sections; the benchmarks
(``make bench``) add to ``benchmarks``; each keeps what the other wrote. The file is written
to a temporary name and renamed, so a reader never sees half of it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from course_lib.paths import build_dir

NAME = "results.json"


def path() -> Path:
    return build_dir() / NAME


def read() -> dict:
    """The current results (empty when nothing was recorded yet)."""
    return json.loads(path().read_text()) if path().exists() else {}


def update(sections: dict | None = None, benchmarks: dict | None = None) -> Path:
    """Replace the top-level ``sections`` (e.g. ``notebooks``) and merge ``benchmarks`` into the
    recorded benchmarks; everything else stays. Returns the file's path."""
    results = read()
    results.update(sections or {})
    results["benchmarks"] = {**results.get("benchmarks", {}), **(benchmarks or {})}
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{NAME}.{os.getpid()}.partial")
    partial.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    os.replace(partial, target)
    return target
