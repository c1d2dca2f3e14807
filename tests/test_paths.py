"""course_lib.paths: the cache a graded kernel writes (its own) and the one it reads (warmed)."""
from __future__ import annotations

import torch

from course_lib import paths, training
from course_lib.models import MLP


def test_own_cache_first_then_the_warmed_one(tmp_path, monkeypatch):
    """checks cache_dir is COURSE_CACHE when set, and cache_file reads an entry from the shared
    cache only while the own cache lacks it."""
    own, shared = tmp_path / "own", tmp_path / "shared"
    (shared / "models").mkdir(parents=True)
    (shared / "models" / "a.pt").write_bytes(b"warm")
    monkeypatch.setenv("COURSE_CACHE", str(own))
    monkeypatch.setenv("COURSE_CACHE_SHARED", str(shared))
    assert paths.cache_dir() == own and own.is_dir()
    assert paths.cache_file("models/a.pt") == shared / "models" / "a.pt"
    assert paths.cache_file("models/b.pt") == own / "models" / "b.pt"   # where it will be written
    (own / "models").mkdir()
    (own / "models" / "a.pt").write_bytes(b"mine")
    assert paths.cache_file("models/a.pt") == own / "models" / "a.pt"


def test_cached_model_loads_from_the_warmed_cache_and_writes_only_its_own(tmp_path, monkeypatch):
    """checks a model trained into one cache is loaded (not trained) from it as the shared cache
    of a second one, and that a miss is written to the own cache, never the shared one."""
    def trained(seed):
        torch.manual_seed(seed)
        return MLP(2, hidden=(4,), outputs=2)

    calls = []

    def train():
        calls.append(1)
        return training.History(loss=[1.0])

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "instructor"))
    first = trained(0)
    training.cached(first, "unit", train)
    monkeypatch.setenv("COURSE_CACHE_SHARED", str(tmp_path / "instructor"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "kernel"))
    second = trained(1)
    history = training.cached(second, "unit", train)
    assert history.loss == [1.0] and calls == [1], "a hit in the warmed cache must not train"
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    training.cached(trained(2), "other", train)
    assert len(list((tmp_path / "kernel" / "models").glob("other_*.pt"))) == 1
    assert not list((tmp_path / "instructor" / "models").glob("other_*.pt"))
