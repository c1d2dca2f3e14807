"""One student's notebooks through :mod:`course_grading.check`, in a worker process:
assemble, run, police, score, and the feedback page (the parent records it)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat

from ..check import assemble, reading
from ..check.findings import Finding
from ..check.run import run_notebook
from ..check.score import not_run, scores_of
from ..check.verdict import penalise, police
from ..course import REPO
from ..kernel.sandbox import Limits
from .feedback import feedback_html, inert, leaks
from .record import outcome_of


def grade_one(job: dict) -> dict:
    """Grade one student's notebooks (runs in a worker process); returns a JSON-able result.

    ``job``: student, folder, notebooks (``name → {release, source}`` paths), workdir, out,
    limits, hide, mode, env.
    """
    start = time.monotonic()
    result = {"student": job["student"], "notebooks": {}}
    names = list(job["notebooks"])
    given = {name: (nbformat.read(paths["release"], as_version=4),
                    nbformat.read(paths["source"], as_version=4))
             for name, paths in job["notebooks"].items()}   # read once per student
    for name, paths in job["notebooks"].items():
        release, source = given[name]
        notes, findings, events = [], [], []
        path, note = assemble.find_notebook(Path(job["folder"]), name, release,
                                            [n for n in names if n != name])
        notes += [note] if note else []
        submitted = None
        if path is not None:
            try:
                submitted = assemble.read_notebook(path)
            except assemble.SubmissionError as error:
                notes.append(str(error))
        if submitted is not None:
            findings = assemble.check(submitted, release)
        graded = assemble.graded_notebook(submitted, release, source)
        if submitted is None:
            executed = not_run(graded, notes[-1] if notes else "nothing to grade")
        else:
            workdir = Path(job["workdir"]) / name[:8]
            workdir.mkdir(parents=True)
            declared = reading.own_work(paths["source"])
            run = run_notebook(graded, workdir, Limits(**job["limits"]), job["hide"],
                               job["mode"], job["env"], declared, job.get("warm"))
            executed, events = run.notebook, run.events
            result["run_seconds"] = round(run.seconds, 2)
            verdict = police(graded, declared, run.integrity, REPO, release)
            penalise(executed, verdict)
            findings += verdict.findings
            findings += [Finding(label, "an output shows hidden test code; it was removed from "
                                        "the feedback", True)
                         for label in leaks(executed, release, source)]
        out = Path(job["out"]) / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(inert(executed), out)
        result["notebooks"][name] = {
            "executed": str(out), "submitted": str(path) if path else None,
            "scores": scores_of(executed), "notes": notes + events,
            "findings": [f.as_dict() for f in findings]}
    outcome = outcome_of(result, job["points"])
    for name, (release, source) in given.items():
        nb = result["notebooks"][name]
        nb["feedback"] = str(Path(job["out"]) / f"{name}.html")
        Path(nb["feedback"]).write_text(feedback_html(
            nbformat.read(nb["executed"], as_version=4), release, outcome, source))
    result["seconds"] = round(time.monotonic() - start, 2)
    return result


def main(argv: list[str]) -> int:
    """Worker entry: ``python -m course_grading.grade.job JOB.json`` writes ``<out>/result.json``."""
    job = json.loads(Path(argv[0]).read_text())
    result = grade_one(job)
    Path(job["out"]).mkdir(parents=True, exist_ok=True)
    (Path(job["out"]) / "result.json").write_text(json.dumps(result))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
