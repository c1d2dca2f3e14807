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
    assert claims.check("fine-tuning beats scratch", 0.8 > 0.5, "0.80 vs 0.50",
                        value=0.8, threshold=0.5, margin=0.3) is None
    claims.at_least("solved with enough training", 400, 475, at=("default", "full"))
    assert claims.verify() == {"fine-tuning beats scratch": True}
    table = capsys.readouterr().out
    assert "✓ fine-tuning beats scratch  (0.80 vs 0.50)  [margin +0.3]" in table
    assert "· solved with enough training  (400 ≥ 475)  [checked at default, full]" in table
    record = json.loads((build / "figures" / "09_demo.claims.json").read_text())
    assert record == {"budget": "quick", "claims": {"fine-tuning beats scratch": {
        "holds": True, "value": 0.8, "threshold": 0.5, "margin": 0.3}},
        "not_checked": ["solved with enough training"]}


def test_a_claim_the_numbers_contradict_fails_the_notebook(build, capsys):
    """checks that verify raises ClaimFailed naming the false claim, after recording it."""
    claims = Claims("09_demo", get_budget("default"))
    claims.at_least("the gap narrows as K grows", min(a - b for a, b in zip([3, 5], [5, 2])), 0)
    claims.at_least("solved with enough training", 480, 475, at=("default", "full"))
    with pytest.raises(ClaimFailed, match="1 claim.*the gap narrows as K grows"):
        claims.verify()
    assert "✗ the gap narrows as K grows" in capsys.readouterr().out
    record = json.loads((build / "figures" / "09_demo.claims.json").read_text())
    assert {c: row["holds"] for c, row in record["claims"].items()} == {
        "the gap narrows as K grows": False, "solved with enough training": True}


def test_bad_claims_are_refused():
    """checks that a claim checked twice, or at an unknown budget, is an error."""
    claims = Claims("09_demo", get_budget("quick"))
    claims.at_least("once", 1, 0)
    with pytest.raises(ValueError, match="twice"):
        claims.at_least("once", 1, 0)
    with pytest.raises(ValueError, match="unknown budget"):
        claims.at_least("at a typo", 1, 0, at=("defualt",))
    with pytest.raises(TypeError, match="value"):
        claims.check("a yes/no with no numbers", True)
    with pytest.raises(ValueError, match="margin"):
        claims.check("holds on a negative margin", True, value=0.4, threshold=0.5, margin=-0.1)


def test_beats_decides_by_the_paired_interval_not_by_the_means(build):
    """checks that "a beats b" needs the 95% interval of the paired differences above the
    stated gap: a constant lead of 1 point over 5 tasks holds (margin = 0.01 − 0 − 0), the same
    means with differences that swing ±5 points do not, and the record carries value, threshold
    and margin."""
    claims = Claims("09_demo", get_budget("quick"))
    b = [0.60, 0.70, 0.80, 0.65, 0.75]
    steady = [x + 0.01 for x in b]
    swinging = [x + d for x, d in zip(b, [0.06, -0.04, 0.06, -0.04, 0.01])]
    claims.beats("steady beats b", steady, b)
    claims.beats("swinging beats b", swinging, b)
    claims.beats("steady beats b by 2 points", steady, b, by=0.02)
    rows = claims.rows
    assert rows["steady beats b"]["holds"] is True
    assert rows["steady beats b"]["value"] == pytest.approx(0.01)
    assert rows["steady beats b"]["margin"] == pytest.approx(0.01)
    assert rows["swinging beats b"]["value"] == pytest.approx(0.01)   # the same mean lead …
    assert rows["swinging beats b"]["holds"] is False                 # … inside the noise
    assert rows["steady beats b by 2 points"]["holds"] is False
    assert rows["steady beats b by 2 points"]["threshold"] == 0.02
    with pytest.raises(ClaimFailed):
        claims.verify()
    recorded = json.loads((build / "figures" / "09_demo.claims.json").read_text())["claims"]
    assert set(recorded["steady beats b"]) == {"holds", "value", "threshold", "margin"}


def test_ties_needs_an_interval_around_zero_narrower_than_the_stated_width():
    """checks the three ways a tie is decided: differences around 0 within a narrow interval
    hold; the same interval shifted off 0 does not; differences around 0 too noisy for the
    stated width do not (the experiment could not have seen a gap of that size)."""
    claims = Claims("09_demo", get_budget("quick"))
    b = [0.5, 0.6, 0.7, 0.8]
    claims.ties("close", [x + d for x, d in zip(b, [0.002, -0.002, 0.001, -0.001])], b, width=0.02)
    claims.ties("shifted", [x + d for x, d in zip(b, [0.012, 0.008, 0.011, 0.009])], b, width=0.02)
    claims.ties("noisy", [x + d for x, d in zip(b, [0.05, -0.05, 0.04, -0.04])], b, width=0.02)
    assert [claims.rows[c]["holds"] for c in ("close", "shifted", "noisy")] == [True, False, False]
    assert all(claims.rows[c]["threshold"] == 0.02 for c in ("close", "shifted", "noisy"))


def test_bounds_subtract_the_interval_and_small_samples_use_students_t():
    """checks at_least / at_most against the value less / plus its interval, the margins they
    record, and that two seeds' difference gets t(1) = 12.7 (not 1.96) standard errors."""
    claims = Claims("09_demo", get_budget("quick"))
    claims.at_least("above 0.97", 0.98, 0.97, ci=0.005)
    claims.at_least("above 0.97 within noise", 0.975, 0.97, ci=0.01)
    claims.at_most("below a third", 0.30, 1 / 3)
    assert claims.rows["above 0.97"]["margin"] == pytest.approx(0.005)
    assert claims.rows["above 0.97 within noise"]["holds"] is False
    assert claims.rows["below a third"]["margin"] == pytest.approx(1 / 3 - 0.30, abs=1e-6)
    claims.beats("two seeds", [0.9, 0.8], [0.7, 0.7])   # differences 0.2, 0.1: sd 0.0707
    assert claims.rows["two seeds"]["margin"] == pytest.approx(0.15 - 12.706 * 0.0707107 / 2 ** 0.5,
                                                            abs=1e-4)
    with pytest.raises(ValueError, match="equal length"):
        claims.beats("unpaired", [0.9, 0.8, 0.7], [0.7, 0.7])


def test_estimates_carry_their_samples_into_a_paired_comparison():
    """checks that mean_ci's (mean, ci) still unpacks, keeps its samples (also through pickle),
    and that beats compares two estimates sample by sample."""
    import pickle

    from course_lib.training import mean_ci

    a, b = mean_ci([0.81, 0.72, 0.93, 0.64]), mean_ci([0.80, 0.70, 0.90, 0.60])
    mean, ci = a
    assert mean == pytest.approx(0.775) and ci > 0 and a.samples == [0.81, 0.72, 0.93, 0.64]
    assert pickle.loads(pickle.dumps(a)).samples == a.samples
    claims = Claims("09_demo", get_budget("quick"))
    claims.beats("a beats b on the same tasks", a, b)
    assert claims.rows["a beats b on the same tasks"]["value"] == pytest.approx(0.025)
    assert claims.rows["a beats b on the same tasks"]["holds"] is True


def test_beats_each_is_decided_by_its_closest_pair(build):
    """checks that "a beats b in every column" holds only when every pair's interval clears
    the gap, and records the closest pair's value and margin."""
    claims = Claims("09_demo", get_budget("quick"))
    b = [0.50, 0.60, 0.70, 0.80, 0.90]
    far, near = [x + 0.10 for x in b], [x + 0.01 for x in b]
    swinging = [x + d for x, d in zip(b, [0.06, -0.04, 0.06, -0.04, 0.01])]
    claims.beats_each("ahead in both columns", {"1-shot": (far, b), "5-shot": (near, b)})
    claims.beats_each("ahead by 5 points in both", {"1-shot": (far, b), "5-shot": (near, b)},
                      by=0.05)
    claims.beats_each("ahead everywhere", {"1-shot": (far, b), "5-shot": (swinging, b)})
    rows = claims.rows
    assert rows["ahead in both columns"]["holds"] is True
    assert rows["ahead in both columns"]["value"] == pytest.approx(0.01)
    assert rows["ahead by 5 points in both"]["holds"] is False
    assert rows["ahead by 5 points in both"]["margin"] == pytest.approx(-0.04)
    assert rows["ahead everywhere"]["holds"] is False
