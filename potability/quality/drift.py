"""Feature drift of recent inferences against the champion's training data (PSI per feature).

A model is only as good as the resemblance between the water it is asked about and the water
it learned from. The Population Stability Index measures that resemblance per feature:

    PSI = sum over bins of (recent_share - reference_share) * ln(recent_share / reference_share)

Bins are the reference's (training data's) deciles, so each holds ~10% of the training rows
and a shift anywhere in the range shows; values beyond the extreme edges fall into the first
or last bin. Missing values (NULL: sensor did not measure) form a bin of their own, because a
sensor that stops reporting sulfate is drift too, and the model's imputation hides it.
Shares are clipped at :data:`EPSILON` so an empty bin costs a large but finite amount.

The DECISION (:func:`decide`, a pure function of bin COUNTS, so the counts may come from SQL)
does not cry wolf on sampling noise (issue 23). PSI alone does: 50 recent rows drawn from the
training data itself reach PSI 0.1 in most checks. So:

* measured values and missing values are judged apart. The value bins are compared as shares
  of the MEASURED values (a sensor that always measures sulfate, against training data with 24%
  missing, has the same value distribution and is not drifting); the missing share is drift
  only when it is significantly HIGHER than the reference's (a sensor that stopped measuring).
* each comparison is a test with a stated false-alarm rate: a chi-square test of homogeneity
  of the reference and recent value counts (two samples, so the reference's own noise counts)
  and a one-sided two-proportion z-test of the missing share. Each feature gets
  ``alpha / (2 * features)`` (Bonferroni over the two tests of the nine features), so a check
  of all nine features with no drift raises an alert in at most ``alpha`` (default 5%) of weeks.
* PSI stays the size of the effect: significant AND PSI >= 0.25 is ``drift`` (the alert);
  significant with a smaller PSI, or a significant rise in missing values, below that, is
  ``watch``; otherwise ``ok``. A significant rise in missing values is ``drift`` too.
* the minimum sample: ``min_rows`` = 5 expected rows per value bin (50 for deciles), the
  textbook condition for the chi-square approximation; below it ``insufficient_data``.
  docs/statistics.md has the simulated false-alarm rates and the power at n = 50 / 200.

Pure: :mod:`potability.quality.job` loads the rows and stores the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, norm

from potability.features import FEATURES_BY_NAME

DEFAULT_ALPHA = 0.05
"""False-alarm rate of one check of ALL features (Bonferroni-split between them)."""
DEFAULT_FEATURES = 9
PSI_WATCH = 0.10
PSI_DRIFT = 0.25
DEFAULT_BINS = 10
DEFAULT_MIN_ROWS = 50
EPSILON = 1e-4

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
        return value, DRIFT, p_value
    if p_values < alpha or p_missing < alpha:
        return value, WATCH, p_value
    return value, OK, p_value


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
