"""Every ``course`` subcommand fed bad input: one line naming what is wrong, exit status 2, and
nothing written (the gradebook, the grading folders and the release untouched)."""
from __future__ import annotations

import pytest

from course_grading import cli, course

CASES = [
    (["check", "nosuch"], "no assignment 'nosuch'"),
    (["submit", "nosuch"], "no assignment 'nosuch'"),
    (["submit", "bayes"], "nothing handed in"),          # the untouched release
    (["release", "nosuch"], "no assignment 'nosuch'"),
    (["export", "nosuch"], "no assignment 'nosuch'"),
    (["deadline", "nosuch", "2027-01-15 23:59:00 UTC"], "no assignment 'nosuch'"),
    (["deadline", "bayes", "next friday-ish"], "is not a date and time"),
    (["handout", "nosuch"], "no assignment 'nosuch'"),
    (["handout", "bayes"], "no exchange folder"),        # the repository sets no exchange
    (["collect", "bayes"], "no exchange folder"),
    (["feedback", "bayes"], "no exchange folder"),
    (["students", "add"], "name at least one student id"),
    (["students", "add", "ada/../../x"], "cannot be a student id"),
    (["students", "remove", "nobody_at_all"], "not on the roster"),
    (["grade", "nosuch", "."], "no assignment 'nosuch'"),
    (["grade", "bayes", "/nonexistent/folder"], "no submissions folder"),
    (["grade", "bayes", ".", "--cluster", "local:0"], "local:"),
    (["publish", "/proc/no/such/folder"], "cannot write"),
]
ARGPARSE = [   # refused by argparse: usage, then one error line
    (["grade", "bayes", ".", "--workers", "0"], "--workers"),
    (["grade", "bayes", ".", "--cell-seconds", "-1"], "--cell-seconds"),
    (["grade", "bayes", ".", "--memory-mb", "0"], "--memory-mb"),
    (["grade", "bayes", ".", "--budget", "huge"], "--budget"),
    (["students", "rename", "ada"], "invalid choice"),
]


def _state() -> dict:
    """What a bad command must not change."""
    root = course.REPO
    files = [root / "gradebook.db", *sorted((root / "build" / "grading").rglob("*")),
             *sorted((root / "assignments").rglob("*.ipynb"))]
    return {str(p): p.stat().st_mtime_ns for p in files if p.exists()}


@pytest.mark.parametrize("argv, says", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(argv, says, capsys):
    """Checks one bad command line: exit 2, one line on stderr naming the problem, nothing
    written."""
    before = _state()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert _state() == before


@pytest.mark.parametrize("argv, says", ARGPARSE, ids=[" ".join(a) for a, _ in ARGPARSE])
def test_bad_options_are_refused_before_anything_runs(argv, says, capsys):
    """Checks a bad option or choice: argparse's usage and one error line, exit 2."""
    before = _state()
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and says in last, last
    assert _state() == before


def test_a_read_only_grading_folder_is_said_before_anything_is_written(tmp_path, monkeypatch,
                                                                      capsys):
    """Checks `course grade` in a course whose build/grading/bayes is read-only: exit 2, one
    line naming the folder, and the gradebook byte-identical (nothing recorded, no backup)."""
    import shutil

    from course_grading.grade import roster

    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    shutil.copy(course.REPO / course.CONFIG_FILE, root)
    for kind in ("solutions", "assignments"):
        shutil.copytree(course.REPO / kind / "bayes", root / kind / "bayes")
    roster.add(root, ["ada"])
    (tmp_path / "inbox" / "ada").mkdir(parents=True)
    shutil.copy(root / "assignments" / "bayes" / "bayes.ipynb", tmp_path / "inbox" / "ada")
    folder = root / "build" / "grading" / "bayes"
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    gradebook = (root / "gradebook.db").read_bytes()
    monkeypatch.chdir(root)   # the course directory the command works on
    try:
        assert cli.main(["grade", "bayes", str(tmp_path / "inbox"), "--trust-submissions"]) == 2
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert "is read-only" in err and str(folder) in err and len(err.splitlines()) == 1, err
    assert (root / "gradebook.db").read_bytes() == gradebook
    assert list(folder.iterdir()) == []
