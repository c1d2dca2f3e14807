"""What one submission goes through, from the folder to the points (``course check`` runs the
same steps on a student's own notebook; the student edition ships this package and
:mod:`course_grading.kernel`):

1. :mod:`~course_grading.check.assemble` — find and read the notebook, check it against the
   release, rebuild the notebook that is graded (hidden tests restored);
2. :mod:`~course_grading.check.reading` — read the student's cells (tricks, delegation, pasted
   course code): notes for the instructor;
3. :mod:`~course_grading.check.run` — run it in a sandbox kernel (:mod:`course_grading.kernel`);
4. :mod:`~course_grading.check.verdict` — what the kernel's guard saw, and what it costs;
5. :mod:`~course_grading.check.score` — points per test cell and per part.

:mod:`~course_grading.check.cells` is the one reader of nbgrader's cell metadata;
:class:`~course_grading.check.findings.Finding` is what every step reports.
"""



