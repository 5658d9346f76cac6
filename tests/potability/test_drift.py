"""PSI drift: hand-computed cases on decile bins of a known reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from potability.drift import (
    DRIFT,
    EPSILON,
    INSUFFICIENT,
    OK,
    WATCH,
    bin_shares,
    drift_report,
    feature_drift,
    psi,
    quantile_edges,
    status_for,
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


def test_missing_values_are_drift_by_hand() -> None:
    recent: list[float | None] = [*REFERENCE, *([None] * 100)]  # same values, half missing
    result = feature_drift("x", REFERENCE, recent, min_rows=1)
    expected = 10 * (0.05 - 0.1) * math.log(0.05 / 0.1) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert result.psi == pytest.approx(expected)
    assert result.recent_null_share == 0.5 and result.reference_null_share == 0.0
    assert result.status == DRIFT


def test_a_small_shift_is_watch_by_hand() -> None:
    # move half of the first bin's values into the second bin
    recent = [*([5.0] * 5), *([15.0] * 15), *[v for v in REFERENCE if v >= 20]]
    result = feature_drift("x", REFERENCE, recent, min_rows=1)
    expected = (0.05 - 0.1) * math.log(0.5) + (0.15 - 0.1) * math.log(1.5)
    assert result.psi == pytest.approx(expected)
    assert status_for(0.2, 1000) == WATCH and result.status == OK  # 0.0405 < 0.1


@pytest.mark.parametrize("value, rows, status", [
    (0.0999, 50, OK), (0.1, 50, WATCH), (0.2499, 50, WATCH), (0.25, 50, DRIFT),
    (3.0, 49, INSUFFICIENT),
])
def test_thresholds(value: float, rows: int, status: str) -> None:
    assert status_for(value, rows, min_rows=50) == status


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
    with pytest.raises(ValueError):
        psi(np.array([0.5, 0.5]), np.array([1.0]))
    with pytest.raises(ValueError):
        feature_drift("x", [], [1.0])
