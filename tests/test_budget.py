"""Budgets (quick / default / full) and seeding."""
import dataclasses

import pytest
import torch

from course_lib import budget as budget_module
from course_lib.budget import BUDGETS, Budget, get_budget
from course_lib.seeding import seed_everything

SIZES = ["pretrain_steps", "finetune_steps", "meta_steps", "eval_episodes", "repeats", "width"]


def test_names():
    """checks that the three budgets exist and each knows its own name."""
    assert sorted(BUDGETS) == ["default", "full", "quick"]
    for name in BUDGETS:
        assert get_budget(name).name == name


def test_env_selects_budget(monkeypatch):
    """checks that COURSE_BUDGET picks the budget, and 'default' when it is unset."""
    monkeypatch.setenv("COURSE_BUDGET", "full")
    assert get_budget() is BUDGETS["full"]
    monkeypatch.delenv("COURSE_BUDGET")
    assert get_budget() is BUDGETS["default"]
    assert get_budget("quick") is BUDGETS["quick"]  # an explicit name wins over the variable


def test_unknown_budget_names_the_choices(monkeypatch):
    """checks that a typo gives a ValueError that lists the valid budgets."""
    with pytest.raises(ValueError, match="quick"):
        get_budget("quik")
    monkeypatch.setenv("COURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="COURSE_BUDGET"):
        get_budget()


def test_budgets_grow():
    """checks that quick ≤ default ≤ full in every size (quick is a miniature, not a variant)."""
    quick, default, full = (BUDGETS[n] for n in ("quick", "default", "full"))
    for size in SIZES:
        assert getattr(quick, size) <= getattr(default, size) <= getattr(full, size), size
        assert getattr(quick, size) > 0, size


def test_as_dict_round_trip_and_frozen():
    """checks that as_dict records every field (for saved results) and budgets are immutable."""
    for b in BUDGETS.values():
        record = b.as_dict()
        assert set(record) == {f.name for f in dataclasses.fields(Budget)}
        assert Budget(**record) == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUDGETS["quick"].width = 1
    assert budget_module.BUDGETS is BUDGETS


def test_seed_everything_is_reproducible():
    """checks that the same seed gives the same draws (global RNG and the returned generator)."""
    g1 = seed_everything(3)
    a, ga = torch.randn(5), torch.randn(5, generator=g1)
    g2 = seed_everything(3)
    b, gb = torch.randn(5), torch.randn(5, generator=g2)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    seed_everything(4)
    assert not torch.equal(a, torch.randn(5))


def test_use_threads_respects_the_environment(monkeypatch):
    """checks use_threads(2) uses 2 threads, but 1 where OMP_NUM_THREADS=1 (the test run's)."""
    import torch

    from course_lib.seeding import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert use_threads(2) == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert use_threads(2) == 1
    finally:
        torch.set_num_threads(before)


def test_try_it_runs_shorter_only_at_the_quick_budget(monkeypatch):
    """checks that a try-it cell's size is n at default and full, n / 5 (at least 1) at quick."""
    for name, expected in [("default", 300), ("full", 300), ("quick", 60)]:
        monkeypatch.setenv("COURSE_BUDGET", name)
        assert budget_module.try_it(300) == expected
    assert budget_module.try_it(3) == 1
