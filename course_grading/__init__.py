"""course_grading: the course's grading system, for instructors (and ``course check`` for students).

It grades with nbgrader's gradebook and rules, runs each submission in its own sandbox and never
imports torch (a student's kernel does; this process does not). Its folders follow the path a
submission takes:

- :mod:`course_grading.check`  — one submission: assemble the graded notebook, read it, run it,
  the verdict, the points (``course check`` runs the same steps on a student's notebook);
- :mod:`course_grading.kernel` — the sandbox kernel it runs in, and the guard inside it;
- :mod:`course_grading.grade`  — a class: workers or a Dask cluster, the journal, the gradebook,
  feedback, the CSV and report, the final export, the release and the student edition
  (instructors only: the student edition is this package without ``grade/``);
- :mod:`course_grading.course` — the one loader of the course's nbgrader configuration and
  gradebook; :mod:`course_grading.cli` — the ``course`` command.

It takes the repository's paths from :mod:`course_lib.paths` and nothing else from the teaching
library.
"""
import sys as _sys

# nbformat imports jsonschema, whose optional IRI format checks (rfc3987-syntax, installed with
# Jupyter's event schemas) build 38 parsers at import: 0.9 s of every `course` command and
# grading worker. Nothing here validates an IRI; jsonschema goes on without those checks.
_sys.modules.setdefault("rfc3987_syntax", None)
