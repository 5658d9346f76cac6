"""Live precision of the deployed model (pure): lab samples confirm (or refute) live inferences.

A certified lab sample is ground truth for the water at one site at one moment; the sensor
readings the model classified around that moment describe the same water. Pairing them gives
the model's *live* precision and recall, which the held-out numbers of the training pipeline
can only promise.

Matching rule (the one rule the README, the status page and the tests use):

    A lab sample with ``sensor_id`` S taken at ``sampled_at`` T may confirm an inference of
    sensor S whose *measurement time* (``measured_at``, sent by the sensor per reading;
    ``inferred_at``, the arrival, when it sent none) lies in ``[T - window, T + window]``
    (``QC_MATCH_WINDOW_MINUTES``, default 30). Matching is ONE-TO-ONE: all (sample,
    inference) pairs of a sensor are taken nearest first, and a pair is kept when neither its
    sample nor its inference is already taken. Equal distances go to the earlier sample
    (then the smaller sample id), then to the earlier inference, then to the smaller
    inference id - so readings of one batch, which share ``inferred_at``, are told apart by
    their own ``measured_at`` and otherwise by id, never always "reading 0". A sample with no
    sensor, or no free inference in its window, confirms nothing and is left out. No two
    samples confirm the same inference: two lab checks of one reading are not two pieces of
    evidence about the model.

Why the nearest and not all inferences in the window: the nearest reading is the best
measurement of the water the lab analysed, and counting every reading in the window would let
a sensor that reports every minute outweigh one that reports hourly.

Metrics, with *positive* = "predicted potable" (the costly mistake is calling unsafe water
safe, so precision is what the utility promises):

    precision = TP / (TP + FP)   recall = TP / (TP + FN)

computed per ``model_version`` (of the matched inference) and per ISO week (of the
measurement time, UTC), plus one ``all`` row per model version, each with a two-sided 95%
Clopper-Pearson interval of its precision (a description, not a test).

The flag is a SEQUENTIAL test that may be looked at daily, forever (issue 31): a Bernoulli
CUSUM (Page 1954; for a proportion inspected one item at a time, Reynolds & Stoumbos 1999,
"A CUSUM chart for monitoring a proportion when inspecting continuously", Journal of Quality
Technology 31(1)) over a version's matched potable calls in measurement order. Each confirmed
call adds ``log(floor / expected)`` (< 0), each refuted one ``log((1 - floor) / (1 -
expected))`` (> 0) - the log-likelihood ratio of the floor (``QC_PRECISION_FLOOR``) against
the precision the model is expected to hold (``QC_PRECISION_EXPECTED``) - and the statistic
never goes under 0. The version is flagged while the statistic is at or above
``QC_ALARM_LIMIT``. Looking daily changes nothing: the statistic is a function of the calls,
not of when anybody looks, so the false-alarm rate is that of the chart over the calls of a
half-year, not of a test repeated per look. At the defaults (0.70 expected, 0.60 floor, limit
7.0) and 50 lab-checked potable calls a week, a model holding 0.70 is flagged in 1.9% of
half-years and a drop to 0.55 within 200 calls (4 weeks) in 84% of cases if calls were
independent (exact Markov-chain computation); with the lab's calls clustered by sensor and
sensors of unequal precision, bench/statistics_bench.py measures 4.5% and 84%
(docs/statistics.md), where 6.5 gave 6.8% false alarms. Precision between the floor and the
expected level is an indifference zone: flagged sooner or later, but not promptly.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from scipy.stats import beta as beta_distribution

DEFAULT_FLAG_CONFIDENCE = 0.95
"""Confidence of the Clopper-Pearson interval each row reports (two-sided 95%)."""
DEFAULT_EXPECTED_PRECISION = 0.70
"""The live precision a champion is expected to hold (held-out ~0.72-0.78): the CUSUM stays
silent at it (``QC_PRECISION_EXPECTED``)."""
DEFAULT_ALARM_LIMIT = 7.0
"""The CUSUM's decision limit (``QC_ALARM_LIMIT``): <= 5% false alarms per half-year at 50
potable calls a week (module docstring)."""

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
    measured_at: datetime | None = None
    """When the sensor measured (sent per reading); None = not sent, the arrival counts."""

    @property
    def at(self) -> datetime:
        """The measurement time: ``measured_at``, else ``inferred_at``."""
        return self.measured_at if self.measured_at is not None else self.inferred_at


@dataclass(frozen=True)
class Match:
    sample: LabSample
    inference: Inference

    @property
    def offset(self) -> timedelta:
        """How far the inference's measurement is from the sample (absolute)."""
        return abs(self.inference.at - self.sample.sampled_at)


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
    precision_low: float | None = None
    precision_high: float | None = None
    """Two-sided 95% Clopper-Pearson interval of precision (None without potable calls)."""
    alarm_statistic: float | None = None
    """The CUSUM (:func:`cusum`): a week row's highest value in the week, the ``all`` row's
    value after the last call; None without potable calls. Flagged at >= the limit."""
    alarm_calls: int = 0
    alarm_confirmed: int = 0
    """``all`` row: the potable calls since the statistic last stood at 0 - the run of calls
    the alarm rests on - and how many of them the lab confirmed."""

    @property
    def predicted_positive(self) -> int:
        return self.true_positives + self.false_positives


def match_samples(
    samples: Iterable[LabSample], inferences: Iterable[Inference], window: timedelta
) -> list[Match]:
    """Pair lab samples and inferences one-to-one, nearest first (the module's matching rule).

    Memory: the candidate pairs of each sensor, i.e. bounded by the samples times the
    inferences :func:`potability.quality.job.load_candidate_inferences` loads for them (at most
    ~2 per sample and competing sample), not by the size of the inference log."""
    if window < timedelta(0):
        raise ValueError("the match window cannot be negative")
    by_sensor: dict[str, list[Inference]] = defaultdict(list)
    for inference in inferences:
        by_sensor[inference.sensor_id].append(inference)
    for rows in by_sensor.values():
        rows.sort(key=lambda i: (i.at, i.id))
    times = {sensor: [i.at for i in rows] for sensor, rows in by_sensor.items()}

    pairs = []
    for sample in samples:
        if sample.sensor_id is None or sample.sensor_id not in by_sensor:
            continue
        rows = by_sensor[sample.sensor_id]
        for inference in rows[bisect_left(times[sample.sensor_id], sample.sampled_at - window) :]:
            if inference.at > sample.sampled_at + window:
                break
            pairs.append(
                (
                    abs(inference.at - sample.sampled_at),
                    sample.sampled_at,
                    sample.id,
                    inference.at,
                    inference.id,
                    sample,
                    inference,
                )
            )
    pairs.sort(key=lambda p: p[:5])
    taken_samples: set[int] = set()
    taken_inferences: set[int] = set()
    matches = []
    for *_, sample, inference in pairs:
        if sample.id in taken_samples or inference.id in taken_inferences:
            continue
        taken_samples.add(sample.id)
        taken_inferences.add(inference.id)
        matches.append(Match(sample, inference))
    matches.sort(key=lambda m: (m.sample.sampled_at, m.sample.id))
    return matches


def precision_upper_bound(
    true_positives: int, predicted_positive: int, confidence: float = DEFAULT_FLAG_CONFIDENCE
) -> float:
    """One-sided Clopper-Pearson upper bound of precision (TP successes in TP + FP trials).

    Exact: for any true precision p, P(bound < p) <= 1 - confidence, which is the
    false-alarm rate of a flag raised when the bound is under the floor."""
    if predicted_positive < 1 or not 0 <= true_positives <= predicted_positive:
        raise ValueError("need 0 <= true positives <= predicted positive, and at least one")
    if true_positives == predicted_positive:
        return 1.0
    return float(
        beta_distribution.ppf(confidence, true_positives + 1, predicted_positive - true_positives)
    )


def precision_lower_bound(
    true_positives: int, predicted_positive: int, confidence: float = DEFAULT_FLAG_CONFIDENCE
) -> float:
    """One-sided Clopper-Pearson lower bound of precision (the mirror of the upper bound)."""
    if predicted_positive < 1 or not 0 <= true_positives <= predicted_positive:
        raise ValueError("need 0 <= true positives <= predicted positive, and at least one")
    if true_positives == 0:
        return 0.0
    return float(
        beta_distribution.ppf(
            1 - confidence, true_positives, predicted_positive - true_positives + 1
        )
    )


def iso_week(moment: datetime) -> tuple[str, date]:
    """The ISO week of a moment in UTC, as (``YYYY-Www``, its Monday)."""
    day = moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    year, week, weekday = day.isocalendar()
    return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def cusum(confirmed: Iterable[bool], expected: float, floor: float) -> list[float]:
    """The Bernoulli CUSUM after each potable call (True: the lab confirmed it), in order.

    ``S_0 = 0``, ``S_i = max(0, S_(i-1) + step_i)``, the step the log-likelihood ratio of the
    call under precision ``floor`` against ``expected`` (module docstring)."""
    if not 0 < floor < expected < 1:
        raise ValueError("need 0 < precision floor < expected precision < 1")
    up, down = math.log((1 - floor) / (1 - expected)), math.log(floor / expected)
    path, statistic = [], 0.0
    for ok in confirmed:
        statistic = max(0.0, statistic + (down if ok else up))
        path.append(statistic)
    return path


def metric(
    model_version: str,
    period: str,
    week_start: date | None,
    matches: Sequence[Match],
    alarm_statistic: float | None,
    limit: float,
    confidence: float = DEFAULT_FLAG_CONFIDENCE,
) -> LiveMetric:
    """Confusion counts, precision, recall and interval of one group of matches; flagged
    when ``alarm_statistic`` (the CUSUM, :func:`live_metrics`) is at or above ``limit``."""
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
    low = high = None
    if tp + fp:
        # two-sided interval: each end the one-sided bound at (1 + confidence) / 2
        two_sided = (1 + confidence) / 2
        low = precision_lower_bound(tp, tp + fp, two_sided)
        high = precision_upper_bound(tp, tp + fp, two_sided)
    return LiveMetric(
        model_version=model_version,
        period=period,
        week_start=week_start,
        matches=len(matches),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        true_negatives=tn,
        precision=precision,
        recall=_ratio(tp, tp + fn),
        flagged=alarm_statistic is not None and alarm_statistic >= limit,
        precision_low=low,
        precision_high=high,
        alarm_statistic=alarm_statistic,
    )


def live_metrics(
    matches: Iterable[Match],
    precision_floor: float,
    expected_precision: float = DEFAULT_EXPECTED_PRECISION,
    limit: float = DEFAULT_ALARM_LIMIT,
    confidence: float = DEFAULT_FLAG_CONFIDENCE,
) -> list[LiveMetric]:
    """Per model version: one row per ISO week with matches, then its ``all`` row; flagged by
    the version's CUSUM over its potable calls in measurement order (module docstring)."""
    if not 0.0 < precision_floor < expected_precision < 1.0:
        raise ValueError("need 0 < precision floor < expected precision < 1")
    if limit <= 0:
        raise ValueError("the alarm limit must be positive")
    if not 0.5 <= confidence < 1.0:
        raise ValueError("the interval confidence must lie in [0.5, 1)")
    by_version: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        by_version[m.inference.model_version].append(m)
    rows = []
    for version in sorted(by_version):
        calls = sorted(
            (m for m in by_version[version] if m.inference.predicted_class == 1),
            key=lambda m: (m.inference.at, m.inference.id),
        )
        path = cusum((m.sample.potability == 1 for m in calls), expected_precision, precision_floor)
        # by the match itself (its identity), not by an id two callers' matches might share
        at_call = {id(m): value for m, value in zip(calls, path, strict=True)}
        weeks: dict[tuple[str, date], list[Match]] = defaultdict(list)
        for m in by_version[version]:
            weeks[iso_week(m.inference.at)].append(m)
        for (period, monday), group in sorted(weeks.items()):
            values = [at_call[id(m)] for m in group if id(m) in at_call]
            peak = max(values) if values else None
            rows.append(metric(version, period, monday, group, peak, limit, confidence))
        final = path[-1] if path else None
        total = metric(version, ALL_WEEKS, None, by_version[version], final, limit, confidence)
        since = max((i + 1 for i, value in enumerate(path) if value == 0.0), default=0)
        run = calls[since:]
        rows.append(
            replace(
                total,
                alarm_calls=len(run),
                alarm_confirmed=sum(1 for m in run if m.sample.potability == 1),
            )
        )
    return rows


FRESH_CONFIDENCE = 0.95
"""Two-sided confidence of the interval around the champion's fresh precision."""


@dataclass(frozen=True)
class FreshPrecision:
    """The champion's precision on lab samples no promotion test has used (issue 23).

    The held-out precision the pipeline records is measured on rows every later run's
    promotion test reuses: the champion is the survivor of those tests, so that figure is
    biased upward. This one counts only the champion's potable calls confirmed or refuted by
    lab samples received after its training run started and never used by a promotion test,
    with a two-sided Clopper-Pearson interval; below ``min_calls`` it is not enough evidence."""

    model_version: str
    since: datetime
    """Samples received after this moment count (the start of the champion's run)."""
    potable_calls: int
    confirmed: int
    precision_low: float | None
    precision_high: float | None
    enough: bool

    @property
    def precision(self) -> float | None:
        return _ratio(self.confirmed, self.potable_calls)


def fresh_precision(
    matches: Iterable[Match],
    model_version: str,
    since: datetime,
    fresh_sample_ids: set[int],
    min_calls: int,
    confidence: float = FRESH_CONFIDENCE,
) -> FreshPrecision:
    """The champion's precision on the matches whose lab sample is fresh (``fresh_sample_ids``:
    received after ``since`` and never in a promotion test) and whose inference it served."""
    calls = [
        m
        for m in matches
        if m.inference.model_version == model_version
        and m.inference.predicted_class == 1
        and m.sample.id in fresh_sample_ids
    ]
    confirmed = sum(1 for m in calls if m.sample.potability == 1)
    low = high = None
    if calls:
        two_sided = (1 + confidence) / 2
        low = precision_lower_bound(confirmed, len(calls), two_sided)
        high = precision_upper_bound(confirmed, len(calls), two_sided)
    return FreshPrecision(
        model_version, since, len(calls), confirmed, low, high, len(calls) >= min_calls
    )
