"""A batch's ``grades.csv``, ``report.json`` and the summary the instructor reads."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

from .record import NOTHING_SUBMITTED, Outcome, missing


def write_report(course_root: Path, assignment: str, outcomes: list[Outcome], points: dict,
                 mode: str, workers: int, seconds: float, resumed: int = 0,
                 not_graded: dict[str, str] | None = None) -> dict:
    """Write ``grades.csv`` (this batch's students, the rows of students an earlier run graded,
    then the roster's students with nothing submitted) and ``report.json`` (this batch).
    ``not_graded``: students the grader failed on (why), who keep any earlier row."""
    not_graded = not_graded or {}
    folder = course_root / "build" / "grading" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    header = ["student", *points, "total", "max", "tampering", "needs_manual_grading", "reasons"]
    graded = {o.student for o in outcomes}
    absent = missing(course_root, assignment, graded | set(not_graded))
    kept = _earlier_rows(folder / "grades.csv", header, graded | set(absent))
    rows = [[o.student, *(f"{o.parts[p]:g}" for p in points), f"{o.total:g}",
             f"{sum(points.values()):g}", "; ".join(o.tampering), "; ".join(o.needs_manual),
             "; ".join(o.reasons)] for o in outcomes]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(sorted(rows + kept, key=lambda row: row[0]))
    for student in absent:
        writer.writerow([student, *("0" for _ in points), "0", f"{sum(points.values()):g}",
                         "", "", NOTHING_SUBMITTED])
    (folder / "grades.csv").write_text(buffer.getvalue())
    report = {"assignment": assignment, "students": len(outcomes), "isolation": mode,
              "workers": workers, "seconds": round(seconds, 1), "resumed": resumed,
              "max": sum(points.values()), "outcomes": [asdict(o) for o in outcomes],
              "missing": absent, "kept": len(kept), "not_graded": not_graded}
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    report["csv"] = str(folder / "grades.csv")
    return report


def _earlier_rows(path: Path, header: list[str], replaced: set[str]) -> list[list[str]]:
    """The rows of an earlier ``grades.csv`` for the students not in ``replaced`` (grading one
    late folder keeps the rest of the class); none when its columns are not ``header``."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not rows or rows[0] != header:
        return []
    return [row for row in rows[1:] if len(row) == len(header) and row[0] not in replaced
            and row[-1] != NOTHING_SUBMITTED]


def summary(report: dict) -> str:
    """A few lines for the instructor: who scored what, tampering, what could not run."""
    outcomes = report["outcomes"]
    totals = [o["total"] for o in outcomes]
    lines = [f"graded {report['students']} submission(s) of {report['assignment']} in "
             f"{report['seconds']:g} s with {report['workers']} worker(s); isolation: "
             f"{report['isolation']}"]
    if report.get("resumed"):
        lines.append(f"  resumed an interrupted run: {report['resumed']} student(s) recorded "
                     "by it were not graded again")
    if report["isolation"] != "namespaces":
        lines.append("  warning: graded with --trust-submissions and no Linux namespaces, so "
                     "student code could read files and use the network; grade untrusted work "
                     "in a container (see the README)")
    if totals:
        lines.append(f"  mean {sum(totals) / len(totals):.2f} / {report['max']:g}, "
                     f"{sum(t == report['max'] for t in totals)} full marks")
    for o in outcomes:
        if o["tampering"]:
            lines.append(f"  TAMPERING {o['student']}: " + "; ".join(o["tampering"]))
    for o in outcomes:
        if o["reasons"]:
            lines.append(f"  note {o['student']}: " + "; ".join(o["reasons"]))
    if report.get("kept"):
        lines.append(f"  grades.csv keeps the rows of {report['kept']} student(s) graded by "
                     "earlier runs")
    for student, why in sorted(report.get("not_graded", {}).items()):
        lines.append(f"  NOT GRADED {student}: {why}")
    if report.get("missing"):
        lines.append(f"  nothing submitted (0 in the CSV): {', '.join(report['missing'])}")
    lines.append(f"  grades: {report['csv']}")
    return "\n".join(lines)
