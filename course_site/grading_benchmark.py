"""Grading throughput: ``make bench`` (``python -m course_site.grading_benchmark``).

Grades the same class — ``students`` honest submissions of ``transfer`` (the reference
answers in the student release) — twice in one run, in two fresh course directories:

- stock ``nbgrader autograde transfer``, which grades one student after another;
- ``course grade`` (:func:`course_grading.grader.grade`): sandboxed, ``workers`` students at once,
  one BLAS/OpenMP thread per kernel.

Both must give every student full marks (else the timing means nothing). The ratio of the
wall times is written to ``build/results.json`` as ``benchmarks.grade_speedup``.
:func:`cluster_speedup` grades one class on a local Dask cluster of one and of two workers
(``benchmarks.cluster_grade_speedup``).

:func:`red_team` then grades the red team's submissions (``tests/redteam``) with ``course grade``,
every assignment: every trick (the untouched release plus one cell, so every point is one the
trick won), the delegating student and every spelling of delegation, and the reference answers
with and without every everyday idiom. ``benchmarks.cheat_points``,
``benchmarks.delegation_points``, ``benchmarks.false_alarms`` and ``benchmarks.escapes`` must
all be 0.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course_grading import course as course_dir
from course_grading.check import assemble, cells
from course_grading.grade import assignments, batch, roster

from . import record


def course_with_class(root: Path, assignment: str, students: int) -> None:
    """A course directory at ``root`` with the assignment released and ``students`` honest
    submissions in ``submitted/`` (nbgrader's layout, which both graders read)."""
    shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, root)
    shutil.copytree(course_dir.REPO / "solutions" / assignment, root / "solutions" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    assignments.release(assignment, course_root=root)
    for path in sorted((root / "assignments" / assignment).glob("*.ipynb")):
        answer = assemble.solved(nbformat.read(path, as_version=4),
                                    nbformat.read(root / "solutions" / assignment / path.name,
                                                  as_version=4))
        for i in range(students):
            folder = root / "submitted" / f"student_{i:02d}" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(answer, folder / path.name)
    roster.add(root, [f"student_{i:02d}" for i in range(students)])


def run(assignment: str = "transfer", students: int = 30, workers: int | None = None) -> dict:
    workers = workers or os.cpu_count() or 1
    full = sum(cells.part_points(p).get(part, 0) for p in
               sorted((course_dir.REPO / "solutions" / assignment).glob("*.ipynb"))
               for part in cells.part_points(p))
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        stock_root, course_root = Path(a), Path(b)
        course_with_class(stock_root, assignment, students)
        course_with_class(course_root, assignment, students)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "COURSE_BUDGET": "quick"}
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", assignment],
                       cwd=stock_root, env=env, check=True, capture_output=True)
        stock = time.perf_counter() - start
        print(f"nbgrader autograde: {stock:.1f} s for {students} submissions", flush=True)
        stock_totals = [sum(s for s, _ in assignments.cell_scores(stock_root, assignment,
                                                              f"student_{i:02d}").values())
                        for i in range(students)]
        start = time.perf_counter()
        report = batch.grade(assignment, course_root / "submitted", course_root, workers=workers)
        ours = time.perf_counter() - start
    totals = [o["total"] for o in report["outcomes"]]
    if stock_totals != [full] * students or totals != [full] * students:
        raise AssertionError(f"not every honest submission got {full} points: stock "
                             f"{stock_totals}, course grade {totals}")
    figures = {"grade_students": students, "grade_workers": workers,
               "grade_stock_seconds": round(stock, 1), "grade_course_seconds": round(ours, 1),
               "grade_speedup": round(stock / ours, 2), "grade_isolation": report["isolation"]}
    print(f"{students} submissions of {assignment}: nbgrader autograde {stock:.1f} s, "
          f"course grade {ours:.1f} s ({workers} workers, isolation {report['isolation']}): "
          f"{stock / ours:.2f}× (target ≥ 1.8)")
    return figures


def cluster_speedup(assignment: str = "transfer", students: int = 16) -> dict:
    """``course grade --cluster local:2`` against ``--cluster local:1`` on the same class of
    ``students`` honest submissions (two fresh course directories): the wall-time ratio is
    ``benchmarks.cluster_grade_speedup``; the seconds per submission on one worker feed the
    README's projection for a large class."""
    seconds = {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            course_with_class(root, assignment, students)
            start = time.perf_counter()
            report = batch.grade(assignment, root / "submitted", root, cluster=f"local:{n}",
                                  progress=False)
            seconds[n] = time.perf_counter() - start
        totals = {o["total"] for o in report["outcomes"]}
        if len(report["outcomes"]) != students or len(totals) != 1 or totals == {0}:
            raise AssertionError(f"local:{n} did not give every honest submission full marks: {totals}")
        print(f"course grade --cluster local:{n}: {seconds[n]:.1f} s for {students} submissions "
              f"of {assignment}", flush=True)
    print(f"cluster speed-up, 2 workers vs 1: {seconds[1] / seconds[2]:.2f}× (target ≥ 1.7)")
    return {"cluster_grade_students": students, "cluster_grade_assignment": assignment,
            "cluster_grade_1_worker_seconds": round(seconds[1], 1),
            "cluster_grade_2_workers_seconds": round(seconds[2], 1),
            "cluster_grade_seconds_per_submission": round(seconds[1] / students, 2),
            "cluster_grade_speedup": round(seconds[1] / seconds[2], 2)}


def red_team_module():
    """The red team's submissions and tricks (``tests/redteam``: test data, in no package)."""
    tests = str(course_dir.REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import redteam

    return redteam


def red_team(workers: int | None = None) -> dict:
    """What the red team earns and costs, over every assignment in one batch each:
    ``cheat_points`` (every trick of ``redteam.TRICKS`` on the untouched
    release), ``delegation_points`` (the delegating student and every delegation spelling),
    ``false_alarms`` (points the honest-idioms student lost against the reference answers, plus
    findings listed as tampering for it) and ``escapes`` (writes into the course, the venv or
    the data that changed a byte)."""
    cheat = delegation = false_alarms = escapes = 0.0
    redteam = red_team_module()
    protected = {path: Path(path).read_bytes() for path in redteam.protected_files()}
    for assignment in course_dir.source_assignments(course_dir.REPO):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            shutil.copy(course_dir.REPO / course_dir.CONFIG_FILE, root)
            shutil.copytree(course_dir.REPO / "solutions" / assignment,
                            root / "solutions" / assignment)
            assignments.release(assignment, course_root=root)
            release_path = root / "assignments" / assignment / f"{assignment}.ipynb"
            release = nbformat.read(release_path, as_version=4)
            source = root / "solutions" / assignment / f"{assignment}.ipynb"
            solved = assemble.solved(release, nbformat.read(source, as_version=4))
            students = {"delegating": redteam.delegating(release, assignment),
                        "solution": solved, "honest": redteam.honest(solved)}
            students.update({f"trick_{name}": notebook for name, (notebook, *_rest)
                             in redteam.tricks(release, source).items()})
            students.update({name: notebook for name, (notebook, *_rest)
                             in redteam.delegation_spellings(release, source).items()})
            students.update({f"trick_{name}": notebook for name, (notebook, *_rest)
                             in redteam.liars(release).items()})
            for student, notebook in students.items():
                (root / "inbox" / student).mkdir(parents=True)
                nbformat.write(notebook, root / "inbox" / student / release_path.name)
            roster.add(root, list(students))
            report = batch.grade(assignment, root / "inbox", root, workers=workers,
                                  progress=False)
        by = {o["student"]: o for o in report["outcomes"]}
        for student, outcome in by.items():
            if student == "delegating" or student.startswith("delegates_"):
                delegation += outcome["total"]
            elif student.startswith("trick_"):
                cheat += outcome["total"]
        false_alarms += by["solution"]["total"] - by["honest"]["total"] + \
            len(by["honest"]["tampering"])
        print(f"red team on {assignment}: {len(report['outcomes'])} submissions, "
              f"{sum(o['total'] for o in report['outcomes'] if o['student'] not in ('solution', 'honest')):g} "
              "points to attackers", flush=True)
    escapes += sum(Path(path).read_bytes() != data for path, data in protected.items())
    return {"cheat_points": cheat, "delegation_points": delegation,
            "false_alarms": false_alarms, "escapes": escapes}


def main() -> int:
    figures = {**run(), **cluster_speedup(), **red_team()}
    print(f"wrote benchmarks to {record.update(benchmarks=figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
