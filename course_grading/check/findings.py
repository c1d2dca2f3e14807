"""What the grader found in a submission, one type from the reading to the report."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """Something the grader noticed in a cell (``cell``: its grade_id or ``cell N``).
    ``costs``: whether it costs points (tampering seen while a test ran, a delegated part, a
    notebook that is not the release's); the others are notes for the instructor. It travels
    from a worker to the grader as a dict (:meth:`as_dict`, :meth:`from_dict`) and reaches the
    report as text (``str``)."""
    cell: str
    what: str
    costs: bool

    def __str__(self) -> str:
        return f"{self.cell}: {self.what}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, found: dict) -> "Finding":
        return cls(str(found["cell"]), str(found["what"]), bool(found["costs"]))
