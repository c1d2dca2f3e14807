"""course_grading: the course's grading system, for instructors (and ``course check`` for students).

It grades with nbgrader's gradebook and rules, runs each submission in its own sandbox and never
imports torch (a student's kernel does; this process does not):

- :mod:`course_grading.grading`     — nbgrader's API: the release of every assignment, points per
  part, autograding one submission;
- :mod:`course_grading.submissions` — a submission checked against the release (tampering) and
  rebuilt with the hidden tests;
- :mod:`course_grading.sandbox`     — a Jupyter kernel with limits, isolated by Linux namespaces;
- :mod:`course_grading.runner`      — run a notebook's cells in the sandbox, whatever they do;
- :mod:`course_grading.grader`      — grade a class in parallel: gradebook, CSV, feedback, summary;
- :mod:`course_grading.cli`         — the ``course`` command: check, release, grade, publish;
- :mod:`course_grading.publish`     — the student edition (only what ``course check`` needs).

It takes the repository's paths from :mod:`course_lib.paths` and nothing else from the teaching
library.
"""
