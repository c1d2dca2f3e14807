"""A batch's ``grades.csv``, ``report.json`` and the summary the instructor reads."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

from .record import NOTHING_SUBMITTED, Outcome, missing


def write_report(course_root: Path, assignment: str, outcomes: list[Outcome], points: dict,
            mode: str, workers: int, seconds: float, resumed: int = 0) -> dict:
    folder = course_root / "build" / "grading" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *points, "total", "max", "tampering", "needs_manual_grading",
                     "reasons"])
    for o in outcomes:
        writer.writerow([o.student, *(f"{o.parts[p]:g}" for p in points), f"{o.total:g}",
                         f"{sum(points.values()):g}", "; ".join(o.tampering),
                         "; ".join(o.needs_manual), "; ".join(o.reasons)])
    absent = missing(course_root, assignment, {o.student for o in outcomes})
    for student in absent:
        writer.writerow([student, *("0" for _ in points), "0", f"{sum(points.values()):g}",
                         "", "", NOTHING_SUBMITTED])
    (folder / "grades.csv").write_text(buffer.getvalue())
    report = {"assignment": assignment, "students": len(outcomes), "isolation": mode,
              "workers": workers, "seconds": round(seconds, 1), "resumed": resumed,
              "max": sum(points.values()), "outcomes": [asdict(o) for o in outcomes],
              "missing": absent}
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    report["csv"] = str(folder / "grades.csv")
    return report


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
    if report.get("missing"):
        lines.append(f"  nothing submitted (0 in the CSV): {', '.join(report['missing'])}")
    lines.append(f"  grades: {report['csv']}")
    return "\n".join(lines)
