"""course_grading.grade.assignments.prepared: nbgrader's generation runs again only when the
source, the release or the gradebook no longer match what the last generation left."""
from pathlib import Path

from course_grading.grade import assignments


def test_generation_is_skipped_only_while_nothing_changed(tmp_path, monkeypatch):
    """checks the first call generates; a second with the same bytes and gradebook does not;
    a changed source, a hand-edited release, or a gradebook without the assignment each
    generate again."""
    source, release = tmp_path / "solutions" / "a", tmp_path / "assignments" / "a"
    source.mkdir(parents=True)
    (source / "a.ipynb").write_text("source v1")
    calls, known = [], {"a": True}

    def generate(root, name):
        calls.append(name)
        release.mkdir(parents=True, exist_ok=True)
        (release / "a.ipynb").write_text("release of " + (source / "a.ipynb").read_text())

    monkeypatch.setattr(assignments, "generate", generate)
    monkeypatch.setattr(assignments, "folder",
                        lambda root, kind, name="": Path(root) / {"source": "solutions",
                                                                  "release": "assignments"}[kind] / name)
    monkeypatch.setattr(assignments, "_in_gradebook", lambda root, name, src: known[name])
    assignments.prepared(tmp_path, "a")
    assignments.prepared(tmp_path, "a")
    assert len(calls) == 1
    (source / "a.ipynb").write_text("source v2")
    assignments.prepared(tmp_path, "a")
    assert len(calls) == 2
    (release / "a.ipynb").write_text("edited by hand")
    assignments.prepared(tmp_path, "a")
    assert len(calls) == 3
    known["a"] = False   # e.g. a new gradebook.db
    assignments.prepared(tmp_path, "a")
    assert len(calls) == 4
