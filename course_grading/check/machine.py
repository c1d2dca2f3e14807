"""What a machine needs before it runs an assignment's notebook: the data sets the source
notebook declares (``"course": {"data": [...]}`` in its metadata).

A missing data set is the machine's fault, never the student's: grading and ``course check``
ask :func:`missing_data` first and stop with its message before any kernel runs or any score
is written. The check loads each data set in a child process (the grading command does not
import torch), which also fills the decoded-tensor cache that graded kernels read.
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


def data_needed(notebooks) -> list[str]:
    """The data sets that the notebooks (paths) declare, in order, without repeats."""
    names: list[str] = []
    for path in notebooks:
        declared = json.loads(Path(path).read_text()).get("metadata", {}).get("course", {})
        names += [n for n in declared.get("data", []) if n not in names]
    return names


def missing_data(notebooks, env: dict | None = None) -> str | None:
    """``None`` when every data set the notebooks need loads here; else what is missing and
    what to set or run (the teaching library's message). ``env``: settings the kernels will
    run with (e.g. a grading job's ``COURSE_DATA``) over this process's environment."""
    env = {**os.environ, **(env or {})}
    where = Path(env["COURSE_DATA"]).expanduser().resolve() if "COURSE_DATA" in env else data_dir()
    names = [n for n in data_needed(notebooks) if (n, where) not in _loaded]
    if not names:
        return None
    done = subprocess.run([sys.executable, "-m", "course_lib.data", "check", *names],
                          cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode == 0:
        _loaded.update((n, where) for n in names)
        return None
    return done.stderr.strip() or f"the data sets {', '.join(names)} cannot be loaded here"


_loaded: set = set()   # (data set, data directory) found in this process: not checked again
