"""Meta-training throughput: ``make bench`` (``python -m course_site.benchmarks``).

Times one MAML outer step (a meta-batch of tasks: inner step on 𝒟ᵗʳᵢ with α, query loss on
𝒟ᵗˢᵢ, meta-gradient ∇_θ) three ways, on the same model, meta-batch and machine in one run:

- ``deepcopy``: the textbook loop — per task, copy the model, take an SGD step on 𝒟ᵗʳᵢ,
  back-propagate the query loss, accumulate the copy's gradient (first-order only);
- ``first_order`` and ``second_order``: :func:`course_lib.maml.meta_loss_batched`, the same
  :func:`~course_lib.maml.inner_loop` run once on all B tasks (:class:`~course_lib.maml.TaskBatch`).

Two workloads: the MAML paper's Omniglot setting (B = 32 tasks, 5-way 1-shot, one query per
class) and 15 queries per class (B = 16). Each step's floating-point operations are counted
with ``torch.utils.flop_counter`` and compared with the machine's matmul rate, measured in the
same run (counted on the per-task loop, so all three paths are credited with the same useful
work). Before timing, every path's meta-gradient is checked against the plain per-task loop
:func:`~course_lib.maml.meta_loss`. The figures are merged into ``build/results.json`` under
``"benchmarks"``; ``maml_step_speedup`` is first-order against deep-copy, paper setting.
"""
from __future__ import annotations

import copy
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_lib.budget import get_budget
from course_lib.episodes import Episode
from course_lib.maml import meta_loss, meta_loss_batched, parameters_of
from course_lib.models import ConvNet

from . import record

WORKLOADS = {"paper": dict(meta_batch=32, ways=5, shots=1, queries=1),
             "queries15": dict(meta_batch=16, ways=5, shots=1, queries=15)}
ALPHA = 0.4


def matmul_gflops(n: int = 512, repeats: int = 50) -> float:
    """The machine's float32 matmul rate in GFLOP/s (2n³ operations per n×n product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def random_episodes(meta_batch: int, ways: int, shots: int, queries: int,
                    seed: int = 0) -> list[Episode]:
    """B Omniglot-shaped episodes of random images (throughput does not depend on pixels)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(ways)
    return [Episode(torch.randn(ways * shots, 1, 28, 28, generator=g), labels.repeat_interleave(shots),
                    torch.randn(ways * queries, 1, 28, 28, generator=g),
                    labels.repeat_interleave(queries), labels)
            for _ in range(meta_batch)]


def deepcopy_step(model: torch.nn.Module, episodes: list[Episode]) -> list[torch.Tensor]:
    """First-order meta-gradient the textbook way: one deep copy of f_θ per task."""
    grads = [torch.zeros_like(p) for p in model.parameters()]
    for e in episodes:
        phi = copy.deepcopy(model)
        inner = torch.optim.SGD(phi.parameters(), lr=ALPHA)
        F.cross_entropy(phi(e.support_x), e.support_y).backward()
        inner.step()
        inner.zero_grad()
        F.cross_entropy(phi(e.query_x), e.query_y).backward()
        for g, p in zip(grads, phi.parameters()):
            g += p.grad / len(episodes)
    return grads


def course_step(model: torch.nn.Module, episodes: list[Episode], first_order: bool,
                batched: bool = True) -> list[torch.Tensor]:
    """Meta-gradient ∇_θ (1/B) Σᵢ ℒ(φᵢ, 𝒟ᵗˢᵢ) with course_lib's inner loop."""
    theta = parameters_of(model)
    loss = (meta_loss_batched if batched else meta_loss)(model, theta, episodes, ALPHA, 1,
                                                         first_order)
    return list(torch.autograd.grad(loss, list(theta.values())))


def check_gradients(model, episodes, atol: float = 1e-4) -> None:
    """Every fast path gives the plain per-task loop's meta-gradient (else: AssertionError)."""
    for first_order in (True, False):
        reference = course_step(model, episodes, first_order, batched=False)
        fast = course_step(model, episodes, first_order)
        paths = [("batched", fast)] + ([("deepcopy", deepcopy_step(model, episodes))]
                                       if first_order else [])
        for name, grads in paths:
            for r, g in zip(reference, grads):
                if not torch.allclose(r, g, atol=atol, rtol=1e-3):
                    raise AssertionError(f"{name} meta-gradient ({'first' if first_order else 'second'}"
                                         f" order) differs from the loop by {(r - g).abs().max():.2e}")


def seconds_per_step(step, repeats: int) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops_of(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def run(width: int | None = None, repeats: int = 5, workloads: dict = WORKLOADS) -> dict:
    """Time every path on every workload; return the ``benchmarks`` figures (a flat dict)."""
    width = width or get_budget().width
    torch.manual_seed(0)
    model = ConvNet(5, width=width, batch_stats=True)
    peak = matmul_gflops()
    figures = {"matmul_gflops": round(peak, 1), "maml_bench_width": width,
               "maml_bench_threads": torch.get_num_threads()}
    for workload, sizes in workloads.items():
        episodes = random_episodes(**sizes)
        check_gradients(model, episodes)
        steps = {"deepcopy": lambda: deepcopy_step(model, episodes),
                 "first_order": lambda: course_step(model, episodes, True),
                 "second_order": lambda: course_step(model, episodes, False)}
        seconds = {}
        # useful work: the FLOPs of the plain per-task loop (a grouped convolution is counted
        # as if every task convolved every channel group, which overstates it B times)
        work = {"deepcopy": flops_of(lambda: course_step(model, episodes, True, batched=False)),
                "second_order": flops_of(lambda: course_step(model, episodes, False, batched=False))}
        work["first_order"] = work["deepcopy"]
        for name, step in steps.items():
            seconds[name] = seconds_per_step(step, repeats)
            gflops = work[name] / seconds[name] / 1e9
            figures[f"maml_{workload}_{name}_tasks_per_second"] = round(sizes["meta_batch"] / seconds[name], 1)
            figures[f"maml_{workload}_{name}_peak_fraction"] = round(gflops / peak, 3)
            print(f"{workload:10s} {name:13s} {seconds[name]:.3f} s/step "
                  f"{sizes['meta_batch'] / seconds[name]:7.1f} tasks/s  {gflops:6.1f} GFLOP/s "
                  f"({100 * gflops / peak:.0f}% of matmul)", flush=True)
        for name in ("first_order", "second_order"):
            figures[f"maml_{workload}_{name}_speedup"] = round(seconds["deepcopy"] / seconds[name], 2)
    if "paper" in workloads:
        figures["maml_step_speedup"] = figures["maml_paper_first_order_speedup"]
    return figures


def save(figures: dict) -> None:
    """Merge ``figures`` into ``build/results.json``'s ``benchmarks``."""
    print(f"wrote benchmarks to {record.update(benchmarks=figures)}")


def main() -> int:
    figures = run()
    save(figures)
    print(f"first-order speed-up over the deep-copy loop (paper setting): "
          f"{figures['maml_step_speedup']:.2f}× (target ≥ 2); second-order: "
          f"{figures['maml_paper_second_order_speedup']:.2f}× (target ≥ 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
