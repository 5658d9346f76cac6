"""False alarms and detection of the alerting rules at deployed volume (issues 23 and 31).

    .venv/bin/python bench/statistics_bench.py [--trials 1000] [--drift-trials 200]

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
* Promotion is not simulated here (issue 31's promotion part is not done: see
  docs/statistics.md); the recall floor has its own bench, bench/recall_floor_bench.py.

Prints one table: per rule and condition the false alarms per half-year, or the detection
probability within the target time and the median delay, with the target and MET / MISSED.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import beta as beta_distribution

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from potability.features import FEATURE_NAMES  # noqa: E402
from potability.quality import drift, live_precision  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="live-precision half-years")
    parser.add_argument("--drift-trials", type=int, default=200, help="drift half-years")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    rng = np.random.default_rng(2026)
    started = time.perf_counter()
    rows = live_rows(args.trials, rng) + drift_rows(args.drift_trials, rng)
    width = max(len(r[0]) for r in rows)
    print(f"{'rule and condition':<{width}}  {'measured':>28}  {'target':>8}")
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>28}  {target:>8}  {'MET' if met else 'MISSED'}")
    print(
        f"({time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} at the end)"
    )


if __name__ == "__main__":
    main()
