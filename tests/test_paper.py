"""The paper-scale command, run tiny on the CPU: its settings, its table and its arguments."""
from dataclasses import replace

import pytest

from course_lib import paper
from course_lib.budget import get_budget


def test_tiny_run_fills_the_table(omniglot_background):
    """checks that both learners train and are scored, next to the papers' figures."""
    budget = replace(get_budget("full"), width=8)
    results = paper.run([(5, 1)], maml_steps=2, proto_steps=2, episodes=3, budget=budget,
                        device="cpu")
    row = results["settings"]["5w1s"]
    assert 0 <= row["maml"] <= 100 and 0 <= row["protonet"] <= 100
    assert row["maml_paper"] == 98.7 and row["protonet_paper"] == 98.8
    assert row["maml_train_seconds"] > 0 and results["device"] == "cpu"


def test_unknown_setting_is_named():
    """checks that a setting outside the papers' four is refused with the list of choices."""
    with pytest.raises(SystemExit):
        paper.main(["--settings", "7w3s"])
