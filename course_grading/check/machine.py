"""What a machine needs before it runs an assignment's notebook: the data sets the source
notebook declares (``"course": {"data": [...]}`` in its metadata), and the trained models it
declares (``"course": {"models": [...]}``, names of ``course_lib.finetuning.MODELS``).

A missing data set is the machine's fault, never the student's: grading and ``course check``
ask :func:`missing_data` first and stop with its message before any kernel runs or any score
is written. The check loads each data set in a child process (the grading command does not
import torch), which also fills the decoded-tensor cache that graded kernels read; then it trains the declared
models into the cache the kernels read (``COURSE_CACHE_SHARED``), so that no kernel trains them
again (a few seconds of CPU each, once per student). A model that cannot be trained there is
no reason to stop: each kernel then trains it for itself, as it would anyway.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from course_lib.paths import REPO, data_dir


class MachineNotReady(RuntimeError):
    """This machine cannot run the assignment (a data set is missing): nothing was graded."""


def declared(notebooks, kind: str = "data") -> list[str]:
    """The data sets (``kind="data"``) or models (``"models"``) that the notebooks (paths)
    declare, in order, without repeats."""
    names: list[str] = []
    for path in notebooks:
        course = json.loads(Path(path).read_text()).get("metadata", {}).get("course", {})
        names += [n for n in course.get(kind, []) if n not in names]
    return names


def missing_data(notebooks, env: dict | None = None) -> str | None:
    """``None`` when every data set the notebooks need loads here; else what is missing and
    what to set or run (the teaching library's message). ``env``: settings the kernels will
    run with (e.g. a grading job's ``COURSE_DATA``) over this process's environment."""
    notebooks = list(notebooks)
    env = {**os.environ, **(env or {})}
    where = Path(env["COURSE_DATA"]).expanduser().resolve() if "COURSE_DATA" in env else data_dir()
    names = [n for n in declared(notebooks) if (n, where) not in _loaded]
    if names:
        done = subprocess.run([sys.executable, "-m", "course_lib.data", "check", *names],
                              cwd=REPO, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            return done.stderr.strip() or f"the data sets {', '.join(names)} cannot be loaded here"
        _loaded.update((n, where) for n in names)
    _warm(declared(notebooks, "models"), env)
    return None


def _warm(models: list[str], env: dict) -> None:
    """Train the models into the cache the kernels read, as a kernel would (``COURSE_SEED`` 0);
    once per cache and process. A failure is left for the kernels (they train for themselves)."""
    cache = env.get("COURSE_CACHE_SHARED") or env.get("COURSE_CACHE") or ""
    models = [m for m in models if (m, cache) not in _loaded]
    if models:
        child = {**env, "COURSE_SEED": "0"}
        if env.get("COURSE_CACHE_SHARED"):   # a job's settings: its kernels read this cache
            child["COURSE_CACHE"] = env["COURSE_CACHE_SHARED"]
        done = subprocess.run([sys.executable, "-m", "course_lib.finetuning", "warm", *models],
                              cwd=REPO, capture_output=True, text=True, env=child)
        if done.returncode == 0:
            _loaded.update((m, cache) for m in models)


_loaded: set = set()   # (data set, data directory) or (model, cache) done in this process
