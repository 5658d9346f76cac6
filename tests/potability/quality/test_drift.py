"""PSI drift: hand-computed cases on decile bins of a known reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from potability.quality.drift import (
    DRIFT,
    EPSILON,
    INSUFFICIENT,
    MIN_BASELINE_DAYS,
    OK,
    WATCH,
    Change,
    DayValues,
    bin_shares,
    change_test,
    day_values,
    decide,
    drift_report,
    feature_drift,
    psi,
    quantile_edges,
    with_change,
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
    # unlike the training data - shown as watch; an alert needs a change (issue 31)
    assert result.status == WATCH and result.recent_rows == 60


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
        ([70, 30] * 5 + [0], OK),  # same PSI on 500 rows: significant, but < 0.25
        ([14, 2, 14, 2, 14, 2, 14, 2, 14, 2] + [0], WATCH),  # PSI ~0.9 on 80 rows: unlike
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
    if status == OK and value is not None:  # noise, or a difference too small to show
        assert p_value is None or p_value >= 0.05 or value < 0.25


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
    assert report[0].status == INSUFFICIENT and report[1].status == WATCH  # unlike, no change


def test_psi_needs_the_same_bins_and_a_reference() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi(np.array([0.5, 0.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="x: no reference"):
        feature_drift("x", [], [1.0])


# --- the change test, day by day (issue 31) ---------------------------------------------------


def _days(means: list[float], measured: int = 100_000, missing: int = 0) -> list[DayValues]:
    return [DayValues(measured, missing, m) for m in means]


BASELINE = _days([0.02 * (-1) ** k for k in range(28)])  # sd 0.0204 day to day


def test_a_days_mean_comes_from_its_cells_midpoints_in_training_sd() -> None:
    # ph's grid: 14 / 2000 = 0.007 per cell; cells 1000 (7.0035) x 3 and 1100 (7.7035) x 1
    day = day_values("ph", {1000: 3, 1100: 1, -1: 2}, centre=7.0, scale=0.5)
    assert (day.measured, day.missing) == (4, 2) and day.missing_share == pytest.approx(1 / 3)
    assert day.mean == pytest.approx(((3 * 7.0035 + 7.7035) / 4 - 7.0) / 0.5)
    assert day_values("ph", {-1: 5}, 7.0, 0.5) == DayValues(0, 5, None)


def test_a_shift_beyond_the_day_to_day_spread_fires_and_noise_does_not() -> None:
    limit = float(student_t.ppf(1 - 0.05 / (2 * 9 * 182) / 2, 27))
    quiet = change_test(BASELINE, _days([0.02, -0.02]))
    assert quiet.mean_limit == pytest.approx(limit) and 5.2 < limit < 5.3
    assert quiet.baseline_days == 28 and not quiet.fired
    assert quiet.mean_t == pytest.approx(0.0, abs=1e-9)
    # 0.5 sd on the last two days: t = 0.5 / (0.0204 x sqrt(1/2 + 1/28)) ~ 33
    shifted = change_test(BASELINE, _days([0.5, 0.5]))
    assert shifted.fired and shifted.mean_t == pytest.approx(
        0.5 / (float(np.std([d.mean for d in BASELINE], ddof=1)) * math.sqrt(1 / 2 + 1 / 28))
    )
    assert change_test(BASELINE, _days([-0.5, -0.5])).fired  # either way


def test_the_spread_is_never_under_what_reading_noise_gives() -> None:
    # identical baseline days on 100 values: the spread is floored at 1 / sqrt(100) = 0.1 sd
    flat = _days([0.0] * 28, measured=100)
    change = change_test(flat, _days([0.3, 0.3], measured=100))
    assert change.mean_t == pytest.approx(0.3 / (0.1 * math.sqrt(1 / 2 + 1 / 28)))
    assert not change.fired  # 4.1 < the limit: 0.3 sd on 100 values a day is within noise


def test_a_rise_of_the_missing_share_fires_and_a_fall_does_not() -> None:
    base = _days([0.0] * 28, measured=900, missing=100)
    assert change_test(base, _days([0.0, 0.0], measured=500, missing=500)).fired
    fall = change_test(base, _days([0.0, 0.0], measured=1000, missing=0))
    assert fall.missing_t is not None and fall.missing_t < 0 and not fall.fired


def test_too_few_days_or_values_leave_the_test_unrun() -> None:
    few = change_test(BASELINE[: MIN_BASELINE_DAYS - 1], _days([0.9, 0.9]))
    assert few.ratio is None and not few.fired and few.baseline_days == MIN_BASELINE_DAYS - 1
    thin = change_test(_days([0.0] * 28, measured=99), _days([0.9, 0.9]))
    assert thin.baseline_days == 0 and not thin.fired  # days under 100 values do not count
    assert change_test(BASELINE, _days([0.9, 0.9], measured=50)).mean_t is None
    with pytest.raises(ValueError, match="alpha must lie"):
        change_test(BASELINE, BASELINE, alpha=1.0)


def test_a_fired_change_makes_drift_and_otherwise_the_window_decides() -> None:
    window = feature_drift("x", REFERENCE, list(REFERENCE))
    fired = with_change(window, Change(9.0, None, 6.0, 5.9, 28))
    assert (
        fired.status == DRIFT and fired.change == pytest.approx(1.5) and fired.baseline_days == 28
    )
    kept = with_change(window, Change(1.0, -2.0, 6.0, 5.9, 28))
    assert kept.status == OK and kept.change == pytest.approx(1 / 6)
    unrun = with_change(window, Change(None, None, 6.0, 5.9, 3))
    assert unrun == window  # too few days: the window's verdict, nothing added
