"""Feature drift of recent inferences against the champion's training data (PSI per feature).

A model is only as good as the resemblance between the water it is asked about and the water
it learned from. The Population Stability Index measures that resemblance per feature:

    PSI = sum over bins of (recent_share - reference_share) * ln(recent_share / reference_share)

Bins are the reference's (training data's) deciles, so each holds ~10% of the training rows
and a shift anywhere in the range shows; values beyond the extreme edges fall into the first
or last bin. Missing values (NULL: sensor did not measure) form a bin of their own, because a
sensor that stops reporting sulfate is drift too, and the model's imputation hides it.
Shares are clipped at :data:`EPSILON` so an empty bin costs a large but finite amount.

Thresholds, the usual ones for PSI: below 0.1 ``ok``, from 0.1 ``watch``, from 0.25 ``drift``.
With fewer than ``min_rows`` recent values the status is ``insufficient_data`` (PSI is still
reported): a handful of readings always "drift".

Pure: :mod:`potability.qc_job` loads the rows and stores the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

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
    ``width_bucket(value, edges)`` computes, so :mod:`potability.qc_job` counts the recent
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


def status_for(value: float, recent_rows: int, min_rows: int = DEFAULT_MIN_ROWS) -> str:
    """``ok`` / ``watch`` / ``drift`` by the thresholds, or ``insufficient_data``."""
    if recent_rows < min_rows:
        return INSUFFICIENT
    if value >= PSI_DRIFT:
        return DRIFT
    if value >= PSI_WATCH:
        return WATCH
    return OK


def feature_drift(
    feature: str, reference: Sequence[float | None], recent: Sequence[float | None],
    bins: int = DEFAULT_BINS, min_rows: int = DEFAULT_MIN_ROWS,
) -> FeatureDrift:
    """PSI and status of one feature, from its rows."""
    if len(reference) == 0:
        raise ValueError(f"{feature}: no reference (training) rows to compare with")
    edges = quantile_edges(reference, bins)
    return drift_from_counts(feature, bin_counts(reference, edges), bin_counts(recent, edges),
                             min_rows)


def drift_from_counts(
    feature: str, reference_counts: np.ndarray, recent_counts: np.ndarray,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> FeatureDrift:
    """PSI and status of one feature from its bin counts (:func:`bin_counts`' layout: value
    bins, then missing values): all the decision needs, so the recent side can be counted
    where the rows are (SQL) and memory stays bounded by the number of bins."""
    reference_rows, recent_rows = int(reference_counts.sum()), int(recent_counts.sum())
    if reference_rows == 0:
        raise ValueError(f"{feature}: no reference (training) rows to compare with")
    reference_shares = shares_of(reference_counts)
    value = psi(reference_shares, shares_of(recent_counts)) if recent_rows else None
    return FeatureDrift(
        feature=feature,
        psi=value,
        status=INSUFFICIENT if value is None else status_for(value, recent_rows, min_rows),
        reference_rows=reference_rows,
        recent_rows=recent_rows,
        reference_null_share=float(reference_shares[-1]),
        recent_null_share=int(recent_counts[-1]) / recent_rows if recent_rows else None,
    )


def drift_report(
    reference: Mapping[str, Sequence[float | None]], recent: Mapping[str, Sequence[float | None]],
    bins: int = DEFAULT_BINS, min_rows: int = DEFAULT_MIN_ROWS,
) -> list[FeatureDrift]:
    """PSI of every feature of ``reference`` (same order), against the same feature in ``recent``."""
    return [
        feature_drift(name, values, recent.get(name, ()), bins, min_rows)
        for name, values in reference.items()
    ]
