"""Feature drift of recent inferences against the champion's training data (PSI per feature).

A model is only as good as the resemblance between the water it is asked about and the water
it learned from. The Population Stability Index measures that resemblance per feature:

    PSI = sum over bins of (recent_share - reference_share) * ln(recent_share / reference_share)

Bins are the reference's (training data's) deciles, so each holds ~10% of the training rows
and a shift anywhere in the range shows; values beyond the extreme edges fall into the first
or last bin. Missing values (NULL: sensor did not measure) form a bin of their own, because a
sensor that stops reporting sulfate is drift too, and the model's imputation hides it.
Shares are clipped at :data:`EPSILON` so an empty bin costs a large but finite amount.

Two questions, two rules (issues 23 and 31):

**Does the water look like the training data?** (:func:`decide`, a pure function of bin
COUNTS of the recent window, so the counts may come from SQL). Measured and missing values are
judged apart: the value bins as shares of the MEASURED values, with a chi-square test of
homogeneity against the reference's counts, PSI the size; the missing share only when it is
significantly HIGHER (a sensor that stopped measuring). Significant with PSI >= 0.25, or a
significant rise in missing values, is ``watch`` - shown, not alerted: readings of a fixed fleet
of sensors differ from lab samples for good (each sensor's offset), at deployed volume every
test against the training rows is significant, and a week-long alert on that says nothing new
(at 200 sensors without any drift, the former rule sat at ``watch`` 20 weeks of 20). Most values
now missing (a significant rise to >= 50%) is ``drift``, the alert. Fewer than 5 expected
measured values per bin (50 for deciles): ``insufficient_data``.

**Did the water change?** (:func:`change_test`, the alert). The unit is the day: readings of
one sensor are not independent (its offset, its day), so their noise is measured where it is,
from day to day, not assumed binomial over readings. For each feature and each of the last
:data:`BASELINE_DAYS` + :data:`RECENT_DAYS` 24-hour periods (:class:`DayValues`, counted from
the hourly drift cells in SQL - bounded cost): the mean of the measured values in training
standard deviations, and the missing share. The mean of the last two days is compared with
the baseline days' by a two-sample t statistic whose spread is the baseline's day-to-day
standard deviation (never under the spread reading noise alone gives); the missing share the
same way, one-sided (a rise). A day counts when it has at least :data:`MIN_DAY_VALUES` (100)
measured values - its mean then moves less than 0.1 sd from reading noise alone - and the test
runs once :data:`MIN_BASELINE_DAYS` (14) baseline days count, so the day-to-day spread rests on
at least 13 degrees of freedom. Error rate: ``alpha`` (5%) per half-year for ALL features and
all daily looks - Bonferroni over 2 tests x 9 features x 182 looks (two-sided for the mean:
|t(27)| >= 5.26 with a full baseline). A fired test is ``drift``, the alert. Fixed sensor
offsets are in the baseline days too and cancel; a 0.5 sd shift of a feature is many
day-to-day standard deviations at 200 sensors (bench/statistics_bench.py, docs/statistics.md).

Pure: :mod:`potability.quality.job` loads the rows and stores the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, norm
from scipy.stats import t as student_t

from potability.features import FEATURES_BY_NAME

DEFAULT_ALPHA = 0.05
"""False-alarm rate of one check of ALL features (Bonferroni-split between them)."""
DEFAULT_FEATURES = 9
PSI_WATCH = 0.10
PSI_DRIFT = 0.25
DEFAULT_BINS = 10
DEFAULT_MIN_ROWS = 50
EPSILON = 1e-4

RECENT_DAYS = 2
"""Days the change test looks at (the last two 24-hour periods): a shift is judged within 2 days."""
BASELINE_DAYS = 28
"""The days before them it compares with."""
MIN_BASELINE_DAYS = 14
"""Baseline days that must count before the change test runs (13 degrees of freedom)."""
MIN_DAY_VALUES = 100
"""Measured values a day needs to count (its mean within ~0.1 sd of its expectation)."""
LOOKS_PER_HALF_YEAR = 182
"""Daily looks the change test's error rate is spread over."""

OK, WATCH, DRIFT, INSUFFICIENT = "ok", "watch", "drift", "insufficient_data"
STATUSES = (OK, WATCH, DRIFT, INSUFFICIENT)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float | None
    """None when there are no recent rows at all."""
    status: str
    reference_rows: int
    recent_rows: int
    reference_null_share: float
    recent_null_share: float | None
    """None when there are no recent rows at all."""
    p_value: float | None = None
    """The smaller Bonferroni-adjusted p-value of the value and missing-share tests (None
    when not tested)."""
    change: float | None = None
    """The change test's larger statistic over its critical value (>= 1: fired; None: not
    run, too few baseline days)."""
    baseline_days: int = 0
    """Baseline days that counted for the change test."""


def _as_array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def quantile_edges(reference: Sequence[float | None], bins: int = DEFAULT_BINS) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (duplicates dropped: ties collapse bins)."""
    if bins < 2:
        raise ValueError("at least two bins are needed")
    values = _as_array(reference)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def bin_counts(values: Sequence[float | None], edges: np.ndarray) -> np.ndarray:
    """Count of ``values`` per bin: ``len(edges) + 1`` value bins, then the missing-value bin.

    A value equal to an edge belongs to the bin above it - what PostgreSQL's
    ``width_bucket(value, edges)`` computes, so :mod:`potability.quality.job` counts the recent
    readings in SQL into the very same bins.
    """
    array = _as_array(values)
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    if array.size == 0:
        return counts
    missing = np.isnan(array)
    index = np.searchsorted(edges, array[~missing], side="right")
    counts[: len(edges) + 1] = np.bincount(index, minlength=len(edges) + 1)
    counts[-1] = missing.sum()
    return counts


# --- the drift grid: what the database counts per hour (sql/015) -------------------------------

GRID_CELLS = 2000
"""Cells per feature of the drift grid: the feature's valid range (potability/features.py) cut
into equal cells. sql/015's ``water.drift_cell`` computes the same cell; the hourly rollup
counts readings per cell, so quality control sums ~170 hours of cells instead of a week of
rows. 2000 cells put the narrowest data range (turbidity, ~1.5-6.7 NTU in 0-100) at 0.05 NTU
per cell, fine enough for its deciles (~0.3 NTU apart)."""
MISSING_CELL = -1
CELL_ZERO_BAND = 1e-12
"""A value less than ``(hi - lo) * CELL_ZERO_BAND`` above the range's bottom is in cell 0
without arithmetic (its scaled value is below 2e-9): the arithmetic then never sees a
difference small enough to underflow (sql/018, issue 29)."""


def cells_of(feature: str, values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The grid cell of each value (:data:`MISSING_CELL` for a missing one):
    ``floor((x - lo) * GRID_CELLS / (hi - lo))`` clamped to the grid - the same float64
    operations in the same order as ``water.drift_cell``, so both give the same cell."""
    spec = FEATURES_BY_NAME[feature]
    array = _as_array(values) if not isinstance(values, np.ndarray) else values.astype(float)
    out = np.full(array.shape, MISSING_CELL, dtype=np.int64)
    measured = ~np.isnan(array)
    x = array[measured]
    lo, hi = spec.minimum, spec.maximum
    # The branches of water.drift_cell (sql/018): a value within (hi - lo) * 1e-12 of the
    # range's bottom is in cell 0, one at or above its top in the last cell, and only the rest
    # goes through the arithmetic - where PostgreSQL raises on underflow (a subnormal such as
    # 5e-324) and IEEE would silently give 0, both now give cell 0 without computing it.
    low = (x <= lo) | (x - lo < (hi - lo) * CELL_ZERO_BAND)
    high = ~low & (x >= hi)
    middle = ~low & ~high
    cells = np.empty(x.shape, dtype=np.int64)
    cells[low] = 0
    cells[high] = GRID_CELLS - 1
    scaled = (x[middle] - lo) * GRID_CELLS / (hi - lo)
    cells[middle] = np.clip(np.floor(scaled), 0, GRID_CELLS - 1).astype(np.int64)
    out[measured] = cells
    return out


def cell_edges(
    feature: str, reference: Sequence[float | None], bins: int = DEFAULT_BINS
) -> np.ndarray:
    """The reference's quantile edges (:func:`quantile_edges`) snapped to the grid: the cells
    where a bin starts. A bin is then a run of whole cells, so counting a histogram of cells
    into bins (:func:`counts_from_cells`) equals counting the rows (:func:`cell_bin_counts`)
    exactly. A value in an edge's cell goes to the bin above (at most one cell's width off the
    true quantile)."""
    return np.unique(cells_of(feature, quantile_edges(reference, bins)))


def cell_bin_counts(cells: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows' cells (:func:`cells_of`) counted into the bins of :func:`cell_edges`:
    ``len(edges) + 1`` value bins, then the missing-value bin (:func:`bin_counts`' layout)."""
    cells = np.asarray(cells, dtype=np.int64)
    missing = cells == MISSING_CELL
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    index = np.searchsorted(edges, cells[~missing], side="right")
    counts[: len(edges) + 1] = np.bincount(index, minlength=len(edges) + 1)
    counts[-1] = int(missing.sum())
    return counts


def counts_from_cells(histogram: Mapping[int, int], edges: np.ndarray) -> np.ndarray:
    """A histogram of cells (cell -> readings, as the hourly rollup stores it) counted into the
    bins of :func:`cell_edges`; equals :func:`cell_bin_counts` of the rows it counts."""
    counts = np.zeros(len(edges) + 2, dtype=np.int64)
    for cell, n in histogram.items():
        if cell == MISSING_CELL:
            counts[-1] += n
        else:
            counts[int(np.searchsorted(edges, cell, side="right"))] += n
    return counts


def bin_shares(values: Sequence[float | None], edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` per bin (:func:`bin_counts` over their number)."""
    return shares_of(bin_counts(values, edges))


def shares_of(counts: np.ndarray) -> np.ndarray:
    """Counts per bin as shares (all zero when there are none)."""
    total = int(counts.sum())
    return counts.astype(float) / total if total else np.zeros(len(counts), dtype=float)


def psi(reference_shares: np.ndarray, recent_shares: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population Stability Index of two share vectors over the same bins."""
    if reference_shares.shape != recent_shares.shape:
        raise ValueError("both distributions need the same bins")
    expected = np.clip(reference_shares, epsilon, None)
    actual = np.clip(recent_shares, epsilon, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _missing_rise_p(ref_missing: int, ref_total: int, new_missing: int, new_total: int) -> float:
    """One-sided p-value of "the recent missing share is higher" (pooled two-proportion z)."""
    pooled = (ref_missing + new_missing) / (ref_total + new_total)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / ref_total + 1 / new_total))
    z = (new_missing / new_total - ref_missing / ref_total) / se
    return float(norm.sf(z))


def _values_p(reference_values: np.ndarray, recent_values: np.ndarray) -> float:
    """Chi-square test of homogeneity of two count vectors over the same value bins."""
    keep = (reference_values + recent_values) > 0
    if keep.sum() < 2 or reference_values.sum() == 0 or recent_values.sum() == 0:
        return 1.0
    table = np.vstack([reference_values[keep], recent_values[keep]])
    return float(chi2_contingency(table, correction=False)[1])


def decide(
    reference_counts: Sequence[int] | np.ndarray,
    recent_counts: Sequence[int] | np.ndarray,
    *,
    min_rows: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    features: int = DEFAULT_FEATURES,
) -> tuple[float | None, str, float | None]:
    """(PSI, status, adjusted p-value) of one feature from its bin counts.

    Both count vectors are the value bins then the missing-value bin, as
    :func:`bin_shares` orders them. PSI is computed on the shares of the measured values
    (missing values judged by their own test). ``min_rows`` defaults to 5 per value bin.
    """
    reference = np.asarray(reference_counts, dtype=float)
    recent = np.asarray(recent_counts, dtype=float)
    if reference.shape != recent.shape or reference.size < 2:
        raise ValueError("both count vectors need the same value bins and a missing bin")
    if not 0 < alpha < 1 or features < 1:
        raise ValueError("alpha must lie in (0, 1) and there is at least one feature")
    if reference.sum() == 0:
        raise ValueError("no reference (training) rows to compare with")
    total = recent.sum()
    if total == 0:
        return None, INSUFFICIENT, None
    ref_values, new_values = reference[:-1], recent[:-1]
    value = None
    if ref_values.sum() and new_values.sum():
        value = psi(ref_values / ref_values.sum(), new_values / new_values.sum())
    else:  # no measured values on one side: the size of the effect is the missing bin's
        value = psi(reference / reference.sum(), recent / total)
    bonferroni = 2 * features
    p_values = min(1.0, _values_p(ref_values, new_values) * bonferroni)
    p_missing = min(
        1.0,
        _missing_rise_p(int(reference[-1]), int(reference.sum()), int(recent[-1]), int(total))
        * bonferroni,
    )
    p_value = min(p_values, p_missing)
    if p_missing < alpha and (new_values.sum() == 0 or recent[-1] / total >= 0.5):
        return value, DRIFT, p_value  # the sensor (mostly) stopped measuring: no minimum
    minimum = 5 * ref_values.size if min_rows is None else min_rows
    if new_values.sum() < minimum:
        return value, INSUFFICIENT, p_value
    if p_values < alpha and value is not None and value >= PSI_DRIFT:
        return value, WATCH, p_value  # unlike the training data: shown, not alerted
    if p_missing < alpha:
        return value, WATCH, p_value
    return value, OK, p_value


# --- the change test: day by day (the alert) -----------------------------------------------


@dataclass(frozen=True)
class DayValues:
    """One feature over one 24-hour period: what the change test needs of it."""

    measured: int
    missing: int
    mean: float | None
    """Mean of the measured values in training standard deviations from the training mean
    (None without measured values)."""

    @property
    def missing_share(self) -> float | None:
        total = self.measured + self.missing
        return self.missing / total if total else None


def day_values(
    feature: str, histogram: Mapping[int, int], centre: float, scale: float
) -> DayValues:
    """A day's readings of ``feature`` as the hourly drift cells count them (cell -> readings),
    each measured value taken at its cell's midpoint (half a cell, at most range / 4000, off)."""
    spec = FEATURES_BY_NAME[feature]
    width = (spec.maximum - spec.minimum) / GRID_CELLS
    measured = missing = 0
    total = 0.0
    for cell, n in histogram.items():
        if cell == MISSING_CELL:
            missing += n
        else:
            measured += n
            total += n * (spec.minimum + (cell + 0.5) * width)
    if not measured:
        return DayValues(0, missing, None)
    return DayValues(measured, missing, (total / measured - centre) / scale)


@dataclass(frozen=True)
class Change:
    """The change test of one feature (:func:`change_test`)."""

    mean_t: float | None
    """t statistic of the recent days' mean against the baseline days' (signed)."""
    missing_t: float | None
    """t statistic of the recent days' missing share against the baseline's (a rise > 0)."""
    mean_limit: float
    missing_limit: float
    baseline_days: int

    @property
    def ratio(self) -> float | None:
        """The larger statistic over its limit (>= 1: fired), None when neither ran."""
        ratios = [abs(self.mean_t) / self.mean_limit] if self.mean_t is not None else []
        if self.missing_t is not None:
            ratios.append(self.missing_t / self.missing_limit)
        return max(ratios) if ratios else None

    @property
    def fired(self) -> bool:
        return self.ratio is not None and self.ratio >= 1.0


def _t(recent: list[float], baseline: list[float], floor: float) -> float:
    spread = max(float(np.std(baseline, ddof=1)), floor)
    scale = spread * math.sqrt(1 / len(recent) + 1 / len(baseline))
    return (float(np.mean(recent)) - float(np.mean(baseline))) / scale


def change_test(
    baseline: Sequence[DayValues],
    recent: Sequence[DayValues],
    *,
    alpha: float = DEFAULT_ALPHA,
    features: int = DEFAULT_FEATURES,
    looks: int = LOOKS_PER_HALF_YEAR,
) -> Change:
    """Did the feature change in the ``recent`` days against the ``baseline`` days?

    Two t statistics over days (module docstring): the mean (two-sided) and the missing share
    (a rise), each with the baseline's day-to-day standard deviation, floored at the spread a
    day's mean or share has from its readings alone (``1 / sqrt(values)`` sd; binomial for the
    share). Each limit holds ``alpha / (2 x features x looks)``: the whole rule - every feature,
    every daily look of a half-year - raises a false alarm in at most ``alpha`` of half-years
    (Bonferroni; days taken as independent)."""
    if not 0 < alpha < 1 or features < 1 or looks < 1:
        raise ValueError("alpha must lie in (0, 1); features and looks at least 1")
    base = [d for d in baseline if d.measured >= MIN_DAY_VALUES and d.mean is not None]
    new = [d for d in recent if d.measured >= MIN_DAY_VALUES and d.mean is not None]
    per_test = alpha / (2 * features * looks)
    mean_limit = float(student_t.ppf(1 - per_test / 2, max(len(base) - 1, 1)))
    mean_t = None
    if len(base) >= MIN_BASELINE_DAYS and new:
        values = float(np.median([d.measured for d in base]))
        mean_t = _t([d.mean for d in new], [d.mean for d in base], 1 / math.sqrt(values))  # type: ignore[misc]
    # the missing share counts days by their rows: a sensor that stopped measuring leaves
    # recent days with too few measured values for the mean, not for this
    counted = [d for d in baseline if d.measured + d.missing >= MIN_DAY_VALUES]
    base_shares = [d.missing_share for d in counted]
    new_shares = [d.missing_share for d in recent if d.measured + d.missing >= MIN_DAY_VALUES]
    missing_limit = float(student_t.ppf(1 - per_test, max(len(counted) - 1, 1)))
    missing_t = None
    if len(counted) >= MIN_BASELINE_DAYS and new_shares:
        rows = float(np.median([d.measured + d.missing for d in counted]))
        share = max(float(np.mean(base_shares)), 1 / rows)  # type: ignore[arg-type]
        missing_t = _t(new_shares, base_shares, math.sqrt(share * (1 - share) / rows))  # type: ignore[arg-type]
    return Change(mean_t, missing_t, mean_limit, missing_limit, len(base))


def with_change(result: FeatureDrift, change: Change) -> FeatureDrift:
    """``result`` (the window against the training data) with the change test's verdict: a
    fired test is ``drift`` (the alert) whatever the window said; a test not run (too few
    days) leaves ``result`` as it is."""
    from dataclasses import replace

    if change.ratio is None:
        return result
    status = DRIFT if change.fired else result.status
    return replace(result, status=status, change=change.ratio, baseline_days=change.baseline_days)


def feature_drift(
    feature: str,
    reference: Sequence[float | None],
    recent: Sequence[float | None],
    bins: int = DEFAULT_BINS,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> FeatureDrift:
    """PSI and status of one feature, from its rows."""
    if len(reference) == 0:
        raise ValueError(f"{feature}: no reference (training) rows to compare with")
    edges = quantile_edges(reference, bins)
    return drift_from_counts(
        feature, bin_counts(reference, edges), bin_counts(recent, edges), min_rows
    )


def drift_from_counts(
    feature: str,
    reference_counts: np.ndarray,
    recent_counts: np.ndarray,
    min_rows: int | None = DEFAULT_MIN_ROWS,
) -> FeatureDrift:
    """PSI and status of one feature from its bin counts (:func:`bin_counts`' layout: value
    bins, then missing values): all the decision needs, so the recent side can be counted
    where the rows are (SQL) and memory stays bounded by the number of bins. The status is
    :func:`decide`'s."""
    reference_rows, recent_rows = int(reference_counts.sum()), int(recent_counts.sum())
    if reference_rows == 0:
        raise ValueError(f"{feature}: no reference (training) rows to compare with")
    value, status, p_value = decide(reference_counts, recent_counts, min_rows=min_rows)
    return FeatureDrift(
        feature=feature,
        psi=value,
        status=status,
        reference_rows=reference_rows,
        recent_rows=recent_rows,
        reference_null_share=float(reference_counts[-1]) / reference_rows,
        recent_null_share=int(recent_counts[-1]) / recent_rows if recent_rows else None,
        p_value=p_value,
    )


def drift_report(
    reference: Mapping[str, Sequence[float | None]],
    recent: Mapping[str, Sequence[float | None]],
    bins: int = DEFAULT_BINS,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[FeatureDrift]:
    """PSI of every feature of ``reference`` (same order), against the same feature in
    ``recent``."""
    return [
        feature_drift(name, values, recent.get(name, ()), bins, min_rows)
        for name, values in reference.items()
    ]


def drift_report_on_grid(
    reference: Mapping[str, Sequence[float | None]],
    recent: Mapping[str, Sequence[float | None]],
    bins: int = DEFAULT_BINS,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[FeatureDrift]:
    """:func:`drift_report` with the bins snapped to the drift grid (:func:`cell_edges`), from
    the rows: what quality control computes from the hourly cells, so the two must be equal."""
    out = []
    for name, values in reference.items():
        edges = cell_edges(name, values, bins)
        out.append(
            drift_from_counts(
                name,
                cell_bin_counts(cells_of(name, values), edges),
                cell_bin_counts(cells_of(name, list(recent.get(name, ()))), edges),
                min_rows,
            )
        )
    return out
