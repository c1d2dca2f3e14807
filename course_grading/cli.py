"""The ``course`` command (installed with the package; see the README).

    course check ASSIGNMENT [NOTEBOOK]      students: run the visible tests, print a table
    course submit ASSIGNMENT [--anyway]     students: hand in assignments/<assignment>/ through
                                            nbgrader's exchange (not when nothing is answered)
    course release [ASSIGNMENT ...]         instructors: regenerate assignments/ from solutions/
    course students add|remove|list [ID]    instructors: the class roster (only its students
                                            are graded)
    course grade ASSIGNMENT SUBMISSIONS     instructors: grade a class in parallel sandboxes
                                            (at the quick budget unless --budget says)
    course export ASSIGNMENT                instructors: final grades and feedback after the
                                            written answers were graded in the Formgrader
    course deadline ASSIGNMENT "DATE TIME UTC"
    course handout|collect|feedback ASSIGNMENT
                                            instructors: a term through nbgrader's exchange
    course publish OUT                      instructors: write the student edition into OUT

The instructors' commands work on the course directory: the current folder when it holds
``nbgrader_config.py``, else the repository. The student edition (``course publish``) holds only what ``check`` needs, so there the
instructors' commands are absent.

``check`` exits with 1 when a visible test fails or a part is not answered yet, so scripts
can use it; ``grade`` exits with 0 once every student has a recorded grade, 1 when the
grader failed on some, a folder is not on the roster, or the same submission would now score
lower than its recorded grade without ``--force`` (listed as NOT GRADED, nothing recorded for
them). Bad input exits
with 2 and writes nothing; 3 says this machine cannot run the assignment (a data set is
missing): nothing was checked or graded, and the message says what to set or run.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import nbformat

from . import course
from .check import assemble, reading
from .check.cells import grade_id, is_answer
from .check.machine import missing_data
from .check.run import kernel_folders, run_notebook
from .check.score import part_status, status_table
from .check.verdict import penalise, police
from .kernel.sandbox import MEMORY_FLOOR_MB, Limits

# course_lib.budget's names (a test keeps them equal; the grading system imports only
# course_lib.paths of the teaching library)
BUDGETS = ("default", "full", "quick")


# the class-grading modules are not in the student edition
INSTRUCTOR = (Path(__file__).parent / "grade").is_dir()


# ---------------------------------------------------------------------------- check
def check(assignment: str, notebook: str | None = None, course_root: Path | None = None,
          limits: Limits = Limits()) -> int:
    course_root = course_root or course.root()
    release_dir = course.folder(course_root, "release", assignment)
    unknown = course.unreleased(course_root, assignment)
    if unknown:
        print(f"course check: {unknown}", file=sys.stderr)
        return 2
    path = Path(notebook) if notebook else release_dir / f"{assignment}.ipynb"
    release_path = release_dir / path.name
    if not release_path.is_file():
        release_path = next(iter(sorted(release_dir.glob("*.ipynb"))))
    try:
        student = assemble.read_notebook(path)
    except (OSError, assemble.SubmissionError) as error:
        print(f"cannot read {path}: {error}", file=sys.stderr)
        return 2
    release = nbformat.read(release_path, as_version=4)
    answers = {grade_id(c) for c in release.cells if is_answer(c)}
    if not answers & {grade_id(c) for c in student.cells if is_answer(c)}:
        print(f"{path} is not a notebook of {assignment}: it holds none of its answer cells "
              f"({', '.join(sorted(answers))})", file=sys.stderr)
        return 2
    missing = missing_data([release_path])
    if missing:   # the machine's fault, not the answer's
        print(f"not checked: this machine cannot run {assignment}.\n{missing}", file=sys.stderr)
        return 3
    print(f"running {path} in a fresh kernel at the quick budget …", flush=True)
    with tempfile.TemporaryDirectory(prefix="cc-") as work:
        declared = reading.own_work(release_path)
        run = run_notebook(student, Path(work), limits,
                           env={"COURSE_BUDGET": "quick", **kernel_folders()}, own_work=declared)
    verdict = police(run.notebook, declared, run.integrity, course.REPO, release)
    penalise(run.notebook, verdict)   # the points as grading would give them
    table, ok = status_table(part_status(run.notebook, release))
    print(table)
    for event in run.events:
        print(f"note: {event}")
    for finding in verdict.findings:
        print(f"{'warning' if finding.costs else 'note'}: {finding}")
    ok = ok and not any(finding.costs for finding in verdict.findings)
    print("all visible tests pass" if ok else "some parts need work (see above)")
    return 0 if ok else 1


def submit(assignment: str, anyway: bool = False) -> int:
    from .handin import HandInError, submit as hand_in

    try:
        blank, where = hand_in(course.root(), assignment, anyway)
    except HandInError as error:
        print(f"course submit: {error}", file=sys.stderr)
        return 2
    if blank:
        print(f"warning: not answered yet: {', '.join(blank)} (you may submit again until the "
              "deadline; the latest submission counts)")
    print(where)
    return 0


# ---------------------------------------------------------------------------- release
def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}


def release(names: list[str], course_root: Path | None = None) -> int:
    from .grade.assignments import release as generate_release

    course_root = course_root or course.root()
    release_root = course.folder(course_root, "release")
    before = _fingerprint(release_root)
    try:
        written = generate_release(names or None, course_root)
    except FileNotFoundError as error:   # an unknown name, said before anything is written
        print(f"course release: {error}", file=sys.stderr)
        return 2
    for folder in written:
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
    from .grade import batch

    limits = Limits(cell_seconds=args.cell_seconds, notebook_seconds=args.notebook_seconds,
                    memory_mb=args.memory_mb)
    if args.cluster is not None:
        from .grade.cluster import local_workers
        try:
            local_workers(args.cluster)
        except ValueError as error:   # anything but local:N, said before anything is graded
            print(f"course grade: {error}", file=sys.stderr)
            return 2
    try:
        report = batch.grade(args.assignment, Path(args.submissions), course.root(),
                              workers=args.workers, limits=limits, scheduler=args.scheduler,
                              cluster=args.cluster, env={"COURSE_BUDGET": args.budget},
                              trust=args.trust_submissions, force=args.force)
    except (FileNotFoundError, ConnectionError, batch.Untrusted,   # an unknown
            batch.NotOnRoster, PermissionError) as error:
        print(f"course grade: {error}", file=sys.stderr)   # assignment or folder, no scheduler
        return 2                                           # there, no isolation
    except batch.MachineNotReady as error:   # the machine's fault: no student scored
        print(f"course grade: not graded: {error}", file=sys.stderr)
        return 3
    from .grade.report import summary

    print(summary(report))
    return 1 if report.get("not_graded") else 0


def students(action: str, names: list[str], force: bool = False) -> int:
    from .grade import roster

    if action == "list":
        on = roster.students(course.root())
        print("\n".join(on) if on else "the roster is empty: `course students add ID ...`")
        return 0
    if not names:
        print(f"course students {action}: name at least one student id", file=sys.stderr)
        return 2
    try:
        if action == "add":
            new = roster.add(course.root(), names)
            print(f"added {len(new)} student(s)" + (f": {', '.join(new)}" if new else "")
                  + (f"; already on the roster: {len(names) - len(new)}"
                     if len(new) < len(set(names)) else ""))
        else:
            gone = roster.remove(course.root(), names, force)
            print(f"removed {len(gone)} student(s): {', '.join(gone)}")
    except roster.RosterError as error:
        print(f"course students {action}: {error}", file=sys.stderr)
        return 2
    return 0


def term_step(step: str, assignment: str, when: str | None = None) -> int:
    from .grade import term

    root = course.root()
    try:
        if step == "deadline":
            print(f"{assignment} is due {term.deadline(root, assignment, when)}")
        elif step == "handout":
            term.handout(root, assignment)
            print(f"handed out {assignment}: students run `nbgrader fetch_assignment {assignment}`")
        elif step == "collect":
            have = term.collect(root, assignment)
            print(f"collected {assignment}: {len(have)} student(s) in submitted/ "
                  f"({', '.join(have) or 'none'}); then `course grade {assignment} submitted`")
        else:
            graded = term.feedback(root, assignment)
            print(f"returned the feedback of {len(graded)} student(s); they run "
                  f"`nbgrader fetch_feedback {assignment}`")
    except term.TermError as error:
        print(f"course {step}: {error}", file=sys.stderr)
        return 2
    return 0


def export(assignment: str) -> int:
    from .grade import export as final

    try:
        result = final.export(course.root(), assignment)
    except FileNotFoundError as error:
        print(f"course export: {error}", file=sys.stderr)
        return 2
    print(final.summary(result))
    return 0


# ---------------------------------------------------------------------------- publish
def publish(out: str) -> int:
    from .grade.publish import PublishError, publish as write_edition

    try:
        written = write_edition(Path(out))
    except PublishError as error:
        print(f"course publish: {error}", file=sys.stderr)
        return 2
    except OSError as error:   # a folder that cannot be made or written
        print(f"course publish: cannot write {error.filename or out}: "
              f"{error.strerror or error}", file=sys.stderr)
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
    h = commands.add_parser("submit", help="hand in assignments/<assignment>/ through "
                            "nbgrader's exchange")
    h.add_argument("assignment")
    h.add_argument("--anyway", action="store_true",
                   help="hand it in even when no part is answered")
    if INSTRUCTOR:
        r = commands.add_parser("release", help="regenerate assignments/ from solutions/")
        r.add_argument("assignments", nargs="*")
        s = commands.add_parser("students", help="the class roster: only its students are graded")
        s.add_argument("action", choices=("add", "remove", "list"))
        s.add_argument("ids", nargs="*", metavar="ID")
        s.add_argument("--force", action="store_true",
                       help="remove: also a student with recorded grades (deleted; the "
                       "gradebook is backed up first)")
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
        g.add_argument("--force", action="store_true",
                       help="record a re-grade of an unchanged submission even where it "
                       "lowers a recorded score")
        g.add_argument("--trust-submissions", action="store_true",
                       help="grade even where no kernel can be isolated (no Linux namespaces)")
        g.add_argument("--cell-seconds", type=_at_least(0), default=Limits.cell_seconds)
        g.add_argument("--notebook-seconds", type=_at_least(0), default=Limits.notebook_seconds)
        g.add_argument("--memory-mb", type=_at_least(MEMORY_FLOOR_MB, int),
                       default=Limits.memory_mb)
        e = commands.add_parser("export", help="final grades and feedback after grading by hand "
                                "in the Formgrader -> build/grading/<assignment>/final.csv")
        e.add_argument("assignment")
        d = commands.add_parser("deadline", help="the due date: later submissions get "
                                "nbgrader's late penalty")
        d.add_argument("assignment")
        d.add_argument("when", help='e.g. "2027-01-15 23:59:00 UTC"')
        for step, says in (("handout", "put the release in nbgrader's exchange"),
                           ("collect", "copy the latest submissions into submitted/"),
                           ("feedback", "put the feedback that grading wrote in the exchange")):
            commands.add_parser(step, help=says).add_argument("assignment")
        p = commands.add_parser("publish", help="write the student edition into a folder")
        p.add_argument("out", help="an empty folder, or an earlier student edition")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.assignment, args.notebook)
    if args.command == "submit":
        return submit(args.assignment, args.anyway)
    if args.command == "release":
        return release(args.assignments)
    if args.command == "publish":
        return publish(args.out)
    if args.command == "export":
        return export(args.assignment)
    if args.command in ("deadline", "handout", "collect", "feedback"):
        return term_step(args.command, args.assignment, getattr(args, "when", None))
    if args.command == "students":
        return students(args.action, args.ids, args.force)
    return grade(args)


if __name__ == "__main__":
    sys.exit(main())
