"""The papers' few-shot accuracy on a laptop: part of ``make bench`` (``python -m course_site.laptop``).

The lecture notebooks train their meta-learners on one core each, two notebooks at once, so that
the course fits in 20 minutes. Here each learner has the whole machine (every core) and a step
count sized for a 2-core CPU, and is tested as the papers test it: 5-way 1-shot episodes of the
evaluation alphabets of Omniglot (1,000 of them, 15 queries per class, the mean and its 95%
interval).

- ProtoNet (Snell et al. 2017: 98.8%): :data:`RECIPES` ``["protonet"]``; target ≥ 98% within
  300 s of training.
- MAML (Finn et al. 2017: 98.7%), second order, notebook 05's setting run for longer:
  :data:`RECIPES` ``["maml"]``; target ≥ 96% within 600 s.
- An in-context learner (Santoro et al. 2016's memory-augmented network: 82.8% from pixels):
  notebook 04's attention reader, a small transformer over (image, label) pairs and the query,
  trained end to end with its conv encoder from pixels (no pre-trained features), so that it
  learns a task from the examples in its input, as a language model does from a prompt's
  examples: :data:`RECIPES` ``["incontext"]``; target ≥ 80% within 600 s.

Both train from scratch on every run (MAML's θ is written to the model cache but never
loaded from it): the seconds are this machine's. Every fifth of the training, 200 other test
episodes give a point of the accuracy-against-seconds curve (their time is not counted). The figures go under ``"benchmarks"`` of
``build/results.json``: ``{name}_5w1s_acc``, ``…_ci``, ``…_train_seconds``, ``…_steps``,
``…_curve`` (``[seconds, accuracy]`` pairs) and ``…_target_met``. The in-context learner, trained
with one example per class, is then tested with K = 1, 2, 3, 5 and 10 examples per class in its
input (:data:`SHOT_SWEEP`, 200 episodes each): ``incontext_acc_by_shots``, ``[K, accuracy,
interval]`` rows — how a prompt with more examples than training ever showed is read.
"""
from __future__ import annotations

import os
import sys

from course_lib import blackbox, maml, protonets
from course_lib.budget import get_budget
from course_lib.data import checked, load_omniglot, with_rotations
from course_lib.episodes import EpisodeSampler
from course_lib.models import ConvNet
from course_lib.seeding import seed_everything, use_threads
from course_lib.training import accuracy_by_shots, evaluate_episodes

from . import record

RECIPES = {
    # 60-way 1-shot episodes with one query per class (notebook 06's), β halved four times
    "protonet": dict(steps=8000, ways=60, shots=1, queries=1, beta=5e-3, halvings=4),
    # notebook 05's setting (α = 0.4, one inner step, 16 tasks, β = 1.5·10⁻³ halved for the last
    # third), three test steps
    "maml": dict(steps=3200, test_steps=3),
    # notebook 04's end-to-end black box (a random conv net and the attention reader), 16
    # 5-way 1-shot episodes per step with one query per class, Adam at β = 10⁻³
    "incontext": dict(steps=4000, beta=1e-3, meta_batch=16),
}
TARGETS = {"protonet": (0.98, 300.0), "maml": (0.96, 600.0),   # (accuracy, training seconds)
           "incontext": (0.80, 600.0)}
TEST_EPISODES, CURVE_EPISODES, CURVE_POINTS = 1000, 200, 5
# examples per class in the input at test time, for the learners trained with one; episodes each
SHOT_SWEEP, SWEEP_EPISODES = {"incontext": (1, 2, 3, 5, 10)}, 200


def test_tasks(test, seed: int) -> EpisodeSampler:
    """5-way 1-shot episodes of the evaluation alphabets, 15 queries per class."""
    return EpisodeSampler(test, ways=5, shots=1, queries=15, seed=seed)


def train_protonet(train, test, steps: int, ways: int, shots: int, queries: int, beta: float,
                   halvings: int, curve_episodes: int = CURVE_EPISODES, progress: bool = True):
    """f_θ meta-trained on ``ways``-way episodes; returns (learner, history)."""
    seed_everything(0)
    model = ConvNet(0, width=get_budget("default").width)
    history = protonets.meta_train(
        model, EpisodeSampler(train, ways=ways, shots=shots, queries=queries, seed=0), steps,
        beta=beta, decay_every=max(steps // halvings, 1), val_sampler=test_tasks(test, 1),
        val_every=max(steps // CURVE_POINTS, 1), val_episodes=curve_episodes, progress=progress,
        desc="ProtoNet θ")
    return protonets.learner(model), history


def train_maml(train, test, steps: int, test_steps: int, curve_episodes: int = CURVE_EPISODES,
               progress: bool = True):
    """θ meta-trained by second-order MAML (notebook 05's setting); returns (learner, history)."""
    model, history, setting = maml.omniglot(
        train, get_budget("default"), steps, val_sampler=test_tasks(test, 1),
        val_every=max(steps // CURVE_POINTS, 1), val_episodes=curve_episodes, retrain=True,
        progress=progress)
    return maml.learner(model, setting["alpha"], steps=test_steps), history


def train_incontext(train, test, steps: int, beta: float, meta_batch: int,
                    curve_episodes: int = CURVE_EPISODES, progress: bool = True):
    """f_θ(𝒟ᵗʳ, xᵗˢ): a conv encoder and an attention reader meta-trained together from
    pixels on 5-way 1-shot episodes; returns (learner, history)."""
    seed_everything(0)
    width = get_budget("default").width
    model = blackbox.BlackBox(ConvNet(0, width=width), blackbox.AttentionReader(width, 5))
    history = blackbox.meta_train(
        model, EpisodeSampler(train, ways=5, shots=1, queries=1, seed=0), steps, beta=beta,
        meta_batch=meta_batch, val_sampler=test_tasks(test, 1),
        val_every=max(steps // CURVE_POINTS, 1), val_episodes=curve_episodes, progress=progress,
        desc="in-context θ")
    return blackbox.learner(model, 5), history


def by_shots(learner, test, shots, episodes: int, progress: bool = True) -> list[list]:
    """``[K, accuracy, 95% half-width]`` for each K in ``shots``: 5-way episodes (seed 2021) with
    ``max(shots)`` drawings per class in 𝒟ᵗʳ and 10 queries per class (Omniglot has 20 drawings
    of each character), read with the first K of each class
    (:func:`course_lib.training.accuracy_by_shots`: the rows compare K episode by episode)."""
    sampler = EpisodeSampler(test, ways=5, shots=max(shots), queries=10, seed=2021)
    rows = accuracy_by_shots(learner, sampler, shots, episodes, progress)
    return [[k, *(round(v, 4) for v in estimate)] for k, estimate in zip(shots, rows)]


def run(recipes: dict = RECIPES, episodes: int = TEST_EPISODES,
        curve_episodes: int = CURVE_EPISODES, sweep_episodes: int = SWEEP_EPISODES,
        progress: bool = True) -> dict:
    """Train and test each learner of ``recipes`` (name → the keyword arguments of its trainer);
    return the benchmark figures."""
    unknown = set(recipes) - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown learner(s) {sorted(unknown)}: choose from {sorted(TARGETS)}")
    threads = use_threads(os.cpu_count() or 1)
    train, test = with_rotations(load_omniglot("background")), load_omniglot("evaluation")
    trainers = {"protonet": train_protonet, "maml": train_maml, "incontext": train_incontext}
    figures = {"laptop_threads": threads}
    for name, recipe in recipes.items():
        learner, history = trainers[name](train, test, **recipe, curve_episodes=curve_episodes,
                                          progress=progress)
        acc, ci = evaluate_episodes(learner, test_tasks(test, 2020), episodes, progress=progress,
                                    desc=f"{name} test episodes")
        steps, seconds = recipe["steps"], history.seconds
        target_acc, target_seconds = TARGETS[name]
        key = f"{name}_5w1s"
        figures |= {f"{key}_acc": round(acc, 4), f"{key}_ci": round(ci, 4),
                    f"{key}_train_seconds": round(seconds, 1), f"{key}_steps": steps,
                    # validation time is not training time: the seconds at a point are
                    # interpolated by steps (each step costs the same)
                    f"{key}_curve": [[round(seconds * s / steps, 1), round(a, 4)]
                                     for s, a in zip(history.val_step, history.val_acc)],
                    f"{key}_target_met": acc >= target_acc and seconds <= target_seconds}
        print(f"{name}: 5-way 1-shot {acc:.4f} ± {ci:.4f} over {episodes} test episodes after "
              f"{seconds:.0f} s of training ({steps} steps, {threads} threads); target "
              f"≥ {target_acc} within {target_seconds:.0f} s: "
              f"{'met' if figures[f'{key}_target_met'] else 'NOT met'}", flush=True)
        if name in SHOT_SWEEP:   # trained with one example per class, read with more
            rows = by_shots(learner, test, SHOT_SWEEP[name], sweep_episodes, progress)
            figures[f"{name}_acc_by_shots"] = rows
            print(f"{name}, examples per class in the input → accuracy: "
                  + ", ".join(f"{k}: {a:.3f} ± {c:.3f}" for k, a, c in rows), flush=True)
    return figures


def main() -> int:
    missing = checked("omniglot")
    if missing is not None:   # the data message, not a traceback; nothing is written
        print(missing, file=sys.stderr)
        return 1
    figures = run()
    print(f"wrote benchmarks to {record.update(benchmarks=figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
