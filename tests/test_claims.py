"""A notebook's claims (course_lib.results.Claims): each sentence a named check on its figures."""
import json

import pytest

from course_lib.budget import get_budget
from course_lib.results import ClaimFailed, Claims


@pytest.fixture
def build(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_BUILD", str(tmp_path))
    return tmp_path


def test_verify_records_the_table_and_passes_when_every_claim_holds(build, capsys):
    """checks the ✓ rows, the evidence, a claim not checked at this budget (·, with where it
    is), and the claims file the course build reads."""
    claims = Claims("09_demo", get_budget("quick"))
    assert claims.check("fine-tuning beats scratch", 0.8 > 0.5, "0.80 vs 0.50") is None
    claims.check("solved with enough training", False, at=("default", "full"))
    assert claims.verify() == {"fine-tuning beats scratch": True}
    table = capsys.readouterr().out
    assert "✓ fine-tuning beats scratch  (0.80 vs 0.50)" in table
    assert "· solved with enough training  [checked at default, full]" in table
    record = json.loads((build / "figures" / "09_demo.claims.json").read_text())
    assert record == {"budget": "quick", "claims": {"fine-tuning beats scratch": True},
                      "not_checked": ["solved with enough training"]}


def test_a_claim_the_numbers_contradict_fails_the_notebook(build, capsys):
    """checks that verify raises ClaimFailed naming the false claim, after recording it."""
    claims = Claims("09_demo", get_budget("default"))
    claims.check("the gap narrows as K grows", [3, 5, 2] == sorted([3, 5, 2], reverse=True))
    claims.check("solved with enough training", True, at=("default", "full"))
    with pytest.raises(ClaimFailed, match="1 claim.*the gap narrows as K grows"):
        claims.verify()
    assert "✗ the gap narrows as K grows" in capsys.readouterr().out
    record = json.loads((build / "figures" / "09_demo.claims.json").read_text())
    assert record["claims"] == {"the gap narrows as K grows": False,
                                "solved with enough training": True}


def test_bad_claims_are_refused():
    """checks that a claim checked twice, or at an unknown budget, is an error."""
    claims = Claims("09_demo", get_budget("quick"))
    claims.check("once", True)
    with pytest.raises(ValueError, match="twice"):
        claims.check("once", True)
    with pytest.raises(ValueError, match="unknown budget"):
        claims.check("at a typo", True, at=("defualt",))
