"""The laptop-accuracy benchmark, run tiny: its figures, its curve, its verdict on the targets."""
import pytest
import torch

from course_site import laptop

TINY = {"protonet": dict(steps=5, ways=10, shots=1, queries=1, beta=1e-3, halvings=2),
        "maml": dict(steps=2, test_steps=1), "incontext": dict(steps=2, beta=1e-3, meta_batch=2)}


def test_tiny_run_records_what_training_and_testing_gave(omniglot_background, monkeypatch):
    """checks that the three learners train, are tested on 5-way 1-shot episodes with 15 queries, and
    that each figure is the one its evaluation and its history gave (spied on and set to known
    values): the accuracy and interval, the seconds, a curve point per validation, and the
    verdict, which needs both the accuracy and the time (ProtoNet: 0.985 in 250 s meets ≥ 0.98
    in 300 s; MAML: 0.97 in 700 s misses 600 s; the in-context learner: 0.85 in 100 s meets
    ≥ 0.80 in 600 s); and that the in-context learner, and only it, is then read with 1, 2, 3, 5 and
    10 examples per class in its input, one accuracy row per K."""
    tested, swept = {}, []
    real_evaluate = laptop.evaluate_episodes
    real_by_shots = laptop.by_shots

    def by_shots(learner, test, shots, episodes, progress=True):
        swept.extend(shots)
        assert episodes == 2
        return real_by_shots(learner, test, shots, episodes, progress=False)

    def evaluate(learner, sampler, episodes, **kwargs):
        assert (sampler.ways, sampler.shots, sampler.queries, episodes) == (5, 1, 15, 3)
        name = kwargs["desc"].split()[0]
        real_evaluate(learner, sampler, episodes, progress=False)   # the learner really works
        tested[name] = {"protonet": (0.985, 0.004), "maml": (0.97, 0.005),
                        "incontext": (0.85, 0.01)}[name]
        return tested[name]

    def with_seconds(real, seconds, returns_tuple):
        def train(*args, **kwargs):
            out = real(*args, **kwargs)
            (out[1] if returns_tuple else out).seconds = seconds
            return out
        return train

    monkeypatch.setattr(laptop, "evaluate_episodes", evaluate)
    monkeypatch.setattr(laptop, "by_shots", by_shots)
    monkeypatch.setattr(laptop.protonets, "meta_train",
                        with_seconds(laptop.protonets.meta_train, 250.0, False))
    monkeypatch.setattr(laptop.maml, "omniglot", with_seconds(laptop.maml.omniglot, 700.0, True))
    monkeypatch.setattr(laptop.blackbox, "meta_train",
                        with_seconds(laptop.blackbox.meta_train, 100.0, False))
    figures = laptop.run(TINY, episodes=3, curve_episodes=2, sweep_episodes=2, progress=False)
    assert set(tested) == {"protonet", "maml", "incontext"}
    assert figures["protonet_5w1s_acc"] == 0.985 and figures["protonet_5w1s_ci"] == 0.004
    assert figures["protonet_5w1s_train_seconds"] == 250.0 and figures["protonet_5w1s_steps"] == 5
    assert figures["protonet_5w1s_target_met"] is True
    assert figures["maml_5w1s_target_met"] is False          # accurate enough, but too slow
    # a validation every step (steps // 5 < 1): seconds interpolated by steps
    assert [s for s, _ in figures["protonet_5w1s_curve"]] == [50.0, 100.0, 150.0, 200.0, 250.0]
    assert [s for s, _ in figures["maml_5w1s_curve"]] == [350.0, 700.0]
    assert figures["incontext_5w1s_target_met"] is True
    assert [s for s, _ in figures["incontext_5w1s_curve"]] == [50.0, 100.0]
    # only the in-context learner is read with more examples than it was trained with
    assert swept == [1, 2, 3, 5, 10] and set(laptop.SHOT_SWEEP) == {"incontext"}
    assert [k for k, _, _ in figures["incontext_acc_by_shots"]] == swept
    assert all(0 <= a <= 1 and c >= 0 for _, a, c in figures["incontext_acc_by_shots"])
    assert all(0 <= a <= 1 for _, a in figures["protonet_5w1s_curve"] + figures["maml_5w1s_curve"]
               + figures["incontext_5w1s_curve"])


def test_unknown_learner_is_refused_before_training(monkeypatch):
    """checks that a recipe for a learner without a target is refused by name, before any data
    is loaded or anything trains."""
    monkeypatch.setattr(laptop, "load_omniglot", lambda *a: pytest.fail("loaded data"))
    with pytest.raises(ValueError, match="relationnet"):
        laptop.run({"relationnet": dict(steps=1)})


def test_missing_omniglot_gives_the_data_message(monkeypatch, tmp_path, capsys):
    """checks that without Omniglot the command prints the data set's message (what to do) and
    exits with 1, before anything trains or is written to results.json."""
    from course_lib.data import DataUnavailable
    missing = DataUnavailable("omniglot", tmp_path, "not found")
    monkeypatch.setattr(laptop, "checked", lambda name: missing if name == "omniglot" else None)
    monkeypatch.setattr(laptop, "run", lambda *a, **k: pytest.fail("trained without data"))
    monkeypatch.setattr(laptop.record, "update", lambda **k: pytest.fail("wrote results"))
    assert laptop.main() == 1
    err = capsys.readouterr().err
    assert "The omniglot data set is not available" in err and "COURSE_DATA" in err


def test_by_shots_reads_the_first_k_of_each_class_and_the_same_queries(omniglot_background):
    """checks the in-context sweep on a learner that records what it is given and is right only
    with three or more examples per class: for every K it gets K drawings of each of the 5
    classes (the first K of the episode's, labels 0–4 K times each), always the same queries of
    an episode, and the rows are [K, accuracy, interval] with accuracy 0 below K = 3, 1 from it."""
    seen = []

    def learner(support_x, support_y, query_x):
        seen.append((support_x.clone(), support_y.clone(), query_x.clone()))
        k = len(support_y) // 5
        truth = torch.arange(5).repeat_interleave(len(query_x) // 5)   # the sampler's query order
        return truth if k >= 3 else (truth + 1) % 5

    rows = laptop.by_shots(learner, omniglot_background, (1, 3, 5), episodes=2, progress=False)
    assert [r[:2] for r in rows] == [[1, 0.0], [3, 1.0], [5, 1.0]] and all(r[2] == 0.0 for r in rows)
    for episode in range(2):
        calls = seen[3 * episode: 3 * episode + 3]
        widest_x = calls[-1][0].view(5, 5, *calls[-1][0].shape[1:])   # K = 5: (class, drawing, …)
        for (x, y, q), k in zip(calls, (1, 3, 5)):
            assert torch.equal(y, torch.arange(5).repeat_interleave(k))
            assert torch.equal(x, widest_x[:, :k].flatten(0, 1))        # nested: the first k
            assert torch.equal(q, calls[0][2]) and len(q) == 50          # the same 10 queries per class
