"""course_site: the course's site and measurements, built from the teaching library's notebooks.

- :mod:`course_site.build`     — ``make course``: execute every lecture notebook into ``build/``;
- :mod:`course_site.book`      — the course book, a static site rendered from ``build/``;
- :mod:`course_site.record`    — ``build/results.json``, its one writer;
- :mod:`course_site.benchmarks`, :mod:`course_site.grading_benchmark` — ``make bench``;
- :mod:`course_site.paper`     — ``make paper``: paper-scale runs on a GPU.

It imports the teaching library (:mod:`course_lib`) and the grading system
(:mod:`course_grading`); neither of them imports it.
"""
