"""The MAML throughput benchmark: its gradient check, its figures and how it saves them."""
import json
from types import SimpleNamespace

import pytest
import torch

from course_site import benchmarks
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


def spy(monkeypatch, name: str) -> list:
    """Wrap ``benchmarks.<name>`` so that every value it returns is appended to the list returned."""
    real, seen = getattr(benchmarks, name), []

    def wrapper(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(benchmarks, name, wrapper)
    return seen


def test_timers_read_the_clock(monkeypatch):
    """checks seconds_per_step (median of the timed calls, the warm-up call untimed) and
    matmul_gflops (2n³ · repeats / elapsed seconds) against a fake clock."""
    clock = [0.0]
    monkeypatch.setattr(benchmarks, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    durations, calls = iter([9.0, 1.0, 5.0, 2.0]), []

    def step():  # the warm-up "takes" 9 s, the three timed calls 1, 5 and 2 s
        calls.append(1)
        clock[0] += next(durations)

    assert benchmarks.seconds_per_step(step, repeats=3) == 2.0 and len(calls) == 4

    def ticking():  # every reading of the clock is 0.5 s after the previous one
        clock[0] += 0.5
        return clock[0]

    monkeypatch.setattr(benchmarks, "time", SimpleNamespace(perf_counter=ticking))
    assert benchmarks.matmul_gflops(n=8, repeats=5) == pytest.approx(2 * 8 ** 3 * 5 / 0.5 / 1e9)


def test_run_reports_rates_and_ratios_and_save_merges(tmp_path, monkeypatch):
    """checks the figure names, that every rate, speed-up and peak fraction is the one computed
    from the measured seconds per step, FLOPs and matmul rate (spied on), and that save keeps
    other keys."""
    timed, counted, peaks = (spy(monkeypatch, name)
                             for name in ("seconds_per_step", "flops_of", "matmul_gflops"))
    figures = benchmarks.run(width=4, repeats=1, workloads=TINY)
    seconds = dict(zip(("deepcopy", "first_order", "second_order"), timed, strict=True))
    loop_first, loop_second = counted  # the per-task loop's FLOPs: the useful work of each path
    work = {"deepcopy": loop_first, "first_order": loop_first, "second_order": loop_second}
    (peak,) = peaks
    assert figures["matmul_gflops"] == round(peak, 1)
    for name, s in seconds.items():
        assert figures[f"maml_tiny_{name}_tasks_per_second"] == round(3 / s, 1)  # B = 3 tasks
        assert figures[f"maml_tiny_{name}_peak_fraction"] == round(work[name] / s / 1e9 / peak, 3)
    for name in ("first_order", "second_order"):
        speedup = round(seconds["deepcopy"] / seconds[name], 2)
        assert figures[f"maml_tiny_{name}_speedup"] == speedup
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path))
    (tmp_path / "results.json").write_text(json.dumps({"notebooks": {"x": 1},
                                                       "benchmarks": {"old": 2}}))
    benchmarks.save(figures)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["notebooks"] == {"x": 1} and saved["benchmarks"]["old"] == 2
    assert saved["benchmarks"]["maml_tiny_first_order_speedup"] == figures["maml_tiny_first_order_speedup"]
