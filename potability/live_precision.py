"""Live precision of the deployed model (pure): lab samples confirm (or refute) live inferences.

A certified lab sample is ground truth for the water at one site at one moment; the sensor
readings the model classified around that moment describe the same water. Pairing them gives
the model's *live* precision and recall, which the held-out numbers of the training pipeline
can only promise.

Matching rule (the one rule the README, the status page and the tests use):

    A lab sample with ``sensor_id`` S taken at ``sampled_at`` T confirms the ONE inference of
    sensor S whose ``inferred_at`` is nearest to T within ``[T - window, T + window]``
    (``QC_MATCH_WINDOW_MINUTES``, default 30). Ties go to the earlier inference, then to the
    smaller inference id. A sample with no sensor, or no inference in its window, confirms
    nothing and is left out. Every sample counts at most once; two samples may confirm the
    same inference (each is an independent lab check of that reading).

Why the nearest and not all inferences in the window: the nearest reading is the best
measurement of the water the lab analysed, and counting every reading in the window would let
a sensor that reports every minute outweigh one that reports hourly.

Metrics, with *positive* = "predicted potable" (the costly mistake is calling unsafe water
safe, so precision is what the utility promises):

    precision = TP / (TP + FP)   recall = TP / (TP + FN)

computed per ``model_version`` (of the matched inference) and per ISO week (of
``inferred_at``, UTC), plus one ``all`` row per model version. A row is *flagged* when its
precision is below ``QC_PRECISION_FLOOR`` and rests on at least ``QC_MIN_MATCHES`` matched
potable predictions (TP + FP, precision's denominator): a precision computed from three
predictions is noise, not evidence.

Everything here is pure; :mod:`potability.qc_job` loads the rows and stores the results.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Sequence

ALL_WEEKS = "all"
"""``period`` of the row that aggregates every week of a model version."""


@dataclass(frozen=True)
class LabSample:
    """The part of a lab sample quality control needs (never who submitted it)."""

    id: int
    sensor_id: str | None
    sampled_at: datetime
    potability: int


@dataclass(frozen=True)
class Inference:
    """The part of a logged inference quality control needs."""

    id: int
    sensor_id: str
    inferred_at: datetime
    predicted_class: int
    model_version: str


@dataclass(frozen=True)
class Match:
    sample: LabSample
    inference: Inference

    @property
    def offset(self) -> timedelta:
        """How far the inference is from the sample (absolute)."""
        return abs(self.inference.inferred_at - self.sample.sampled_at)


@dataclass(frozen=True)
class LiveMetric:
    """Live confusion counts and metrics of one model version over one period."""

    model_version: str
    period: str
    """ISO week such as ``2025-W03``, or :data:`ALL_WEEKS`."""
    week_start: date | None
    """Monday of the ISO week (None for the ``all`` row)."""
    matches: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    precision: float | None
    """None when the model predicted no potable water among the matches."""
    recall: float | None
    """None when no matched sample was potable."""
    flagged: bool

    @property
    def predicted_positive(self) -> int:
        return self.true_positives + self.false_positives


def match_samples(
    samples: Iterable[LabSample], inferences: Iterable[Inference], window: timedelta
) -> list[Match]:
    """Pair each lab sample with the inference it confirms (see the module's matching rule)."""
    if window < timedelta(0):
        raise ValueError("the match window cannot be negative")
    by_sensor: dict[str, list[Inference]] = defaultdict(list)
    for inference in inferences:
        by_sensor[inference.sensor_id].append(inference)
    for rows in by_sensor.values():
        rows.sort(key=lambda i: (i.inferred_at, i.id))
    times = {sensor: [i.inferred_at for i in rows] for sensor, rows in by_sensor.items()}

    matches = []
    for sample in sorted(samples, key=lambda s: (s.sampled_at, s.id)):
        if sample.sensor_id is None or sample.sensor_id not in by_sensor:
            continue
        rows = by_sensor[sample.sensor_id]
        start = bisect_left(times[sample.sensor_id], sample.sampled_at - window)
        best: Inference | None = None
        for inference in rows[start:]:
            if inference.inferred_at > sample.sampled_at + window:
                break
            distance = abs(inference.inferred_at - sample.sampled_at)
            # rows are in (time, id) order, so keeping the first of equal distances keeps the
            # earlier inference (then the smaller id), as the rule says
            if best is None or distance < abs(best.inferred_at - sample.sampled_at):
                best = inference
        if best is not None:
            matches.append(Match(sample, best))
    return matches


def iso_week(moment: datetime) -> tuple[str, date]:
    """The ISO week of a moment in UTC, as (``YYYY-Www``, its Monday)."""
    day = moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date()
    year, week, weekday = day.isocalendar()
    return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def metric(
    model_version: str, period: str, week_start: date | None, matches: Sequence[Match],
    precision_floor: float, min_matches: int,
) -> LiveMetric:
    """Confusion counts, precision, recall and the flag for one group of matches."""
    tp = fp = fn = tn = 0
    for m in matches:
        predicted, actual = m.inference.predicted_class == 1, m.sample.potability == 1
        if predicted and actual:
            tp += 1
        elif predicted:
            fp += 1
        elif actual:
            fn += 1
        else:
            tn += 1
    precision = _ratio(tp, tp + fp)
    flagged = precision is not None and tp + fp >= min_matches and precision < precision_floor
    return LiveMetric(
        model_version=model_version, period=period, week_start=week_start, matches=len(matches),
        true_positives=tp, false_positives=fp, false_negatives=fn, true_negatives=tn,
        precision=precision, recall=_ratio(tp, tp + fn), flagged=flagged,
    )


def live_metrics(
    matches: Iterable[Match], precision_floor: float, min_matches: int
) -> list[LiveMetric]:
    """Per model version: one row per ISO week with matches, then its ``all`` row."""
    if not 0.0 <= precision_floor <= 1.0:
        raise ValueError("the precision floor must lie in [0, 1]")
    if min_matches < 1:
        raise ValueError("the minimum number of matches must be at least 1")
    by_version: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        by_version[m.inference.model_version].append(m)
    rows = []
    for version in sorted(by_version):
        weeks: dict[tuple[str, date], list[Match]] = defaultdict(list)
        for m in by_version[version]:
            weeks[iso_week(m.inference.inferred_at)].append(m)
        for (period, monday), group in sorted(weeks.items()):
            rows.append(metric(version, period, monday, group, precision_floor, min_matches))
        rows.append(
            metric(version, ALL_WEEKS, None, by_version[version], precision_floor, min_matches)
        )
    return rows
