"""Paper-scale reproduction on a GPU: ``make paper`` (``python -m course_site.paper``).

The lecture notebooks run at laptop scale. This command runs the two papers' Omniglot settings —
5-way and 20-way, 1-shot and 5-shot — with the ``full`` budget's network (width 64) and step
counts, for MAML (Finn et al. 2017) and prototypical networks (Snell et al. 2017), and writes
``build/paper.json`` with each accuracy next to the one the paper reports.

MAML follows the paper (Adam at β = 10⁻³, where notebook 05's laptop run takes 1.5·10⁻³):
α = 0.4 and one inner step (three at test) for 5-way with 32 tasks per meta-batch; α = 0.1
and five inner steps (five at test) for 20-way with 16 tasks; 60,000 outer steps. Prototypical
networks train on 60-way episodes with K shots and 5 queries per class, Adam β = 10⁻³ halved
every 2,000 episodes. Both are scored on 600 test episodes of unseen alphabets.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from course_lib import maml, protonets
from course_lib.budget import get_budget
from course_lib.data import load_omniglot, with_rotations
from course_lib.episodes import EpisodeSampler
from course_lib.models import ConvNet
from course_lib.paths import build_dir
from course_lib.seeding import get_device, seed_everything

SETTINGS = {  # (ways, shots): MAML's inner loop, and the accuracies (%) the papers report
    (5, 1): dict(alpha=0.4, inner_steps=1, test_steps=3, meta_batch=32, maml=98.7, protonet=98.8),
    (5, 5): dict(alpha=0.4, inner_steps=1, test_steps=3, meta_batch=32, maml=99.9, protonet=99.7),
    (20, 1): dict(alpha=0.1, inner_steps=5, test_steps=5, meta_batch=16, maml=95.8, protonet=96.0),
    (20, 5): dict(alpha=0.1, inner_steps=5, test_steps=5, meta_batch=16, maml=98.9, protonet=98.9),
}
MAML_STEPS, PROTO_STEPS, PROTO_WAYS = 60_000, 20_000, 60


def run_maml(train, test, ways: int, shots: int, budget, steps: int, episodes: int, device):
    """MAML at the paper's setting: (accuracy, training seconds)."""
    s = SETTINGS[ways, shots]
    model, history, setting = maml.omniglot(
        train, budget, steps, retrain=True, device=device, ways=ways, shots=shots, queries=shots,
        alpha=s["alpha"], inner_steps=s["inner_steps"], meta_batch=s["meta_batch"], beta=1e-3)
    sampler = EpisodeSampler(test, ways=ways, shots=shots, queries=15, seed=2020, device=device)
    accuracy, _ = maml.evaluate(model, sampler, episodes, setting["alpha"], s["test_steps"])
    return accuracy, history.seconds


def run_protonet(train, test, ways: int, shots: int, budget, steps: int, episodes: int, device):
    """A prototypical network trained on 60-way K-shot episodes: (accuracy, training seconds)."""
    seed_everything(0)
    model = ConvNet(0, width=budget.width).to(device)
    sampler = EpisodeSampler(train, ways=min(PROTO_WAYS, train.classes), shots=shots, queries=5,
                             seed=0, device=device)
    history = protonets.meta_train(model, sampler, steps, beta=1e-3, decay_every=2000,
                                   desc=f"protonet {ways}-way {shots}-shot")
    test_sampler = EpisodeSampler(test, ways=ways, shots=shots, queries=15, seed=2020, device=device)
    return protonets.evaluate(model, test_sampler, episodes)[0], history.seconds


def run(settings=tuple(SETTINGS), maml_steps: int = MAML_STEPS, proto_steps: int = PROTO_STEPS,
        episodes: int = 600, budget=None, device=None) -> dict:
    """Train and test both learners at every (ways, shots) in ``settings``; return the table."""
    budget = budget or get_budget("full")
    device = device or get_device()
    train, test = with_rotations(load_omniglot("background")), load_omniglot("evaluation")
    table = {}
    for ways, shots in settings:
        row = {}
        for name, fn, steps in [("maml", run_maml, maml_steps),
                                ("protonet", run_protonet, proto_steps)]:
            accuracy, seconds = fn(train, test, ways, shots, budget, steps, episodes, device)
            row[name] = round(100 * accuracy, 2)
            row[f"{name}_paper"] = SETTINGS[ways, shots][name]
            row[f"{name}_train_seconds"] = round(seconds, 1)
            print(f"{ways}-way {shots}-shot {name:9s} {row[name]:6.2f}% (paper "
                  f"{row[f'{name}_paper']}%), trained in {seconds / 60:.1f} min", flush=True)
        table[f"{ways}w{shots}s"] = row
    return {"budget": budget.name, "device": str(device), "width": budget.width,
            "maml_steps": maml_steps, "protonet_steps": proto_steps, "episodes": episodes,
            "settings": table}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cpu, … (default: cuda if present)")
    parser.add_argument("--settings", default="5w1s,5w5s,20w1s,20w5s",
                        help="comma-separated N-way K-shot settings, e.g. 5w1s,20w5s")
    parser.add_argument("--maml-steps", type=int, default=MAML_STEPS)
    parser.add_argument("--protonet-steps", type=int, default=PROTO_STEPS)
    args = parser.parse_args(argv)
    settings = []
    for item in args.settings.split(","):
        ways, shots = (int(v) for v in item.strip().rstrip("s").split("w"))
        if (ways, shots) not in SETTINGS:
            parser.error(f"unknown setting {item!r}: choose from "
                         + ", ".join(f"{n}w{k}s" for n, k in SETTINGS))
        settings.append((ways, shots))
    device = torch.device(args.device) if args.device else get_device()
    if device.type == "cpu":
        print("no GPU: at paper scale this takes days on a CPU (use --maml-steps/--protonet-steps "
              "to try it small)", file=sys.stderr)
    start = time.perf_counter()
    results = run(settings, args.maml_steps, args.protonet_steps, device=device)
    results["seconds"] = round(time.perf_counter() - start, 1)
    path = build_dir() / "paper.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
