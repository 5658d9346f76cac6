"""PSI drift: hand-computed cases on decile bins of a known reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from potability.quality.drift import (
    DRIFT,
    EPSILON,
    INSUFFICIENT,
    OK,
    WATCH,
    bin_shares,
    decide,
    drift_report,
    feature_drift,
    psi,
    quantile_edges,
)

REFERENCE = [float(v) for v in range(100)]  # deciles: ten bins of exactly ten values


def test_decile_edges_split_the_reference_into_equal_bins() -> None:
    edges = quantile_edges(REFERENCE)
    assert edges == pytest.approx([9.9, 19.8, 29.7, 39.6, 49.5, 59.4, 69.3, 79.2, 89.1])
    shares = bin_shares(REFERENCE, edges)
    assert shares == pytest.approx([0.1] * 10 + [0.0])  # ten value bins, then the null bin


def test_values_beyond_the_edges_fall_in_the_outer_bins_and_nulls_in_their_own() -> None:
    edges = quantile_edges(REFERENCE)
    shares = bin_shares([-50.0, 1e6, None, float("nan")], edges)
    assert shares[0] == 0.25 and shares[9] == 0.25 and shares[10] == 0.5


def test_identical_distributions_have_zero_psi() -> None:
    result = feature_drift("x", REFERENCE, list(REFERENCE))
    assert result.psi == pytest.approx(0.0) and result.status == OK


def test_everything_in_one_bin_by_hand() -> None:
    result = feature_drift("x", REFERENCE, [5.0] * 60)
    # bin 0 holds all: (1 - 0.1) ln(1 / 0.1); nine empty bins: (eps - 0.1) ln(eps / 0.1)
    expected = 0.9 * math.log(10) + 9 * (EPSILON - 0.1) * math.log(EPSILON / 0.1)
    assert result.psi == pytest.approx(expected)
    assert result.status == DRIFT and result.recent_rows == 60


def test_a_sensor_that_stops_measuring_is_drift() -> None:
    recent: list[float | None] = [*REFERENCE, *([None] * 100)]  # same values, half missing
    result = feature_drift("x", REFERENCE, recent, min_rows=1)
    assert result.psi == pytest.approx(0.0)  # the measured values did not move
    assert result.recent_null_share == 0.5 and result.reference_null_share == 0.0
    assert result.status == DRIFT and result.p_value < 1e-6
    assert feature_drift("x", REFERENCE, [None] * 60).status == DRIFT  # stopped altogether


def test_a_sensor_that_always_measures_is_not_drifting() -> None:
    # the training data misses 24% of the values; the sensor measures every time
    reference = [*([float(v) for v in range(100)] * 3), *([None] * 95)]
    result = feature_drift("x", reference, [float(v) for v in range(100)])
    assert result.recent_null_share == 0.0 and result.reference_null_share == pytest.approx(
        95 / 395
    )
    assert result.psi == pytest.approx(0.0) and result.status == OK


def test_a_small_shift_is_watch_by_hand() -> None:
    # move half of the first bin's values into the second bin
    recent = [*([5.0] * 5), *([15.0] * 15), *[v for v in REFERENCE if v >= 20]]
    result = feature_drift("x", REFERENCE, recent, min_rows=1)
    expected = (0.05 - 0.1) * math.log(0.5) + (0.15 - 0.1) * math.log(1.5)
    assert result.psi == pytest.approx(expected)
    assert result.status == OK  # 0.0405, and 10 moved rows of 100 is noise


REF_COUNTS = [300] * 10 + [0]  # 3,000 training rows on deciles, none missing


@pytest.mark.parametrize(
    ("recent", "status"),
    [
        ([5] * 10 + [0], OK),  # exactly the reference shares
        ([7, 3] * 5 + [0], OK),  # PSI ~0.17 on 50 rows: noise (p ~0.45)
        ([70, 30] * 5 + [0], WATCH),  # same PSI on 500 rows: significant, < 0.25
        ([14, 2, 14, 2, 14, 2, 14, 2, 14, 2] + [0], DRIFT),  # PSI ~0.9 on 80 rows
        ([5] * 9 + [4] + [0], INSUFFICIENT),  # 49 measured values < 5 per bin
        ([5] * 10 + [12], WATCH),  # missing share up from 0 to 19%
        ([], None),
    ],
)
def test_the_decision_on_counts(recent: list[int], status: str | None) -> None:
    if status is None:
        with pytest.raises(ValueError, match="same value bins and a missing bin"):
            decide(REF_COUNTS, recent)
        return
    value, decided, p_value = decide(REF_COUNTS, recent)
    assert decided == status, (value, p_value)
    if status in (OK, INSUFFICIENT) and value is not None:
        assert p_value is None or p_value >= 0.05 or status == INSUFFICIENT


def test_no_recent_counts_is_insufficient_and_alpha_is_checked() -> None:
    assert decide(REF_COUNTS, [0] * 11) == (None, INSUFFICIENT, None)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
        decide(REF_COUNTS, [5] * 11, alpha=0.0)
    with pytest.raises(ValueError, match="no reference"):
        decide([0] * 11, [5] * 11)


def test_noise_from_the_reference_itself_rarely_alarms() -> None:
    """50 rows drawn from the training distribution, 400 checks: the per-feature alarm rate
    stays under its Bonferroni share (0.05 / 9 ~ 0.6%) up to sampling noise; PSI alone at
    0.1 'watches' most of them (issue 23)."""
    rng = np.random.default_rng(7)
    shares = np.array([0.1] * 10)
    decisions = [decide(REF_COUNTS, [*rng.multinomial(50, shares), 0]) for _ in range(400)]
    alarms = sum(d[1] in (WATCH, DRIFT) for d in decisions)
    assert alarms <= 6  # expected <= ~2.2; 6 is far in the tail for a correct test
    assert sum(d[0] >= 0.1 for d in decisions) > 200  # what the old PSI rule reacted to


def test_no_recent_rows_means_no_psi() -> None:
    result = feature_drift("x", REFERENCE, [])
    assert result.psi is None and result.status == INSUFFICIENT and result.recent_null_share is None


def test_ties_collapse_bins_instead_of_creating_empty_ones() -> None:
    reference = [1.0] * 80 + [2.0] * 20
    edges = quantile_edges(reference)
    assert list(edges) == pytest.approx([1.0, 1.2, 2.0])  # eight deciles at 1.0 became one edge
    assert bin_shares(reference, edges) == pytest.approx([0.0, 0.8, 0.0, 0.2, 0.0])
    assert feature_drift("x", reference, list(reference)).psi == pytest.approx(0.0)


def test_report_covers_every_reference_feature_in_order() -> None:
    report = drift_report({"b": REFERENCE, "a": REFERENCE}, {"a": [500.0] * 60})
    assert [r.feature for r in report] == ["b", "a"]
    assert report[0].status == INSUFFICIENT and report[1].status == DRIFT


def test_psi_needs_the_same_bins_and_a_reference() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi(np.array([0.5, 0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="x: no reference"):
        feature_drift("x", [], [1.0])
