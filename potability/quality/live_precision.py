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
measurement time, UTC), plus one ``all`` row per model version. A row is *flagged* only on
evidence: it rests on at least ``QC_MIN_MATCHES`` matched potable predictions (TP + FP,
precision's denominator) AND the one-sided :data:`DEFAULT_FLAG_CONFIDENCE` (95%)
Clopper-Pearson upper bound of its precision is below ``QC_PRECISION_FLOOR``. Clopper-Pearson
is exact-conservative, so a model whose true precision is at the floor is flagged in at most
5% of checks (per row); one whose precision is 0.70 far less (docs/statistics.md has the
simulated rates). A point estimate under the floor is reported, not flagged.

Everything here is pure; :mod:`potability.quality.job` loads the rows and stores the results.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from scipy.stats import beta as beta_distribution

DEFAULT_FLAG_CONFIDENCE = 0.95

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
    """Two-sided Clopper-Pearson interval of precision at the flag confidence (None without
    potable predictions); ``precision_high`` < floor is what flags."""

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


def metric(
    model_version: str,
    period: str,
    week_start: date | None,
    matches: Sequence[Match],
    precision_floor: float,
    min_matches: int,
    confidence: float = DEFAULT_FLAG_CONFIDENCE,
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
    low = high = None
    if tp + fp:
        # two-sided interval at the flag confidence: its upper end is the one-sided bound
        # at (1 + confidence) / 2; the flag itself uses the one-sided bound at `confidence`
        two_sided = (1 + confidence) / 2
        low = precision_lower_bound(tp, tp + fp, two_sided)
        high = precision_upper_bound(tp, tp + fp, two_sided)
    flagged = (
        tp + fp >= min_matches and precision_upper_bound(tp, tp + fp, confidence) < precision_floor
    )
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
        flagged=flagged,
        precision_low=low,
        precision_high=high,
    )


def live_metrics(
    matches: Iterable[Match],
    precision_floor: float,
    min_matches: int,
    confidence: float = DEFAULT_FLAG_CONFIDENCE,
) -> list[LiveMetric]:
    """Per model version: one row per ISO week with matches, then its ``all`` row."""
    if not 0.0 <= precision_floor <= 1.0:
        raise ValueError("the precision floor must lie in [0, 1]")
    if min_matches < 1:
        raise ValueError("the minimum number of matches must be at least 1")
    if not 0.5 <= confidence < 1.0:
        raise ValueError("the flag confidence must lie in [0.5, 1)")
    by_version: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        by_version[m.inference.model_version].append(m)
    rows = []
    for version in sorted(by_version):
        weeks: dict[tuple[str, date], list[Match]] = defaultdict(list)
        for m in by_version[version]:
            weeks[iso_week(m.inference.at)].append(m)
        for (period, monday), group in sorted(weeks.items()):
            rows.append(
                metric(version, period, monday, group, precision_floor, min_matches, confidence)
            )
        rows.append(
            metric(
                version,
                ALL_WEEKS,
                None,
                by_version[version],
                precision_floor,
                min_matches,
                confidence,
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
