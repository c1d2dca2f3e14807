"""Grading a class (instructors only; not in the student edition): every submission through
:mod:`course_grading.check` in its own sandbox, in parallel, recorded in nbgrader's gradebook.

- :mod:`~course_grading.grade.batch` — ``course grade``: collect the class, run the jobs, record
  each result as it comes, write the report;
- :mod:`~course_grading.grade.job` — one student's notebooks through the pipeline (in a worker);
- :mod:`~course_grading.grade.workers` — local worker processes; :mod:`~course_grading.grade.cluster`
  — a Dask cluster instead;
- :mod:`~course_grading.grade.journal` — resuming a killed run;
- :mod:`~course_grading.grade.record` — the gradebook, late penalties, the copies nbgrader keeps;
- :mod:`~course_grading.grade.feedback` — feedback pages and notebooks safe to open;
- :mod:`~course_grading.grade.report` — ``grades.csv``, ``report.json`` and the summary;
- :mod:`~course_grading.grade.export` — final grades after grading by hand;
- :mod:`~course_grading.grade.assignments` — nbgrader's release and autograde round trips;
- :mod:`~course_grading.grade.publish` — the student edition.
"""



