"""``COURSE_SEED``: one setting that moves every seed of the course, and leaves seed 0 alone.

The oracle is the raw seed: under ``COURSE_SEED=c`` a seed n must behave exactly as the raw seed
n + 10,000·c does today (and as n itself when c is 0 or unset), for the seeding helpers and for
the library's samplers, training loop and cache keys that go through them.
"""
import copy
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import finetuning, maml
from course_lib.budget import get_budget
from course_lib.episodes import EpisodeSampler
from course_lib.seeding import as_generator, course_seed, generator, rng, seed, seed_everything
from course_lib.training import fit

from toys import fake_images


def draws(g: torch.Generator) -> torch.Tensor:
    return torch.rand(5, generator=g)


@pytest.fixture(autouse=True)
def hash_seed(monkeypatch):
    """seed_everything writes PYTHONHASHSEED: give it back after each test."""
    monkeypatch.setenv("PYTHONHASHSEED", "0")


@pytest.fixture
def seed_1(monkeypatch):
    """COURSE_SEED=1 for this test only."""
    monkeypatch.setenv("COURSE_SEED", "1")


# ---------------------------------------------------------------------------- seed 0 is today
@pytest.mark.parametrize("value", [None, "0", ""])
def test_course_seed_0_changes_nothing(monkeypatch, value):
    """checks that COURSE_SEED unset, "0" or empty gives the raw seeds: generator, rng,
    as_generator and seed_everything draw what torch / NumPy seeded with n itself draw."""
    if value is None:
        monkeypatch.delenv("COURSE_SEED", raising=False)
    else:
        monkeypatch.setenv("COURSE_SEED", value)
    assert course_seed() == 0 and seed(7) == 7
    assert torch.equal(draws(generator(7)), draws(torch.Generator().manual_seed(7)))
    assert torch.equal(draws(as_generator(7)), draws(torch.Generator().manual_seed(7)))
    assert rng(7).random() == np.random.default_rng(7).random()
    returned = seed_everything(7)
    ours = (torch.rand(3), np.random.rand(), random.random(), draws(returned))
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    assert torch.equal(ours[0], torch.rand(3))
    assert ours[1:3] == (np.random.rand(), random.random())
    assert torch.equal(ours[3], draws(torch.Generator().manual_seed(7)))


# ---------------------------------------------------------------------------- COURSE_SEED=1
def test_course_seed_moves_the_helpers(seed_1):
    """checks that under COURSE_SEED=1 each helper draws what the raw seed n + 10,000 draws,
    and no longer what n draws; a torch.Generator passed to as_generator is left as it is."""
    assert course_seed() == 1 and seed(7) == 10_007
    raw = torch.Generator().manual_seed(10_007)
    assert torch.equal(draws(generator(7)), draws(raw))
    assert not torch.equal(draws(generator(7)), draws(torch.Generator().manual_seed(7)))
    assert torch.equal(draws(as_generator(7)), draws(torch.Generator().manual_seed(10_007)))
    given = torch.Generator().manual_seed(7)
    assert as_generator(given) is given
    assert rng(7).random() == np.random.default_rng(10_007).random()
    assert rng(7).random() != np.random.default_rng(7).random()
    seed_everything(7)
    ours = torch.rand(3)
    torch.manual_seed(10_007)
    assert torch.equal(ours, torch.rand(3))


def test_course_seed_moves_an_episode_sampler(monkeypatch):
    """checks that an EpisodeSampler's first episode under COURSE_SEED=1 is the raw seed
    3 + 10,000's first episode under COURSE_SEED=0, and differs from seed 3's."""
    images = fake_images(n_per_class=8)

    def first(seed, course):
        monkeypatch.setenv("COURSE_SEED", course)
        return EpisodeSampler(images, ways=5, shots=1, queries=2, seed=seed).sample()

    moved, oracle, before = first(3, "1"), first(10_003, "0"), first(3, "0")
    assert torch.equal(moved.classes, oracle.classes) and torch.equal(moved.query_x, oracle.query_x)
    assert not (torch.equal(moved.classes, before.classes)
                and torch.equal(moved.support_x, before.support_x))


def test_course_seed_moves_fits_minibatches(monkeypatch):
    """checks that fit's minibatch order moves with COURSE_SEED: from the same initial weights,
    seed 0 under COURSE_SEED=1 ends where the raw seed 10,000 does, not where seed 0 does."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g)
    start = nn.Linear(4, 2)

    def trained(seed, course):
        monkeypatch.setenv("COURSE_SEED", course)
        model = copy.deepcopy(start)
        fit(model, x, y, steps=3, lr=0.1, batch_size=4, seed=seed, progress=False)
        return model.weight.detach()

    moved, oracle, before = trained(0, "1"), trained(10_000, "0"), trained(0, "0")
    assert torch.equal(moved, oracle)
    assert not torch.equal(moved, before)


def cache_keys(monkeypatch, module) -> list[str]:
    """Replace ``module.cached`` by a stand-in that records the key and trains nothing."""
    keys = []
    monkeypatch.setattr(module, "cached", lambda model, key, train, retrain=False: keys.append(key))
    return keys


def test_pretrain_cache_key_names_the_effective_seed(monkeypatch):
    """checks the pretrain cache key: byte-identical to today's under COURSE_SEED=0
    ("…_seed2"), and naming seed 10,002 under COURSE_SEED=1, so the two are separate entries."""
    keys = cache_keys(monkeypatch, finetuning)
    budget = get_budget("quick")
    images = fake_images(n_per_class=2)
    for course in ("0", "1"):
        monkeypatch.setenv("COURSE_SEED", course)
        finetuning.pretrain(images, budget, seed=2, steps=5, progress=False)
    n, w = len(images.y), budget.width
    assert keys == [f"fake_n{n}_c10_w{w}_s5_seed2", f"fake_n{n}_c10_w{w}_s5_seed10002"]


def test_maml_cache_key_names_the_effective_seed(monkeypatch):
    """checks maml.omniglot's cache key: today's under COURSE_SEED=0 (the setting's items in
    order, seed0), the effective seed 10,000 under COURSE_SEED=1; the setting returned keeps
    the seed the caller named."""
    keys = cache_keys(monkeypatch, maml)
    budget = get_budget("quick")
    images = fake_images(n_per_class=4)
    for course in ("0", "1"):
        monkeypatch.setenv("COURSE_SEED", course)
        *_, setting = maml.omniglot(images, budget, steps=5, progress=False)
        assert setting["seed"] == 0
    today = (f"maml_fake_n{len(images)}_w{budget.width}_steps5_"
             + "_".join(f"{k}{v}" for k, v in maml.OMNIGLOT.items()))
    assert keys[0] == today and "_seed0_" not in keys[1]
    assert keys[1] == today.replace("_seed0", "_seed10000")


# ---------------------------------------------------------------------------- a bad value
@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
def test_a_bad_course_seed_is_a_value_error(monkeypatch, value):
    """checks that COURSE_SEED that is not a non-negative integer raises a ValueError naming
    the variable and the value, from course_seed and from the helpers that read it."""
    monkeypatch.setenv("COURSE_SEED", value)
    for call in (course_seed, lambda: generator(0), lambda: seed_everything(0)):
        with pytest.raises(ValueError, match="COURSE_SEED") as err:
            call()
        assert repr(value) in str(err.value)


# ---------------------------------------------------------------------------- who may not move
def test_graded_kernels_always_use_course_seed_0(tmp_path, monkeypatch):
    """checks the grading sandbox's kernel spec sets COURSE_SEED=0 whatever the grader's shell
    says (the kernel's environment is the grader's, overridden by the spec's env)."""
    from course_grading.kernel.sandbox import ENVIRONMENT, Limits, write_kernel_spec

    monkeypatch.setenv("COURSE_SEED", "3")
    workdir = tmp_path / "work"
    workdir.mkdir()
    folder = write_kernel_spec(tmp_path / "jupyter", workdir, Limits())
    spec = json.loads((folder / "kernels" / "course-sandbox" / "kernel.json").read_text())
    assert ENVIRONMENT["COURSE_SEED"] == "0" and spec["env"]["COURSE_SEED"] == "0"


def test_course_build_records_the_seed(tmp_path, monkeypatch, capsys):
    """checks that make course's results.json records COURSE_SEED beside the budget and that
    its summary names it (no notebook is run)."""
    from course_lib import data, paths
    from course_site import build

    monkeypatch.setenv("COURSE_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("COURSE_SEED", "2")
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    monkeypatch.setattr(data, "checked", lambda name: "not here (test)")  # no benchmarks
    (tmp_path / "notebooks").mkdir()
    assert build.main(folder=tmp_path / "notebooks") == 0
    results = json.loads((tmp_path / "build" / "results.json").read_text())
    assert results["seed"] == 2 and "budget" in results
    assert "COURSE_SEED=2" in capsys.readouterr().out
