"""The MAML throughput benchmark: its gradient check, its figures and how it saves them."""
import json

import pytest
import torch

from course_lib import benchmarks
from course_lib.models import ConvNet

TINY = {"tiny": dict(meta_batch=3, ways=3, shots=1, queries=2)}


def test_every_path_gives_the_loop_meta_gradient():
    """checks that deep-copy and batched meta-gradients equal the per-task loop's."""
    torch.manual_seed(0)
    model = ConvNet(3, width=4, batch_stats=True)
    benchmarks.check_gradients(model, benchmarks.random_episodes(**TINY["tiny"]))


def test_gradient_check_catches_a_wrong_path(monkeypatch):
    """checks that a fast path with a wrong gradient fails the check before any timing."""
    torch.manual_seed(0)
    model = ConvNet(3, width=4, batch_stats=True)
    wrong = lambda m, e: [2 * g for g in benchmarks.course_step(m, e, True, batched=False)]
    monkeypatch.setattr(benchmarks, "deepcopy_step", wrong)
    with pytest.raises(AssertionError, match="deepcopy"):
        benchmarks.check_gradients(model, benchmarks.random_episodes(**TINY["tiny"]))


def test_run_reports_rates_and_ratios_and_save_merges(tmp_path, monkeypatch):
    """checks the figure names, that rates are positive, and that save keeps other keys."""
    figures = benchmarks.run(width=4, repeats=1, workloads=TINY)
    for name in ("deepcopy", "first_order", "second_order"):
        assert figures[f"maml_tiny_{name}_tasks_per_second"] > 0
        assert 0 < figures[f"maml_tiny_{name}_peak_fraction"]
    assert figures["maml_tiny_first_order_speedup"] > 0
    assert figures["matmul_gflops"] > 0
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path))
    (tmp_path / "results.json").write_text(json.dumps({"notebooks": {"x": 1},
                                                       "benchmarks": {"old": 2}}))
    benchmarks.save(figures)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["notebooks"] == {"x": 1} and saved["benchmarks"]["old"] == 2
    assert saved["benchmarks"]["maml_tiny_first_order_speedup"] == figures["maml_tiny_first_order_speedup"]
