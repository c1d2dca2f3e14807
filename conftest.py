"""Repository-wide pytest hooks for the notebooks nbval executes (``notebooks/*.ipynb``).

- **Missing data.** A notebook lists the data sets it needs in its metadata (``"course":
  {"data": [...]}``, read by :func:`course_lib.data.missing_for`); when one cannot be had, the
  notebook's cells are skipped with the loader's message — except under ``CI=true``, where the
  data must be present and the notebook runs (and fails with that message).
- **Once per run.** The browser test of the course book (``tests/test_book.py``) executes a
  few lecture notebooks with the course build and fails if one of them fails; when it is part
  of the session, nbval does not execute those notebooks a second time.
- **One process per file.** Under pytest-xdist every file goes to one process, whole (a
  notebook's cells share one kernel, a module's fixtures one process), as ``--dist loadfile``
  does; and a notebook that loads a model another one trains (``"course": {"reuses": [...]}``
  in its metadata, e.g. 06 reuses the MAML model of 05) runs after it in the same process.
- **Longest first.** Files are handed out in the order of :data:`LONGEST` (the longest of a
  fresh clone's ``make test``, longest first), then the others in collection order, so that
  the two processes finish together (xdist's own order, by number of tests, left a process
  idle for a minute while the other ran a long file it had started last).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("COURSE_BUDGET", "quick")


# the files that take longest in a fresh clone's `make test` (CI log of 8a60525), longest first
LONGEST = ["tests/test_grading.py", "tests/test_redteam.py", "tests/test_cluster.py",
           "notebooks/05_maml.ipynb", "notebooks/06_prototypical_networks.ipynb",
           "tests/test_autograder.py", "tests/test_exchange.py", "tests/test_book.py",
           "tests/test_publish.py", "tests/test_regrade.py",
           "notebooks/02_multi_task_learning.ipynb", "notebooks/07_continual_learning.ipynb",
           "notebooks/01b_what_transfers.ipynb", "notebooks/01c_transfer_taxonomy.ipynb",
           "notebooks/01a_transfer_learning.ipynb"]


def _rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST.index(path) if path in LONGEST else len(LONGEST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)   # stable: the others keep their order
    executed_by_book = _executed_by_book_test(items)
    if executed_by_book:
        kept = [i for i in items if not _is_notebook(i) or i.path.stem not in executed_by_book]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    if os.environ.get("CI", "").lower() == "true":
        return
    from course_lib import data

    missing = {}
    for item in items:
        if not _is_notebook(item):
            continue
        path = item.path
        if path not in missing:
            missing[path] = data.missing_for(path)
        if missing[path]:
            item.add_marker(pytest.mark.skip(reason=str(missing[path][0])))


def _is_notebook(item) -> bool:
    return getattr(item, "path", None) is not None and item.path.suffix == ".ipynb"


def _executed_by_book_test(items) -> set[str]:
    """Names of the lecture notebooks that the collected book test will execute itself."""
    if os.environ.get("COURSE_BOOK_TEST_BUILD"):  # it checks an existing build instead
        return set()
    for item in items:
        if item.name == "test_book_in_a_browser":
            return set(item.module.SMALL_SET)
    return set()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduling by file, with each notebook in the unit of the one it reuses."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return _REUSES.get(path, path)

    config.option.loadscopereorder = False   # hand out files in collection order (LONGEST)
    return ByFile(config, log)


def _reuses() -> dict[str, str]:
    """``notebooks/06_….ipynb`` → ``notebooks/05_maml.ipynb`` for each notebook that reuses a
    model another notebook trains."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("notebooks/*.ipynb")):
        reuses = json.loads(path.read_text())["metadata"].get("course", {}).get("reuses", [])
        if reuses:
            found[f"notebooks/{path.name}"] = f"notebooks/{reuses[0]}.ipynb"
    return found


_REUSES = _reuses()
