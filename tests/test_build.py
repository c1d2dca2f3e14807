"""The course's main job (course_site.build): notebook order, data needs, skip / fail bookkeeping.

The fast tests replace ``build.execute`` by a stand-in; the slow ones run tiny generated
notebooks in a real ``python3`` kernel. None of them executes a lecture notebook.
"""
import json
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib import data, paths
from course_site import build
from course_lib.data import DataUnavailable

REPORT_CELL = ('from course_lib.budget import get_budget\n'
               'from course_lib.results import report\n'
               'report("{name}", get_budget("quick"), x=1.0)')


def write_notebook(folder: Path, name: str, source: str = "1 + 1", needs=None) -> Path:
    """A one-cell notebook ``folder/<name>.ipynb``; ``needs`` goes into its course metadata."""
    nb = new_notebook(cells=[new_code_cell(source)])
    if needs is not None:
        nb.metadata["course"] = {"data": list(needs)}
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """COURSE_BUILD and an empty COURSE_DATA under tmp_path; a folder for the notebooks."""
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_BUDGET", "quick")
    monkeypatch.setenv("COURSE_JOBS", "1")   # one at a time, in course order (a test sets 2)
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")  # no fallback cache in the repository
    (tmp_path / "data").mkdir()
    folder = tmp_path / "notebooks"
    folder.mkdir()
    return folder


@pytest.fixture
def omniglot_missing(monkeypatch, tmp_path):
    """data.available says Omniglot is missing (as offline with an empty COURSE_DATA) and counts
    its calls; any other data set is there."""
    calls = []

    def available(name):
        calls.append(name)
        if name == "omniglot":
            return DataUnavailable("Omniglot", tmp_path / "data", "it is not there (test)")
        return None

    monkeypatch.setattr(data, "available", available)
    monkeypatch.setattr(data, "_status", {})  # forget what earlier tests found
    return calls


@pytest.fixture
def fake_execute(monkeypatch):
    """build.execute stand-in: records the order, runs nothing; a notebook whose only cell is
    ``raise`` fails, one whose cell calls report writes that notebook's figures file."""
    ran = []

    def execute(path, out, threads=None):
        ran.append(path.stem)
        source = nbformat.read(path, as_version=4).cells[0].source
        if source.startswith("raise"):
            raise RuntimeError(f"boom in {path.stem}")
        if "report(" in source:
            folder = out / "figures"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{path.stem}.json").write_text(json.dumps({"figures": {"x": 1.0}}))
        return 0.5

    monkeypatch.setattr(build, "execute", execute)
    return ran


def results_json(env: Path) -> dict:
    return json.loads((env.parent / "build" / "results.json").read_text())


# ---------------------------------------------------------------------------- helpers
def test_needed_data():
    """checks the data sets listed in a notebook's course metadata, and [] without it."""
    assert data.needed_by(new_notebook()) == []
    nb = new_notebook(metadata={"course": {"data": ["omniglot", "mnist"]}})
    assert data.needed_by(nb) == ["omniglot", "mnist"]
    assert data.needed_by(new_notebook(metadata={"course": {}})) == []


def test_notebooks_in_course_order(tmp_path):
    """checks only numbered notebooks, sorted by file name (01a < 01b < 01c < 02 < 10)."""
    for name in ["10_late", "02_meta", "01c_taxonomy", "01a_transfer", "01b_what", "README",
                 "scratch"]:
        write_notebook(tmp_path, name)
    (tmp_path / "03_notes.txt").write_text("not a notebook")
    assert [p.name for p in paths.lecture_notebooks(tmp_path)] == [
        "01a_transfer.ipynb", "01b_what.ipynb", "01c_taxonomy.ipynb", "02_meta.ipynb",
        "10_late.ipynb"]


def test_notebooks_default_is_the_course_folder():
    """checks the default folder is notebooks/ of the repository, every name numbered, sorted."""
    found = paths.lecture_notebooks()
    assert found, "no lecture notebooks found"
    assert all(p.parent == paths.REPO / "notebooks" for p in found)
    assert all(p.name[0].isdigit() for p in found)
    assert [p.name for p in found] == sorted(p.name for p in found)


# ---------------------------------------------------------------------------- main, fast
def test_main_skips_notebooks_whose_data_is_missing(env, omniglot_missing, fake_execute, capsys):
    """checks the skip: not executed, listed in results.json with the loader's message, printed;
    data.available asked once per data set; exit code 0."""
    write_notebook(env, "01_needs_omniglot", "raise SystemExit", needs=["omniglot"])
    write_notebook(env, "02_tiny", REPORT_CELL.format(name="02_tiny"))
    write_notebook(env, "03_also_omniglot", "raise SystemExit", needs=["omniglot", "mnist"])

    assert build.main(folder=env) == 0
    assert fake_execute == ["02_tiny"]
    assert sorted(omniglot_missing) == ["mnist", "omniglot"]  # each data set checked once
    res = results_json(env)
    assert res["budget"] == "quick"
    assert res["notebooks"] == {"02_tiny": {"budget": "quick", "seconds": 0.5,
                                            "figures": {"x": 1.0}}}
    assert set(res["skipped"]) == {"01_needs_omniglot", "03_also_omniglot"}
    (message,) = res["skipped"]["01_needs_omniglot"]
    assert "Omniglot" in message and "COURSE_DATA" in message
    assert res["failed"] == {} and res["benchmarks"] == {}
    out = capsys.readouterr().out
    assert "[skip] 01_needs_omniglot: needs Omniglot" in out
    assert "Skipped because a data set is missing" in out
    assert "- 03_also_omniglot" in out and "COURSE_DATA" in out.split("Skipped")[1]


def test_main_keeps_going_after_a_failure(env, omniglot_missing, fake_execute, capsys):
    """checks that a failing notebook is recorded under "failed", the later ones still run,
    and the exit code is 1."""
    write_notebook(env, "01_boom", "raise RuntimeError('boom')")
    write_notebook(env, "02_tiny", REPORT_CELL.format(name="02_tiny"))
    assert build.main(folder=env) == 1
    assert fake_execute == ["01_boom", "02_tiny"]
    res = results_json(env)
    assert res["failed"] == {"01_boom": "RuntimeError: boom in 01_boom"}
    assert "02_tiny" in res["notebooks"] and "01_boom" not in res["notebooks"]
    out = capsys.readouterr().out
    assert "[FAIL] 01_boom: RuntimeError" in out and "FAILED 01_boom" in out


def test_main_drops_stale_figures(env, omniglot_missing, fake_execute):
    """checks that figures left by an earlier build do not survive a run that reports none."""
    write_notebook(env, "01_silent")
    stale = env.parent / "build" / "figures" / "01_silent.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"figures": {"old": 0.1}}))
    assert build.main(folder=env) == 0
    assert results_json(env)["notebooks"]["01_silent"]["figures"] == {}
    assert not stale.exists()


def test_main_benchmarks_only_with_omniglot(env, monkeypatch, fake_execute):
    """checks that the cached-load benchmark runs when Omniglot is there and is left out when not."""
    write_notebook(env, "01_tiny")
    monkeypatch.setattr(data, "available", lambda name: None)
    monkeypatch.setattr(data, "_status", {})  # forget what earlier tests found
    monkeypatch.setattr(build, "benchmarks", lambda: {"omniglot_cached_load_seconds": 0.1})
    assert build.main(folder=env) == 0
    assert results_json(env)["benchmarks"] == {"omniglot_cached_load_seconds": 0.1}


def test_main_without_omniglot_and_without_network(env, no_network, fake_execute, capsys):
    """checks that a build whose notebooks need no data set, with Omniglot absent and no network,
    still writes results.json and exits 0 (no benchmark) instead of raising DataUnavailable."""
    write_notebook(env, "01_tiny")
    assert build.main(folder=env) == 0
    res = results_json(env)
    assert res["benchmarks"] == {} and "01_tiny" in res["notebooks"]


def test_main_runs_notebooks_in_parallel_after_those_they_reuse(env, omniglot_missing,
                                                               monkeypatch):
    """checks that with two jobs a notebook that reuses another's model starts only after that
    one has finished, while an independent one runs beside it; results stay in course order."""
    events = []

    def execute(path, out, threads=None):
        events.append(("start", path.stem))
        time.sleep(1.0 if path.stem == "01_trains" else 0.05)
        events.append(("end", path.stem))
        return 0.1

    monkeypatch.setattr(build, "execute", execute)
    monkeypatch.setenv("COURSE_JOBS", "2")
    write_notebook(env, "01_trains")
    reuser = new_notebook(cells=[new_code_cell("1")])
    reuser.metadata["course"] = {"reuses": ["01_trains"]}
    nbformat.write(reuser, env / "02_reuses.ipynb")
    write_notebook(env, "03_alone")
    assert build.main(folder=env) == 0
    assert events.index(("end", "01_trains")) < events.index(("start", "02_reuses"))
    assert events.index(("start", "03_alone")) < events.index(("end", "01_trains"))
    res = results_json(env)
    assert list(res["notebooks"]) == ["01_trains", "02_reuses", "03_alone"]
    assert res["jobs"] == 2 and res["wall_seconds"] >= 1.0


def test_order_starts_the_longest_chain_first(env):
    """checks the start order: a short notebook that a long one waits for goes first (its chain
    is 10 + 100 s), then the long one, then an independent 50 s one; unrecorded ones last."""
    from course_site import record

    write_notebook(env, "01_short")
    reuser = new_notebook(cells=[new_code_cell("1")])
    reuser.metadata["course"] = {"reuses": ["01_short"]}
    nbformat.write(reuser, env / "02_long_reuser.ipynb")
    write_notebook(env, "03_medium")
    write_notebook(env, "04_new")
    record.update({"notebooks": {"01_short": {"seconds": 10.0}, "02_long_reuser": {"seconds": 100.0},
                                 "03_medium": {"seconds": 50.0}}})
    assert [p.stem for p in build._order(paths.lecture_notebooks(env))] == [
        "01_short", "02_long_reuser", "03_medium", "04_new"]
    guess = new_notebook(cells=[new_code_cell("1")])
    guess.metadata["course"] = {"seconds": 70.0}   # nothing recorded: the metadata's guess
    nbformat.write(guess, env / "04_new.ipynb")
    assert [p.stem for p in build._order(paths.lecture_notebooks(env))] == [
        "01_short", "02_long_reuser", "04_new", "03_medium"]


# ---------------------------------------------------------------------------- main, real kernels
@pytest.mark.slow
def test_main_executes_tiny_notebooks(env, omniglot_missing, capsys):
    """checks a real run: the tiny notebook executed (its seconds count the 1 s it sleeps and fit
    in the build's wall time, figures {"x": 1.0}, executed copy and HTML saved), the Omniglot
    notebook skipped with its message, exit code 0."""
    write_notebook(env, "01_needs_omniglot", "raise SystemExit('must not run')",
                   needs=["omniglot"])
    write_notebook(env, "02_tiny",
                   "import time\ntime.sleep(1.0)\n" + REPORT_CELL.format(name="02_tiny")
                   + '\nfrom course_lib.results import Claims\nclaims = Claims("02_tiny", get_budget())'
                   '\nclaims.at_least("x is one", 1, 1)\nclaims.at_least("only at full", 0, 1, at=("full",))'
                   '\nclaims.verify()')
    start = time.perf_counter()
    assert build.main(folder=env) == 0
    wall = time.perf_counter() - start
    res = results_json(env)
    record = res["notebooks"]["02_tiny"]
    assert 1.0 <= record["seconds"] <= round(wall, 1)
    assert record["figures"] == {"x": 1.0}
    assert record["claims"] == {"x is one": {"holds": True, "value": 1.0, "threshold": 1.0,
                                             "margin": 0.0}}   # "only at full": not at quick
    assert record["budget"] == "quick"
    assert list(res["notebooks"]) == ["02_tiny"]
    (message,) = res["skipped"]["01_needs_omniglot"]
    assert "Omniglot" in message and "COURSE_DATA" in message
    assert res["failed"] == {}
    out = env.parent / "build"
    executed = nbformat.read(out / "notebooks" / "02_tiny.ipynb", as_version=4)
    assert "x" in "".join(o.get("text", "") for o in executed.cells[0].outputs)
    assert (out / "html" / "02_tiny.html").exists()
    assert not (out / "notebooks" / "01_needs_omniglot.ipynb").exists()
    printed = capsys.readouterr().out
    assert "[skip] 01_needs_omniglot" in printed and "- 01_needs_omniglot" in printed


@pytest.mark.slow
def test_main_real_failure_then_later_notebook_runs(env, omniglot_missing, capsys):
    """checks a real failing cell: "failed" names the error, the next notebook still runs, exit 1."""
    write_notebook(env, "01_boom", "raise ValueError('boom from the test')")
    write_notebook(env, "02_tiny", REPORT_CELL.format(name="02_tiny"))
    assert build.main(folder=env) == 1
    res = results_json(env)
    assert list(res["failed"]) == ["01_boom"]
    assert "boom from the test" in res["failed"]["01_boom"]
    assert res["notebooks"]["02_tiny"]["figures"] == {"x": 1.0}
    assert (env.parent / "build" / "notebooks" / "01_boom.ipynb").exists()  # saved even so
    assert "FAILED 01_boom" in capsys.readouterr().out


def test_reused_models_come_from_earlier_notebooks():
    """checks every notebook's "reuses" names a lecture notebook that comes before it in the
    course (the course build runs it first so its trained model is cached): θ of 01a. (06 loads
    05's MAML model too, but runs beside 05 and waits on the cache's lock for it.)"""
    names = [p.stem for p in paths.lecture_notebooks()]
    declared = {}
    for path in paths.lecture_notebooks():
        course = json.loads(path.read_text())["metadata"].get("course", {})
        for earlier in course.get("reuses", []):
            declared.setdefault(path.stem, []).append(earlier)
            assert earlier in names and names.index(earlier) < names.index(path.stem), (
                path.stem, earlier)
    assert declared == {name: ["01a_transfer_learning"] for name in (
        "01b_what_transfers", "01c_transfer_taxonomy", "04_black_box_meta_learning",
        "06_prototypical_networks")}


class _Shell:
    """A kernel client's shell channel that records what is sent on it."""

    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def _widget_capture(client) -> tuple[list, dict]:
    """Feed ``client`` the messages of an Output widget capturing one figure, as
    ``widgets.interact`` produces them; return (what was sent to the kernel, widget state)."""
    from jupyter_client.session import Session

    shell = _Shell()
    client.kc = type("KC", (), {"session": Session(), "shell_channel": shell})()
    cell_id, comm_id = "cell-request", "out-1"
    model = {"_model_module": "@jupyter-widgets/output", "_model_name": "OutputModel",
             "outputs": [], "msg_id": ""}
    comm = lambda kind, data: {"msg_type": kind, "parent_header": {"msg_id": cell_id},
                               "content": {"comm_id": comm_id, "data": data,
                                           "target_name": "jupyter.widget"}}
    outs = []
    client.handle_comm_msg(outs, comm("comm_open", {"state": model}), 0)
    client.handle_comm_msg(outs, comm("comm_msg", {"method": "update", "state": {"msg_id": cell_id}}), 0)
    figure = {"msg_type": "display_data", "parent_header": {"msg_id": cell_id},
              "header": {"msg_type": "display_data"},
              "content": {"data": {"text/plain": "<Figure>"}, "metadata": {}}}
    client.output(outs, figure, None, 0)
    return shell.sent, client.widget_state[comm_id]


def test_headless_widgets_record_outputs_without_echoing_them_to_the_kernel():
    """checks the build's notebook client keeps what an Output widget (``widgets.interact``)
    captures but sends nothing back on the shell socket, where nbclient's echo can swallow
    the cell's reply and leave it waiting for its timeout (08 hung so in a ``make course``);
    nbclient's own client does send, so the check sees the difference."""
    from nbclient import NotebookClient

    from course_grading.check.run import HeadlessClient

    sent, state = _widget_capture(HeadlessClient(new_notebook()))
    assert sent == []
    assert [o["data"]["text/plain"] for o in state["outputs"]] == ["<Figure>"]
    stock_sent, _ = _widget_capture(NotebookClient(new_notebook()))
    assert [m["msg_type"] for m in stock_sent] == ["comm_msg"]
