"""The promotion looks (issue 31): a champion is tested only on a look - a run at least
``look_days`` dates after the last - at ``1 - false_rate / looks_per_quarter``, so a quarter's
looks promote a no-better challenger in at most ``false_rate`` of quarters; the challenger's
recall floor is judged in the same resamples at ``FLOOR_CONFIDENCE``. One test per branch
of the rule, each asserting the exact decision; under the rule before (every daily run at
0.9) the evidence below would have promoted in the branches marked so. The same rule through
promote, MLflow and PostgreSQL: tests/training/test_promotion.py."""

from datetime import date, timedelta

import pytest

from training import decision
from training.evaluation import Evidence, Scores

FLOOR = 0.2
LOOK = decision.look_confidence(0.05, 7)  # the default: 5% a quarter, a look a week
DAY = date(2026, 3, 2)


def scores(precision: float, recall: float) -> Scores:
    return Scores(precision, recall, 0.4, 0.6, 0.5, 0.6, 0.5, 80, 650)


def evidence(joint: float, challenger_meets: float = 1.0, champion_meets: float = 1.0) -> Evidence:
    return Evidence(0.08, -0.02, 0.18, joint, 2000, joint, challenger_meets, champion_meets)


def test_a_quarter_holds_thirteen_weekly_looks_at_a_level_summing_to_the_rate() -> None:
    assert decision.looks_per_quarter(7) == 13  # dates 0, 7, ..., 84 of any 90
    assert [decision.looks_per_quarter(d) for d in (1, 14, 30, 90)] == [90, 7, 3, 1]
    assert round(LOOK, 6) == 0.996154  # 1 - 0.05 / 13
    assert (1 - LOOK) * decision.looks_per_quarter(7) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="look_days must be >= 1"):
        decision.looks_per_quarter(0)
    with pytest.raises(ValueError, match="false_rate must be in"):
        decision.look_confidence(0.0, 7)


def test_a_look_needs_look_days_since_the_last_one() -> None:
    assert decision.is_look(DAY, None, 7)  # never tested: today is a look
    assert decision.is_look(DAY, DAY - timedelta(days=7), 7)
    assert decision.is_look(DAY, DAY - timedelta(days=30), 7)
    assert not decision.is_look(DAY, DAY - timedelta(days=6), 7)
    assert not decision.is_look(DAY, DAY, 7)  # a second run on a look's date


def test_between_looks_the_champion_is_kept_whatever_the_evidence() -> None:
    # the rule before promoted on this (joint 1.0 >= 0.9) on any daily run
    assert (
        decision.decide(scores(0.9, 0.3), scores(0.6, 0.3), evidence(1.0), FLOOR, LOOK, look=False)
        == decision.CHAMPION_KEPT
    )
    # and needs no evidence at all: the run between looks does not test
    assert (
        decision.decide(scores(0.9, 0.3), scores(0.6, 0.3), None, FLOOR, LOOK, look=False)
        == decision.CHAMPION_KEPT
    )


def test_on_a_look_evidence_the_old_rule_took_keeps_the_champion() -> None:
    # 0.95 of resamples more precise and at the floor: enough at 0.9, not at a look's 0.99615
    assert (
        decision.decide(scores(0.8, 0.3), scores(0.7, 0.3), evidence(0.95), FLOOR, LOOK)
        == decision.CHAMPION_KEPT
    )
    assert (
        decision.decide(scores(0.8, 0.3), scores(0.7, 0.3), evidence(0.996), FLOOR, LOOK)
        == decision.CHAMPION_KEPT
    )


def test_on_a_look_strong_evidence_promotes() -> None:
    assert (
        decision.decide(scores(0.85, 0.3), scores(0.7, 0.3), evidence(0.997), FLOOR, LOOK)
        == decision.CHALLENGER_WINS
    )


def test_on_a_look_the_floor_is_judged_at_its_own_level_in_the_same_resamples() -> None:
    # more precise in 99.9% of resamples, at the floor in 92%: promoted (the floor's 0.9 is
    # the recall margin's z = 1.28); judged jointly at the look's level it would not be
    assert (
        decision.decide(
            scores(0.85, 0.24),
            scores(0.7, 0.3),
            evidence(0.92, challenger_meets=0.92),
            FLOOR,
            LOOK,
        )
        == decision.CHAMPION_KEPT  # evidence() puts P(more precise) at the joint's 0.92
    )
    surely_better = Evidence(0.12, 0.03, 0.2, 0.999, 2000, 0.92, 0.92, 1.0)
    assert (
        decision.decide(scores(0.85, 0.24), scores(0.7, 0.3), surely_better, FLOOR, LOOK)
        == decision.CHALLENGER_WINS
    )
    # ... and a challenger at the floor in only 85% of them stays out, however precise
    at_floor = Evidence(0.12, 0.03, 0.2, 0.999, 2000, 0.85, 0.85, 1.0)
    assert (
        decision.decide(scores(0.85, 0.21), scores(0.7, 0.3), at_floor, FLOOR, LOOK)
        == decision.CHAMPION_KEPT
    )


def test_on_a_look_a_champion_under_the_floor_is_replaced_only_at_the_looks_level() -> None:
    # misses the floor in 95% of resamples: replaced under the rule before, kept now
    assert (
        decision.decide(
            scores(0.6, 0.22),
            scores(0.9, 0.15),
            evidence(0.0, challenger_meets=0.8, champion_meets=0.05),
            FLOOR,
            LOOK,
        )
        == decision.CHAMPION_KEPT
    )
    # misses it in 99.8%: replaced by a challenger meeting it in at least half
    assert (
        decision.decide(
            scores(0.6, 0.22),
            scores(0.9, 0.12),
            evidence(0.0, challenger_meets=0.8, champion_meets=0.002),
            FLOOR,
            LOOK,
        )
        == decision.CHALLENGER_WINS
    )
    # ... and not by one that probably misses it too
    assert (
        decision.decide(
            scores(0.6, 0.18),
            scores(0.9, 0.12),
            evidence(0.0, challenger_meets=0.4, champion_meets=0.002),
            FLOOR,
            LOOK,
        )
        == decision.CHAMPION_KEPT
    )
