"""Around and inside a graded kernel (shipped in the student edition with :mod:`course_grading.check`):

- :mod:`~course_grading.kernel.sandbox` — the kernel's launcher: namespaces, read-only and private
  folders, limits;
- :mod:`~course_grading.kernel.guard` — inside the kernel: the audit hook and the state restored
  before every test cell; :mod:`~course_grading.kernel.tripwire` (own work, by effect) and
  :mod:`~course_grading.kernel.plain` (plain values for the tests) are its helpers.
"""
