"""A notebook's headline figures (course_lib.results) and the shared figures (course_lib.plots)."""
import json

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import paths, plots, results  # noqa: E402
from course_lib.budget import get_budget  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def build(tmp_path, monkeypatch):
    """COURSE_BUILD in a temporary directory; nothing is written to the repository's build/."""
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path / "build"))
    return tmp_path / "build"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------- results.report
def test_build_dir_follows_course_build(build, monkeypatch):
    """checks COURSE_BUILD, and build/ at the repository root without it."""
    assert results.build_dir() == build
    monkeypatch.delenv("COURSE_BUILD")
    assert results.build_dir() == paths.REPO / "build"


def test_report_writes_budget_config_and_float_figures(build, capsys):
    """checks build/figures/<name>.json: budget name, the budget's config, figures as floats."""
    budget = get_budget("quick")
    record = results.report("01z_demo", budget, acc_5shot=np.float32(0.75), steps=3,
                            gap=torch.tensor(-0.125))
    path = build / "figures" / "01z_demo.json"
    assert path.exists()
    saved = json.loads(path.read_text())
    assert saved == record
    assert saved["budget"] == "quick"
    assert saved["config"] == budget.as_dict()
    assert saved["figures"] == {"acc_5shot": 0.75, "steps": 3.0, "gap": -0.125}
    assert all(type(v) is float for v in record["figures"].values())
    out = capsys.readouterr().out
    assert "01z_demo" in out and "'quick'" in out
    assert "acc_5shot" in out and "0.7500" in out and "-0.1250" in out


def test_report_overwrites_and_accepts_no_figures(build):
    """checks a second report replaces the first, and an empty report is valid."""
    budget = get_budget("quick")
    results.report("nb", budget, a=1.0)
    results.report("nb", budget, b=2.0)
    assert json.loads((build / "figures" / "nb.json").read_text())["figures"] == {"b": 2.0}
    assert results.report("empty", budget)["figures"] == {}


@pytest.mark.parametrize("bad", ["AccQuick", "acc-5shot", "5shot", "acc 5shot", "Acc_5"])
def test_report_rejects_names_that_are_not_snake_case(build, bad):
    """checks ValueError for a figure name that is not a lower-case identifier; nothing written."""
    with pytest.raises(ValueError, match="snake_case"):
        results.report("nb", get_budget("quick"), **{"ok": 1.0, bad: 1.0})
    assert not (build / "figures" / "nb.json").exists()


def test_report_rejects_non_numbers(build):
    """checks that a figure must be a plain number."""
    with pytest.raises((TypeError, ValueError)):
        results.report("nb", get_budget("quick"), acc="high")


# ---------------------------------------------------------------------------- results.show_table
def test_show_table_aligns_rows(capsys):
    """checks title, header and rows: equal widths, right-aligned cells, 3 decimals for floats."""
    rows = {"linear probe": (0.5, 0.0123, "120"), "fine-tune": (0.98765, 0.1, 33)}
    results.show_table(rows, ["accuracy", "± 95% CI", "weights"], title="5-way 5-shot")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "5-way 5-shot"
    header, *body = lines[1:]
    assert len(body) == 2
    width = len("linear probe") + 2
    assert len({len(line) for line in [header, *body]}) == 1  # all lines equally long
    assert len(header) == width + 3 * 16
    assert header[:width].strip() == ""
    assert header[width:].split() == ["accuracy", "±", "95%", "CI", "weights"]
    assert body[0].startswith("linear probe") and body[1].startswith("fine-tune")
    cells = [[line[width + 16 * i: width + 16 * (i + 1)] for i in range(3)] for line in body]
    assert [c.strip() for c in cells[0]] == ["0.500", "0.012", "120"]
    assert [c.strip() for c in cells[1]] == ["0.988", "0.100", "33"]
    for row in cells:  # right-aligned: every cell ends in its last character
        assert all(not c.endswith(" ") and c.startswith(" ") for c in row)
    # every column's right edge (also in the header) lies at the same place
    for i in range(3):
        edge = width + 16 * (i + 1) - 1
        assert all(line[edge] != " " for line in [header, *body])


def test_show_table_widens_a_column_for_a_long_header(capsys):
    """checks a header longer than 16 characters gets a column of its length and two spaces,
    so headers never run together, and the cells stay right-aligned under it."""
    results.show_table({"MAML": ("54.7 (4)", 0.9397)}, ["mini-ImageNet 1-shot", "Omniglot"])
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["mini-ImageNet", "1-shot", "Omniglot"]
    assert len(header) == len(row) == len("MAML") + 2 + len("mini-ImageNet 1-shot") + 2 + 16
    assert header.index("1-shot") + len("1-shot") == row.index("(4)") + len("(4)")
    with pytest.raises(ValueError, match="'MAML' has more values than the 1 columns"):
        results.show_table({"MAML": ("54.7 (4)", 0.9397)}, ["mini-ImageNet 1-shot"])


def test_show_table_without_title(capsys):
    """checks that no title line is printed when none is given."""
    results.show_table({"a": (1.0,)}, ["x"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("a ")


# ---------------------------------------------------------------------------- plots
def saved_png(build, name):
    path = build / "figures" / f"{name}.png"
    assert path.exists(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    return path


def test_finish_saves_only_given_a_name(build):
    """checks finish returns the figure, saves build/figures/<name>.png only when named."""
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert plots.finish(fig) is fig
    assert not (build / "figures").exists()
    assert plots.finish(fig, "line") is fig
    saved_png(build, "line")


@pytest.mark.parametrize("shape", [(12, 1, 8, 8), (12, 8, 8)])
def test_show_images(build, shape):
    """checks the grid: one axis per slot, an image in the first n, titles, suptitle, PNG."""
    x = torch.rand(*shape)
    fig = plots.show_images(x, titles=[f"k={i % 4}" for i in range(12)], ncols=5,
                            title="rotations", name="grid")
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 15  # 3 rows of 5
    assert [len(ax.images) for ax in axes] == [1] * 12 + [0] * 3
    assert axes[0].get_title() == "k=0" and axes[5].get_title() == "k=1"
    assert fig._suptitle.get_text() == "rotations"
    assert axes[0].images[0].get_array().shape == (8, 8)
    saved_png(build, "grid")


def test_bars(build):
    """checks one bar per method, method names on the y-axis, the value label on the x-axis."""
    names = ["scratch", "linear probe", "fine-tune"]
    fig = plots.bars(names, [0.4, 0.6, 0.8], [0.05, 0.04, 0.03], ylabel="query accuracy",
                     title="5-way 1-shot", name="bars")
    assert isinstance(fig, Figure)
    ax, = fig.axes
    assert ax.get_xlabel() == "query accuracy"
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert ax.get_title() == "5-way 1-shot"
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == pytest.approx([0.4, 0.6, 0.8])
    saved_png(build, "bars")


@pytest.mark.parametrize("logx", [False, True])
def test_curves(build, logx):
    """checks axis labels, one line per series with its legend entry, the scale, the PNG."""
    x = [1, 2, 5, 10]
    series = {"fine-tune": ([0.5, 0.6, 0.7, 0.8], [0.1] * 4),
              "probe": (torch.tensor([0.4, 0.5, 0.55, 0.6]), torch.full((4,), 0.05))}
    fig = plots.curves(x, series, xlabel="shots", ylabel="accuracy", title="t", logx=logx,
                       name="curves")
    assert isinstance(fig, Figure)
    ax, = fig.axes
    assert ax.get_xlabel() == "shots" and ax.get_ylabel() == "accuracy"
    assert ax.get_xscale() == ("log" if logx else "linear")
    assert [line.get_label() for line in ax.get_lines()] == ["fine-tune", "probe"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [0.4, 0.5, 0.55, 0.6])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fine-tune", "probe"]
    assert len(ax.collections) == 2  # one CI band per series
    saved_png(build, "curves")


def test_filters(build):
    """checks one labelled row per weight set, a strip of (k + 1)·out columns scaled to [0, 1]."""
    torch.manual_seed(0)
    weights = {"θ": torch.randn(6, 1, 3, 3), "φ": torch.randn(6, 1, 3, 3, requires_grad=True)}
    fig = plots.filters(weights, title="first-layer filters", name="filters")
    assert isinstance(fig, Figure)
    assert [ax.get_ylabel() for ax in fig.axes] == ["θ", "φ"]
    for ax, w in zip(fig.axes, weights.values()):
        strip = np.asarray(ax.images[0].get_array())
        assert strip.shape == (3, 6 * 4)
        assert strip.min() >= 0 and strip.max() <= 1
        # each filter is min-max scaled: its smallest weight maps to 0, its largest to ~1
        first = strip[:, :3]
        assert first.min() == pytest.approx(0) and first.max() == pytest.approx(1, abs=1e-6)
        order = np.argsort(first.ravel())
        np.testing.assert_array_equal(order, np.argsort(w.detach()[0, 0].numpy().ravel()))
    saved_png(build, "filters")
