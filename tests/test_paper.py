"""The paper-scale command, run tiny on the CPU: its settings, its table and its arguments."""
from dataclasses import replace

import pytest

from course_site import paper
from course_lib.budget import get_budget


def test_tiny_run_fills_the_table(omniglot_background, monkeypatch):
    """checks that both learners train and are scored, next to the papers' figures: each
    accuracy is the percentage its evaluation returned (on 3 test episodes of the setting),
    each time the one its training history recorded (spied on and set to known values)."""
    scored = {}

    def spy_evaluate(name, real):
        def evaluate(model, sampler, episodes, *args, **kwargs):
            assert (sampler.ways, sampler.shots, episodes) == (5, 1, 3)
            scored[name] = real(model, sampler, episodes, *args, **kwargs)[0]
            return scored[name], 0.0
        monkeypatch.setattr(getattr(paper, name), "evaluate", evaluate)

    spy_evaluate("maml", paper.maml.evaluate)
    spy_evaluate("protonets", paper.protonets.evaluate)
    real_omniglot, real_meta_train = paper.maml.omniglot, paper.protonets.meta_train

    def omniglot(*args, **kwargs):
        model, history, setting = real_omniglot(*args, **kwargs)
        history.seconds = 12.34
        return model, history, setting

    def meta_train(*args, **kwargs):
        history = real_meta_train(*args, **kwargs)
        history.seconds = 56.78
        return history

    monkeypatch.setattr(paper.maml, "omniglot", omniglot)
    monkeypatch.setattr(paper.protonets, "meta_train", meta_train)
    budget = replace(get_budget("full"), width=8)
    results = paper.run([(5, 1)], maml_steps=2, proto_steps=2, episodes=3, budget=budget,
                        device="cpu")
    row = results["settings"]["5w1s"]
    assert row["maml"] == round(100 * scored["maml"], 2)
    assert row["protonet"] == round(100 * scored["protonets"], 2)
    assert row["maml_paper"] == 98.7 and row["protonet_paper"] == 98.8
    assert row["maml_train_seconds"] == 12.3 and row["protonet_train_seconds"] == 56.8
    assert results["device"] == "cpu"


def test_unknown_setting_is_named():
    """checks that a setting outside the papers' four is refused with the list of choices."""
    with pytest.raises(SystemExit):
        paper.main(["--settings", "7w3s"])
