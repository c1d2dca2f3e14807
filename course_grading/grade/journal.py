"""Resuming a killed ``course grade``: who of the batch is recorded already."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .. import course


class Journal:
    """Who of a batch is recorded, so that re-running a grading command that was killed
    resumes it: after a student's gradebook entry, files and late penalty are written, their
    result goes to ``build/grading/<assignment>/recorded/<student>.json`` under a key of all
    that decides the grade (the submission's files, the assignment's notebooks, the limits,
    the kernel's settings, the course's nbgrader configuration (late penalties), the grader's
    and course_lib's code). A student whose key matches is
    not graded again; the journal is removed when the batch is done, so a later run grades
    everyone afresh."""

    def __init__(self, course_root: Path, assignment: str):
        self.folder = course_root / "build" / "grading" / assignment / "recorded"
        code = sorted(p for package in (Path(__file__).parents[1], course.REPO / "course_lib")
                      for p in package.rglob("*.py"))
        config = course_root / course.CONFIG_FILE
        self.code = _digest(([config] if config.is_file() else []) + code)

    def key(self, job: dict) -> str:
        decides = {k: job[k] for k in ("student", "limits", "mode", "env")}
        files = sorted(p for p in Path(job["folder"]).rglob("*") if p.is_file())
        notebooks = sorted(Path(p) for paths in job["notebooks"].values() for p in paths.values())
        return _digest(notebooks + files, json.dumps(decides, sort_keys=True) + self.code)

    def _file(self, job: dict) -> Path:
        return self.folder / f"{job['student']}.json"

    def recorded(self, job: dict) -> dict | None:
        try:
            entry = json.loads(self._file(job).read_text())
        except (OSError, ValueError):
            return None
        return entry["result"] if entry.get("key") == self.key(job) else None

    def add(self, job: dict, result: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._file(job).with_suffix(".partial")
        partial.write_text(json.dumps({"key": self.key(job), "result": result}))
        os.replace(partial, self._file(job))   # whole or absent, whatever kills the process

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _digest(paths: list[Path], text: str = "") -> str:
    digest = hashlib.sha256(text.encode())
    for path in paths:
        digest.update(f"\0{path}\0".encode())
        with open(path, "rb") as file:   # in chunks: a submission may hold a large file
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()
