"""False alarms and detection of the alerting rules, and false promotions and power of the
promotion rule, at deployed volume (issues 23 and 31).

    .venv/bin/python bench/statistics_bench.py [--trials 1000] [--drift-trials 200]
        [--promotion-trials 200] [--design-trials 500] [--grid default]
        [--scores-cache FILE.npz] [--only-promotion]

The deployment it models (assumptions, stated because the rates depend on them):

* 200 fixed sensors, a reading a minute each (1,440 a day), daily quality control (one look a
  day), 26 weeks (182 looks) per half-year; "recent" data is simulated independently of the
  training rows (never drawn from them).
* Drift, per feature, in training standard deviations: sensor offset ~ N(0, 0.3) (fixed),
  sensor-day effect ~ N(0, 0.2), a plant-wide day effect ~ N(0, 0.05), reading noise with the
  rest of the variance; each sensor misses a feature at its own rate (the training share +/-
  0.05: ph 15%, Sulfate 24%, Trihalomethanes 5%, the others 0). Per day the fleet's mean,
  measured and missing counts are aggregated exactly from the sensor-days - what the hourly
  drift cells give quality control. The rule is :func:`potability.quality.drift.change_test`
  (vectorised here; the vectorised statistics are checked against the function on every
  trial's last look). Shift: +0.5 sd of one feature (ph) on every sensor from a day drawn
  uniformly in weeks 5-24; delay = looks from that day to the first ``drift`` (0 = the
  evening of the day it started).
* Live precision: the lab visits 10 sensors a week (drawn at random) and checks 5 of each
  one's potable calls on the day of its visit: 50 lab-checked potable calls a week, clustered
  by sensor and day. A sensor's precision is ``expit(logit(centre) + u)``, u ~ N(0, 0.5) fixed
  per sensor, the centre set so the fleet's precision is the stated one. The rule is the
  CUSUM of :func:`potability.quality.live_precision.cusum` at the defaults, looked at each
  evening; for comparison the rule before issue 31 (one-sided 95% Clopper-Pearson upper
  bound < 0.60 on >= 20 calls, on the ISO week so far and on all calls, every evening).
  Drop: 0.70 -> 0.55 at the start of week 9; delay in days to the first flag.
* Promotion, per quarter (90 daily runs). What is real: the project's data set and the
  pipeline's split (seed 42, 20% held out); the champion and the challenger are models trained
  by training/ (every family's grid search, calibration and CV selection, the challenger
  chosen by the promote rule), the champion with the pipeline's CV seed and the challenger
  with another - a re-run on the same rows; their served P(potable) on the held-out rows;
  the rule (training.decision: ``is_look``, ``look_confidence``, ``decide``) and the paired
  bootstrap (training.evaluation.paired_bootstrap). What is simulated: the 656 held-out rows
  are the population, and the quarter's held-out rows are drawn from it with replacement -
  656 at the start and, each day, the held-out share (20%) of the lab samples that arrive
  at 50 lab-checked potable calls a week (Poisson; ~60 samples a day at the champion's share
  of potable calls); both models' thresholds are moved until their precision on the
  population is 0.70 (so the challenger is exactly no better), and a better challenger
  (0.75 / 0.80 / 0.85) is the equal one with some of its wrong potable calls withdrawn
  (no model reaches 0.85 on this data set); the models stay fixed over the quarter (the
  pipeline retrains daily, which makes consecutive looks less alike - the Bonferroni bound
  holds either way). A design table compares look schedules on the same quarters with the
  bootstrap drawn from the 8 cell counts (the paired bootstrap's distribution, checked
  against the function once), then the default rule is measured with the real paired
  bootstrap. The recall floor has its own bench, bench/recall_floor_bench.py.

Prints one table: per rule and condition the false alarms per half-year, or the detection
probability within the target time and the median delay, with the target and MET / MISSED.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.stats import beta as beta_distribution

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from potability.features import FEATURE_NAMES  # noqa: E402
from potability.quality import drift, live_precision  # noqa: E402
from training import decision  # noqa: E402
from training.evaluation import Evidence, Scores, paired_bootstrap  # noqa: E402

SENSORS = 200
READINGS_PER_DAY = 1440
LOOKS = 182
MISSING = {"ph": 0.15, "Sulfate": 0.24, "Trihalomethanes": 0.05}
SENSOR_SD, SENSOR_DAY_SD, PLANT_DAY_SD = 0.3, 0.2, 0.05
READING_SD = math.sqrt(1 - SENSOR_SD**2 - SENSOR_DAY_SD**2 - PLANT_DAY_SD**2)


# --- drift ------------------------------------------------------------------------------------


def fleet_days(
    feature: str, trials: int, days: int, rng: np.random.Generator, shift_day: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, measured, missing) of the fleet per trial and day, shape (trials, days)."""
    base = MISSING.get(feature, 0.0)
    rate = np.clip(base + rng.normal(0, 0.05, (trials, SENSORS)), 0, 0.9) if base else None
    offset = rng.normal(0, SENSOR_SD, (trials, SENSORS))
    means = np.empty((trials, days))
    measured = np.empty((trials, days))
    for d in range(days):
        m = (
            rng.binomial(READINGS_PER_DAY, 1 - rate)
            if rate is not None
            else np.full((trials, SENSORS), READINGS_PER_DAY)
        )
        level = offset + rng.normal(0, SENSOR_DAY_SD, (trials, SENSORS))
        noise = rng.normal(0, 1, (trials, SENSORS)) * READING_SD / np.sqrt(np.maximum(m, 1))
        total = m.sum(axis=1)
        means[:, d] = (m * (level + noise)).sum(axis=1) / total
        means[:, d] += rng.normal(0, PLANT_DAY_SD, trials)
        if shift_day is not None:
            means[:, d] += np.where(d >= shift_day, 0.5, 0.0)
        measured[:, d] = total
    missing = SENSORS * READINGS_PER_DAY - measured
    return means, measured, missing


def _t(recent: np.ndarray, base: np.ndarray, floor: np.ndarray) -> np.ndarray:
    spread = np.maximum(base.std(axis=-1, ddof=1), floor)
    scale = spread * math.sqrt(1 / recent.shape[-1] + 1 / base.shape[-1])
    return (recent.mean(axis=-1) - base.mean(axis=-1)) / scale


def fired(means: np.ndarray, measured: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Per trial and look, whether drift.change_test fires (all days count here: the fleet has
    ~200 k measured values a day). Checked against the function on each trial's last look."""
    trials, days = means.shape
    b, r = drift.BASELINE_DAYS, drift.RECENT_DAYS
    looks = days - b - r + 1
    windows = np.lib.stride_tricks.sliding_window_view
    mean_w, meas_w, miss_w = (windows(a, b + r, axis=1) for a in (means, measured, missing))
    share_w = miss_w / (meas_w + miss_w)
    reference = drift.change_test(
        [drift.DayValues(10**6, 0, 0.0)] * b, [drift.DayValues(10**6, 0, 0.0)] * r
    )
    mean_floor = 1 / np.sqrt(np.median(meas_w[..., :b], axis=-1))
    mean_t = _t(mean_w[..., b:], mean_w[..., :b], mean_floor)
    rows = np.median(meas_w[..., :b] + miss_w[..., :b], axis=-1)
    share = np.maximum(share_w[..., :b].mean(axis=-1), 1 / rows)
    missing_t = _t(share_w[..., b:], share_w[..., :b], np.sqrt(share * (1 - share) / rows))
    out = (np.abs(mean_t) >= reference.mean_limit) | (missing_t >= reference.missing_limit)
    for k in range(trials):  # the vectorised form is the function's
        d = days - 1
        values = [
            drift.DayValues(int(measured[k, j]), int(missing[k, j]), float(means[k, j]))
            for j in range(d - b - r + 1, d + 1)
        ]
        assert drift.change_test(values[:b], values[b:]).fired == out[k, -1]
        change = drift.change_test(values[:b], values[b:])
        assert math.isclose(change.mean_t or 0.0, float(mean_t[k, -1]), rel_tol=1e-6, abs_tol=1e-9)
    assert out.shape == (trials, looks)
    return out


def drift_rows(trials: int, rng: np.random.Generator) -> list[tuple[str, str, str, bool]]:
    days = drift.BASELINE_DAYS + drift.RECENT_DAYS - 1 + LOOKS
    any_alarm = np.zeros(trials, dtype=bool)
    for feature in FEATURE_NAMES:
        any_alarm |= fired(*fleet_days(feature, trials, days, rng, None)).any(axis=1)
    first_look_day = drift.BASELINE_DAYS + drift.RECENT_DAYS - 1  # the day of look 0
    shift = rng.integers(first_look_day + 28, first_look_day + 168, trials)
    looks = fired(*fleet_days("ph", trials, days, rng, shift))
    delays = []
    for k in range(trials):
        after = np.flatnonzero(looks[k, shift[k] - first_look_day :])
        delays.append(int(after[0]) if after.size else 10**6)
    delays_a = np.array(delays)
    false_rate = float(any_alarm.mean())
    within = float((delays_a <= 1).mean())  # the evening it started or the next: 2 days
    return [
        (
            "drift (change test, 9 features), no drift: P(any alert in a half-year)",
            f"{false_rate:.3f}",
            "<= 0.05",
            false_rate <= 0.05,
        ),
        (
            "drift, ph +0.5 sd on every sensor: P(alert within 2 days)",
            f"{within:.3f} (median delay {np.median(delays_a):.0f} d)",
            ">= 0.90",
            within >= 0.9,
        ),
    ]


# --- live precision -----------------------------------------------------------------------------


def _centre(precision: float, effects: np.ndarray) -> float:
    """The logit centre whose sensors average ``precision`` (bisection)."""
    lo, hi = -6.0, 6.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expit(mid + effects).mean() < precision else (lo, mid)
    return (lo + hi) / 2


def lab_calls(
    rng: np.random.Generator, weeks: int, precision_by_week: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(confirmed per call, day of each call) for one half-year: 10 sensor visits a week,
    5 potable calls checked per visit, a sensor's precision its own."""
    effects = rng.normal(0, 0.5, SENSORS)
    centres = {p: _centre(p, effects) for p in set(precision_by_week)}
    confirmed, days = [], []
    for week in range(weeks):
        centre = centres[precision_by_week[week]]
        for sensor in rng.choice(SENSORS, 10, replace=False):
            day = week * 7 + int(rng.integers(7))
            p = expit(centre + effects[sensor])
            confirmed += list(rng.random(5) < p)
            days += [day] * 5
    order = np.argsort(days, kind="stable")
    return np.asarray(confirmed)[order], np.asarray(days)[order]


def flags_by_day(confirmed: np.ndarray, days: np.ndarray, total_days: int) -> np.ndarray:
    """The CUSUM rule at each evening: flagged when the statistic after the day's last call is
    at or above the limit (what quality control stores that evening)."""
    path = np.asarray(
        live_precision.cusum(
            confirmed.tolist(),
            live_precision.DEFAULT_EXPECTED_PRECISION,
            0.60,
        )
    )
    out = np.zeros(total_days, dtype=bool)
    last = np.searchsorted(days, np.arange(total_days), side="right") - 1
    has = last >= 0
    out[has] = path[last[has]] >= live_precision.DEFAULT_ALARM_LIMIT
    return out


def old_flags_by_day(confirmed: np.ndarray, days: np.ndarray, total_days: int) -> np.ndarray:
    """The rule before issue 31, every evening: the ISO week so far or all calls flagged when
    >= 20 calls and the one-sided 95% Clopper-Pearson upper bound < 0.60."""
    out = np.zeros(total_days, dtype=bool)
    tp_cum = np.concatenate([[0], np.cumsum(confirmed)])
    for day in range(total_days):
        upto = int(np.searchsorted(days, day, side="right"))
        week_from = int(np.searchsorted(days, day - day % 7, side="left"))
        for tp, n in ((tp_cum[upto], upto), (tp_cum[upto] - tp_cum[week_from], upto - week_from)):
            if n >= 20 and tp < n:
                bound = float(beta_distribution.ppf(0.95, tp + 1, n - tp))
                if bound < 0.60:
                    out[day] = True
    return out


def live_rows(trials: int, rng: np.random.Generator) -> list[tuple[str, str, str, bool]]:
    weeks, total_days, drop_week = 26, 26 * 7, 8
    false_new = false_old = 0
    delays = []
    flagged_before_drop = 0
    for _ in range(trials):
        confirmed, days = lab_calls(rng, weeks, [0.70] * weeks)
        false_new += flags_by_day(confirmed, days, total_days).any()
        if _ < trials // 4:  # the old rule is slow to evaluate: a quarter of the trials
            false_old += old_flags_by_day(confirmed, days, total_days).any()
        precision = [0.70] * drop_week + [0.55] * (weeks - drop_week)
        confirmed, days = lab_calls(rng, weeks, precision)
        flags = flags_by_day(confirmed, days, total_days)
        if flags[: drop_week * 7].any():
            flagged_before_drop += 1
            continue
        after = np.flatnonzero(flags[drop_week * 7 :])
        delays.append(int(after[0]) if after.size else 10**6)
    delays_a = np.array(delays)
    within = float((delays_a < 28).mean())
    false_rate = false_new / trials
    return [
        (
            "live precision (CUSUM), true 0.70: P(any flag in a half-year)",
            f"{false_rate:.3f}",
            "<= 0.05",
            false_rate <= 0.05,
        ),
        (
            "  the rule before issue 31, same calls: P(any flag in a half-year)",
            f"{false_old / max(1, trials // 4):.3f}",
            "<= 0.05",
            false_old / max(1, trials // 4) <= 0.05,
        ),
        (
            f"live precision 0.70 -> 0.55 (week 9): P(flag within 4 weeks) "
            f"[{flagged_before_drop} trials flagged before the drop left out]",
            f"{within:.3f} (median delay {np.median(delays_a):.0f} d)",
            ">= 0.80",
            within >= 0.8,
        ),
    ]


# --- promotion ----------------------------------------------------------------------------------

QUARTER = decision.QUARTER_DAYS
PROMOTION_FLOOR = 0.2
CHAMPION_PRECISION = 0.70
CHALLENGER_PRECISIONS = (0.75, 0.80, 0.85)
CALL_RECALL = 0.25  # the models' recall: the pipeline's threshold aims at ~0.24 out of fold
CALLS_PER_WEEK = 50  # lab-checked potable calls a week (the live-precision deployment above)
TEST_FRACTION = 0.2


def real_scores(grid: str, cache: Path | None) -> dict[str, np.ndarray]:
    """The pipeline's split of the project's data set (seed 42, 20% held out), every family
    fitted on the training part by training/ (grid search, calibration, CV selection) and the
    challenger chosen by the promote rule - twice: with the pipeline's CV seed, and again with
    another (other folds, other estimator seeds), as the next day's run on unchanged data would.
    Returns both models' served P(potable) on the held-out rows and their labels (cached)."""
    if cache is not None and cache.exists():
        return dict(np.load(cache))
    from potability.seed import load_training_rows
    from training import modeling
    from training.candidates import fit_candidates
    from training.evaluation import positive_proba
    from training.split import split

    parts = split(load_training_rows(), TEST_FRACTION, 42)
    x = parts.test[list(FEATURE_NAMES)].astype(float)
    out: dict[str, np.ndarray] = {"y": parts.test["potability"].astype(int).to_numpy()}
    for name, cv_seed in (("champion", None), ("challenger", 1042)):
        config = modeling.TrainingConfig(seed=42, cv_seed=cv_seed)
        fitted = fit_candidates(parts.train, grid, config)
        chosen = decision.choose_challenger(
            [
                {
                    "cv_score": c.cv_score,
                    "cv_recall": c.selection.recall,
                    "cv_precision": c.selection.precision,
                    "fitted": c,
                }
                for c in fitted
            ]
        )["fitted"]
        out[name] = positive_proba(chosen.model, x)
        out[f"{name}_family"] = np.array(chosen.family)
        print(f"  {name}: {chosen.family} (cv seed {config.fold_seed})", flush=True)
    if cache is not None:
        np.savez(cache, **out)
    return out


def at_recall(y: np.ndarray, proba: np.ndarray, recall: float) -> np.ndarray:
    """The model's potable calls at the highest threshold whose recall on the pool reaches
    ``recall`` (real scores; the pipeline tunes at ~0.24 out of fold)."""
    for t in np.unique(proba)[::-1]:
        calls = proba >= t
        if (calls & (y == 1)).sum() / (y == 1).sum() >= recall:
            return calls.astype(int)
    raise RuntimeError(f"no threshold reaches recall {recall}")


def with_precision(
    y: np.ndarray, calls: np.ndarray, target: float, rng: np.random.Generator
) -> np.ndarray:
    """``calls`` with wrong potable calls withdrawn (or, if it is above ``target``, added on
    non-potable rows it did not call), drawn at random, until its precision on the pool is
    ``target``: the same right calls and more or fewer wrong ones - simulated, as the models of
    this split sit at ~0.65-0.72 at recall 0.25 and none reaches 0.85 on this data set
    (AUC ~0.69)."""
    tp = int((calls & (y == 1)).sum())
    wrong = np.flatnonzero((calls == 1) & (y == 0))
    keep = round(tp * (1 - target) / target)
    out = calls.copy()
    if keep <= len(wrong):
        out[rng.choice(wrong, len(wrong) - keep, replace=False)] = 0
    else:
        spare = np.flatnonzero((calls == 0) & (y == 0))
        out[rng.choice(spare, keep - len(wrong), replace=False)] = 1
    return out


def cell_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, rng: np.random.Generator, resamples: int = 2000
) -> Evidence:
    """The shares ``paired_bootstrap`` reports (challenger ``a`` more precise, at the floor,
    both, champion ``b`` at the floor) in ``resamples`` paired resamples, from the 8
    (label, call a, call b) cell counts: resampling rows with replacement is a
    multinomial draw of the cells, so this is the paired bootstrap's distribution (not its
    random numbers) at a fraction of the cost - for the design comparison only; checked
    against training.evaluation.paired_bootstrap in ``promotion_rows``."""
    cell = y * 4 + a * 2 + b
    counts = np.bincount(cell, minlength=8)
    draws = rng.multinomial(len(y), counts / counts.sum(), size=resamples)
    pos = draws[:, 4:].sum(axis=1)
    a_tp, b_tp = draws[:, 6] + draws[:, 7], draws[:, 5] + draws[:, 7]
    a_calls, b_calls = a_tp + draws[:, 2] + draws[:, 3], b_tp + draws[:, 1] + draws[:, 3]
    pa = np.divide(a_tp, a_calls, out=np.zeros(resamples), where=a_calls > 0)
    pb = np.divide(b_tp, b_calls, out=np.zeros(resamples), where=b_calls > 0)
    ra = np.divide(a_tp, pos, out=np.zeros(resamples), where=pos > 0)
    rb = np.divide(b_tp, pos, out=np.zeros(resamples), where=pos > 0)
    better, meets = pa > pb, ra >= PROMOTION_FLOOR
    return Evidence(
        0.0,
        0.0,
        0.0,
        float(np.mean(better)),
        resamples,
        float(np.mean(better & meets)),
        float(np.mean(meets)),
        float(np.mean(rb >= PROMOTION_FLOOR)),
    )


def first_promotion(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    rows_by_day: list[np.ndarray],
    look_days: int,
    confidence: float,
    evidence_on: Any,
    phase: float,
    before: bool = False,
) -> int | None:
    """The day (0-89) of the quarter's first promotion under a look schedule, or None: the
    real rule (training.decision.is_look and decide) on each day's held-out rows. The
    challenger is there from day 0; the last look before it was ``1 - phase`` of a spacing
    earlier (``phase`` uniform in [0, 1): the schedule does not wait for a better model).
    ``before``: the rule before issue 31 instead (more precise AND at the floor jointly in
    ``confidence`` of the resamples, on every run)."""
    start = date(2026, 1, 1)
    last: date | None = start - timedelta(days=look_days - int(phase * look_days))
    none = Scores(0, 0, 0, 0, 0, 0, 0.5, 0, 0)  # decide reads only whether a champion exists
    for day, rows in enumerate(rows_by_day):
        today = start + timedelta(days=day)
        look = decision.is_look(today, last, look_days)
        if not look:
            continue
        last = today
        ev = evidence_on(day, y[rows], challenger[rows], champion[rows])
        if before:
            floor_branch = ev.champion_meets_floor <= 1 - confidence and (
                ev.challenger_meets_floor >= 0.5
            )
            if ev.joint_probability >= confidence or floor_branch:
                return day
        elif decision.decide(none, none, ev, PROMOTION_FLOOR, confidence) == (
            decision.CHALLENGER_WINS
        ):
            return day
    return None


def _cell_evidence(rng: np.random.Generator) -> Any:
    def evidence(day: int, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> Evidence:
        return cell_bootstrap(y, a, b, rng)

    return evidence


def _real_evidence(day: int, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> Evidence:
    return paired_bootstrap(y, a, b, recall_floor=PROMOTION_FLOOR)


def quarter_rows(pool: int, start_rows: int, per_day: float, rng: np.random.Generator) -> list:
    """Indices into the pool of each day's held-out rows: ``start_rows`` at the quarter's
    start, ``per_day`` more each day (Poisson), all drawn from the pool with replacement."""
    rows = list(rng.integers(0, pool, start_rows))
    out = []
    for _ in range(QUARTER):
        out.append(np.asarray(rows))
        rows += list(rng.integers(0, pool, rng.poisson(per_day)))
    return out


DESIGNS = (
    ("the rule before: every run, joint 0.9", 1, 0.9, True),
    ("weekly looks, joint (floor at the look's level)", 7, decision.look_confidence(0.05, 7), True),
    ("daily looks, Bonferroni over 90", 1, decision.look_confidence(0.05, 1), False),
    ("weekly looks, Bonferroni over 13 (default)", 7, decision.look_confidence(0.05, 7), False),
    ("fortnightly looks, Bonferroni over 7", 14, decision.look_confidence(0.05, 14), False),
    ("monthly looks, Bonferroni over 3", 30, decision.look_confidence(0.05, 30), False),
    ("one look a quarter, at 0.95", 90, decision.look_confidence(0.05, 90), False),
)


def _summary(days: list[int | None]) -> tuple[float, str]:
    hit = [d for d in days if d is not None]
    p = len(hit) / len(days)
    median = float(np.median([d if d is not None else 10**6 for d in days]))
    return p, (f"{median:.0f} d" if median < QUARTER else "> 90 d")


def promotion_rows(
    trials: int, design_trials: int, grid: str, cache: Path | None, rng: np.random.Generator
) -> list[tuple[str, str, str, bool]]:
    print(f"promotion: real models (grid {grid!r}), held-out rows arriving day by day", flush=True)
    scores = real_scores(grid, cache)
    y = scores["y"]
    fixed = np.random.default_rng(31)  # the two models' withdrawn calls, fixed for the bench
    champion = with_precision(
        y, at_recall(y, scores["champion"], CALL_RECALL), CHAMPION_PRECISION, fixed
    )
    # no better: at most the champion's precision on the pool (integer counts: never above)
    achieved = float(y[champion == 1].mean())
    equal = with_precision(y, at_recall(y, scores["challenger"], CALL_RECALL), achieved, fixed)
    if y[equal == 1].mean() > achieved:
        spare = np.flatnonzero((equal == 0) & (y == 0))
        equal[fixed.choice(spare)] = 1
    call_share = float(champion.mean())
    samples_per_day = CALLS_PER_WEEK / 7 / call_share
    per_day = samples_per_day * TEST_FRACTION
    start_rows = len(y)
    both = (champion == 1) & (equal == 1)
    print(
        f"  pool: {len(y)} held-out rows ({int(y.sum())} potable); champion "
        f"{scores['champion_family']} precision {y[champion == 1].mean():.3f} recall "
        f"{champion[y == 1].mean():.3f}; equal challenger {scores['challenger_family']} "
        f"precision {y[equal == 1].mean():.3f} recall {equal[y == 1].mean():.3f}; "
        f"{both.sum()} of their {champion.sum()} / {equal.sum()} potable calls shared\n"
        f"  arrivals: the champion calls {call_share:.1%} of samples potable, so "
        f"{CALLS_PER_WEEK} lab-checked potable calls a week are {samples_per_day:.0f} lab "
        f"samples a day, {per_day:.1f} of them held out; the quarter starts with "
        f"{start_rows} held-out rows and ends with ~{start_rows + per_day * QUARTER:.0f}",
        flush=True,
    )
    # the cell bootstrap is the paired bootstrap's distribution: check once on real rows
    check_rows = quarter_rows(len(y), start_rows, per_day, rng)[-1]
    real = _real_evidence(0, y[check_rows], equal[check_rows], champion[check_rows])
    cells = cell_bootstrap(y[check_rows], equal[check_rows], champion[check_rows], rng)
    for share in ("probability", "joint_probability", "challenger_meets_floor"):
        assert abs(getattr(real, share) - getattr(cells, share)) < 0.05, (real, cells)

    def challenger_for(target: float | None) -> np.ndarray:
        return equal if target is None else with_precision(y, equal, target, rng)

    out: list[tuple[str, str, str, bool]] = []
    # the design comparison: the same trials under every design (cell bootstrap)
    table = {}
    for target in (None, *CHALLENGER_PRECISIONS):
        results: dict[str, list[int | None]] = {name: [] for name, *_ in DESIGNS}
        for _ in range(design_trials):
            rows = quarter_rows(len(y), start_rows, per_day, rng)
            challenger = challenger_for(target)
            phase = float(rng.random())
            memo: dict[int, Evidence] = {}
            cell_rng = _cell_evidence(rng)

            def shared(
                day: int, yy: Any, a: Any, b: Any, memo: Any = memo, f: Any = cell_rng
            ) -> Any:
                if day not in memo:  # one bootstrap a day, shared by the designs
                    memo[day] = f(day, yy, a, b)
                return memo[day]

            for name, look_days, confidence, before in DESIGNS:
                results[name].append(
                    first_promotion(
                        y, champion, challenger, rows, look_days, confidence, shared, phase, before
                    )
                )
        table[target] = results
    print(f"  design comparison ({design_trials} quarters per cell, cell bootstrap):")
    print(
        f"  {'design':50} {'equal: P(promoted)':>19}"
        + "".join(f"  {f'{t:.2f}: P / median':>19}" for t in CHALLENGER_PRECISIONS)
    )
    for name, *_ in DESIGNS:
        cells_text = [f"{_summary(table[None][name])[0]:.3f}"] + [
            "{:.3f} / {}".format(*_summary(table[t][name])) for t in CHALLENGER_PRECISIONS
        ]
        print(f"  {name:50} {cells_text[0]:>19}" + "".join(f"  {c:>19}" for c in cells_text[1:]))

    # the default rule on the real paired bootstrap
    look_days, confidence = 7, decision.look_confidence(0.05, 7)
    for target in (None, *CHALLENGER_PRECISIONS):
        days = []
        for _ in range(trials):
            rows = quarter_rows(len(y), start_rows, per_day, rng)
            days.append(
                first_promotion(
                    y,
                    champion,
                    challenger_for(target),
                    rows,
                    look_days,
                    confidence,
                    _real_evidence,
                    float(rng.random()),
                )
            )
        p, median = _summary(days)
        if target is None:
            out.append(
                (
                    f"promotion (weekly looks), equal challenger (0.70 vs 0.70): "
                    f"P(promoted in a quarter) [{trials} quarters]",
                    f"{p:.3f}",
                    "<= 0.05",
                    p <= 0.05,
                )
            )
        else:
            out.append(
                (
                    f"promotion (weekly looks), challenger {target:.2f} vs 0.70: "
                    "P(promoted within the quarter)",
                    f"{p:.3f} (median {median})",
                    "reported",
                    True,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--trials", type=int, default=1000, help="live-precision half-years")
    parser.add_argument("--drift-trials", type=int, default=200, help="drift half-years")
    parser.add_argument(
        "--promotion-trials", type=int, default=200, help="quarters per promotion row (0: none)"
    )
    parser.add_argument(
        "--design-trials", type=int, default=500, help="quarters per cell of the design table"
    )
    parser.add_argument("--grid", default="default", help="the promotion part's training grid")
    parser.add_argument(
        "--scores-cache",
        type=Path,
        default=None,
        help="file keeping the promotion part's real model scores between runs (.npz)",
    )
    parser.add_argument("--only-promotion", action="store_true", help="skip the alerting rules")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    rng = np.random.default_rng(2026)
    started = time.perf_counter()
    rows = []
    if not args.only_promotion:
        rows += live_rows(args.trials, rng) + drift_rows(args.drift_trials, rng)
    if args.promotion_trials:
        rows += promotion_rows(
            args.promotion_trials, args.design_trials, args.grid, args.scores_cache, rng
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'rule and condition':<{width}}  {'measured':>28}  {'target':>8}")
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>28}  {target:>8}  {'MET' if met else 'MISSED'}")
    print(
        f"({time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
