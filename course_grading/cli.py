"""The ``course`` command (installed with the package; see the README).

    course check ASSIGNMENT [NOTEBOOK]      students: run the visible tests, print a table
    course release [ASSIGNMENT ...]         instructors: regenerate assignments/ from solutions/
    course grade ASSIGNMENT SUBMISSIONS     instructors: grade a class in parallel sandboxes
                                            (at the quick budget unless --budget says)
    course export ASSIGNMENT                instructors: final grades and feedback after the
                                            written answers were graded in the Formgrader
    course publish OUT                      instructors: write the student edition into OUT

The student edition (``course publish``) holds only what ``check`` needs, so there the
instructors' commands are absent.

``check`` exits with 1 when a visible test fails or a part is not answered yet, so scripts
can use it; ``grade`` exits with 0 once every student has a recorded grade.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import nbformat

from . import grading, integrity, submissions
from .runner import kernel_folders, run_notebook
from .sandbox import MEMORY_FLOOR_MB, Limits

# course_lib.budget's names (a test keeps them equal; the grading system imports only
# course_lib.paths of the teaching library)
BUDGETS = ("default", "full", "quick")


# the class-grading modules are not in the student edition
INSTRUCTOR = (Path(__file__).parent / "grader.py").is_file()


# ---------------------------------------------------------------------------- check
def _as_released(cell, stub: str) -> bool:
    """Whether an answer cell is still as the release has it."""
    from nbgrader.utils import compute_checksum

    checksum = submissions.nbgrader_meta(cell).get("checksum")
    if checksum:
        return compute_checksum(cell) == checksum
    return cell.source.strip() == stub.strip()


def part_status(executed: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[dict]:
    """One row per part of an executed student notebook: points, and what its tests say.

    A part whose answer cell still holds the release's stub is "not answered yet" (the cell's
    checksum, which nbgrader stored when it generated the release, still matches: ``release``
    may be the very file the student edited); test cells named ``<part>-hidden`` run only after
    submission ("graded after submission").
    """
    stubs = {submissions.grade_id(c): c.source for c in release.cells
             if submissions.nbgrader_meta(c).get("solution")}
    points = grading.part_points(release)
    rows = {part: {"part": part, "points": value, "earned": 0.0, "visible": [], "hidden": False,
                   "answered": True} for part, value in points.items()}
    for gid, stub in stubs.items():
        part = grading.part_of(gid)
        if part in rows:
            answer = [c for c in executed.cells if submissions.grade_id(c) == gid]
            rows[part]["answered"] = bool(answer) and not _as_released(answer[0], stub)
    for cell in executed.cells:
        meta = submissions.nbgrader_meta(cell)
        if not meta.get("grade") or meta.get("solution"):
            continue
        row = rows[grading.part_of(meta["grade_id"])]
        if meta["grade_id"].endswith("-hidden"):
            row["hidden"] = True
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        row["visible"].append(f"{errors[0].ename}: {errors[0].evalue}".splitlines()[0][:90]
                              if errors else "passed")
        row["earned"] += 0.0 if errors else float(meta.get("points", 0))
    return list(rows.values())


def status_table(rows: list[dict]) -> tuple[str, bool]:
    """The table ``course check`` prints, and whether everything checkable passed."""
    lines = [f"{'part':26s} {'points':>8s}  visible tests", "-" * 78]
    ok = True
    for row in rows:
        if not row["answered"]:
            verdict, ok = "not answered yet", False
        elif not row["visible"]:
            verdict = "no visible test"
        else:
            failed = [v for v in row["visible"] if v != "passed"]
            verdict = "passed" if not failed else "FAILED " + failed[0]
            ok = ok and not failed
        earned = f"{row['earned']:g}/{row['points']:g}"
        lines.append(f"{row['part']:26s} {earned:>8s}  {verdict}"
                     + ("  (+ hidden tests: graded after submission)" if row["hidden"] else ""))
    return "\n".join(lines), ok


def check(assignment: str, notebook: str | None = None, course_root: Path = grading.REPO,
          limits: Limits = Limits()) -> int:
    config = grading.load_config(course_root)
    release_dir = course_root / config.CourseDirectory.release_directory / assignment
    if not release_dir.is_dir():
        known = sorted(p.name for p in release_dir.parent.iterdir() if p.is_dir()) \
            if release_dir.parent.is_dir() else []
        print(f"no assignment {assignment!r}; the assignments are: {', '.join(known)}",
              file=sys.stderr)
        return 2
    path = Path(notebook) if notebook else release_dir / f"{assignment}.ipynb"
    release_path = release_dir / path.name
    if not release_path.is_file():
        release_path = next(iter(sorted(release_dir.glob("*.ipynb"))))
    try:
        student = submissions.read_notebook(path)
    except (OSError, submissions.SubmissionError) as error:
        print(f"cannot read {path}: {error}", file=sys.stderr)
        return 2
    release = nbformat.read(release_path, as_version=4)
    print(f"running {path} in a fresh kernel at the quick budget …", flush=True)
    with tempfile.TemporaryDirectory(prefix="cc-") as work:
        declared = integrity.own_work(release_path)
        run = run_notebook(student, Path(work), limits,
                           env={"COURSE_BUDGET": "quick", **kernel_folders()}, own_work=declared)
    verdict = integrity.police(run.notebook, declared, run.integrity, grading.REPO, release)
    integrity.penalise(run.notebook, verdict)   # the points as grading would give them
    table, ok = status_table(part_status(run.notebook, release))
    print(table)
    for event in run.events:
        print(f"note: {event}")
    for label, what, costs in verdict.findings:
        print(f"{'warning' if costs else 'note'}: {label}: {what}")
    ok = ok and not any(costs for *_, costs in verdict.findings)
    print("all visible tests pass" if ok else "some parts need work (see above)")
    return 0 if ok else 1


# ---------------------------------------------------------------------------- release
def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}


def release(names: list[str], course_root: Path = grading.REPO) -> int:
    release_root = course_root / grading.load_config(course_root).CourseDirectory.release_directory
    before = _fingerprint(release_root)
    for folder in grading.release(names or None, course_root):
        print(f"generated {folder.relative_to(course_root)}")
    after = _fingerprint(release_root)
    changed = sorted(n for n in after if before.get(n) != after[n])
    gone = sorted(set(before) - set(after))
    if not changed and not gone:
        print("the release was already up to date: nothing changed")
    for name in changed:
        print(f"{'changed' if name in before else 'new'}: {release_root.name}/{name}")
    for name in gone:
        print(f"no longer generated (delete it?): {release_root.name}/{name}")
    return 0


# ---------------------------------------------------------------------------- grade
def _at_least(floor: float, kind=float):
    """An argparse type: a number of ``kind`` no smaller than ``floor`` (0: more than 0)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < floor or (floor == 0 and value <= 0):
            raise argparse.ArgumentTypeError(
                f"must be {'more than 0' if floor == 0 else f'at least {floor:g}'}, not {text}")
        return value
    return parse


def grade(args) -> int:
    from . import grader

    limits = Limits(cell_seconds=args.cell_seconds, notebook_seconds=args.notebook_seconds,
                    memory_mb=args.memory_mb)
    if args.cluster is not None:
        from .cluster import local_workers
        try:
            local_workers(args.cluster)
        except ValueError as error:   # anything but local:N, said before anything is graded
            print(f"course grade: {error}", file=sys.stderr)
            return 2
    try:
        report = grader.grade(args.assignment, Path(args.submissions), grading.REPO,
                              workers=args.workers, limits=limits, scheduler=args.scheduler,
                              cluster=args.cluster, env={"COURSE_BUDGET": args.budget},
                              trust=args.trust_submissions)
    except (FileNotFoundError, grader.Untrusted) as error:   # an unknown assignment or
        print(f"course grade: {error}", file=sys.stderr)        # folder, no isolation
        return 2
    print(grader.summary(report))
    return 0


def export(assignment: str) -> int:
    from . import export as final

    try:
        result = final.export(grading.REPO, assignment)
    except FileNotFoundError as error:
        print(f"course export: {error}", file=sys.stderr)
        return 2
    print(final.summary(result))
    return 0


# ---------------------------------------------------------------------------- publish
def publish(out: str) -> int:
    from .publish import PublishError, publish as write_edition

    try:
        written = write_edition(Path(out))
    except PublishError as error:
        print(f"course publish: {error}", file=sys.stderr)
        return 2
    print(f"wrote the student edition ({len(written)} files) to {Path(out).resolve()}")
    print("publish it as a repository of its own, e.g. `git -C OUT add -A && git -C OUT "
          "commit -m 'release' && git -C OUT push`")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("check", help="run an assignment's visible tests on your notebook")
    c.add_argument("assignment")
    c.add_argument("notebook", nargs="?", help="default: assignments/<assignment>/<assignment>.ipynb")
    if INSTRUCTOR:
        r = commands.add_parser("release", help="regenerate assignments/ from solutions/")
        r.add_argument("assignments", nargs="*")
        g = commands.add_parser("grade", help="autograde every submission of an assignment")
        g.add_argument("assignment")
        g.add_argument("submissions", help="a folder per student, or nbgrader's exchange")
        g.add_argument("--workers", type=_at_least(1, int), default=None,
                       help="default: the number of cores")
        where = g.add_mutually_exclusive_group()
        where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                           help="grade on the Dask cluster of this scheduler (one task per student)")
        where.add_argument("--cluster", metavar="local:N",
                           help="grade on a local Dask cluster of N worker processes")
        g.add_argument("--budget", choices=BUDGETS, default="quick",
                       help="the COURSE_BUDGET the graded notebooks run at (default: quick)")
        g.add_argument("--trust-submissions", action="store_true",
                       help="grade even where no kernel can be isolated (no Linux namespaces)")
        g.add_argument("--cell-seconds", type=_at_least(0), default=Limits.cell_seconds)
        g.add_argument("--notebook-seconds", type=_at_least(0), default=Limits.notebook_seconds)
        g.add_argument("--memory-mb", type=_at_least(MEMORY_FLOOR_MB, int),
                       default=Limits.memory_mb)
        e = commands.add_parser("export", help="final grades and feedback after grading by hand "
                                "in the Formgrader -> build/grading/<assignment>/final.csv")
        e.add_argument("assignment")
        p = commands.add_parser("publish", help="write the student edition into a folder")
        p.add_argument("out", help="an empty folder, or an earlier student edition")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.assignment, args.notebook)
    if args.command == "release":
        return release(args.assignments)
    if args.command == "publish":
        return publish(args.out)
    if args.command == "export":
        return export(args.assignment)
    return grade(args)


if __name__ == "__main__":
    sys.exit(main())
