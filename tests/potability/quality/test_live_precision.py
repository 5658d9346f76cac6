"""Quality control: hand-computed matches and metrics, then the job on the real database."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from potability.config import Settings
from potability.features import FEATURE_COLUMNS
from potability.quality import job as qc_job
from potability.quality.live_precision import (
    ALL_WEEKS,
    DEFAULT_ALARM_LIMIT,
    Inference,
    LabSample,
    Match,
    cusum,
    iso_week,
    live_metrics,
    match_samples,
    precision_lower_bound,
    precision_upper_bound,
)

UTC = UTC
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)  # a Tuesday, ISO week 2025-W10
WINDOW = timedelta(minutes=30)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def inference(
    id_: int, sensor: str, minutes: float, predicted: int, version: str = "1"
) -> Inference:
    return Inference(id_, sensor, at(minutes), predicted, version)


def sample(id_: int, sensor: str | None, minutes: float, potable: int) -> LabSample:
    return LabSample(id_, sensor, at(minutes), potable)


INFERENCES = [
    inference(1, "A", 0, 1),
    inference(2, "A", 20, 0),
    inference(3, "A", 60, 1),
    inference(4, "B", 5, 1),
]


def paired(matches: list[Match]) -> dict[int, int]:
    return {m.sample.id: m.inference.id for m in matches}


def test_each_sample_confirms_the_nearest_inference_of_its_sensor() -> None:
    samples = [sample(10, "A", 12, 1)]  # 12 min after #1, 8 min before #2
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {10: 2}


def test_equal_distance_goes_to_the_earlier_inference() -> None:
    samples = [sample(11, "A", 10, 1)]  # 10 min from #1 and from #2
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {11: 1}


def test_equal_time_goes_to_the_smaller_id() -> None:
    twins = [inference(8, "C", 0, 0), inference(7, "C", 0, 1)]
    assert paired(match_samples([sample(1, "C", 3, 1)], twins, WINDOW)) == {1: 7}


def test_the_window_is_inclusive_at_both_ends_and_nothing_beyond() -> None:
    samples = [
        sample(12, "A", 90, 1),  # exactly 30 min after #3: matched
        sample(13, "A", 90.5, 1),  # 30.5 min after #3: nothing
        sample(14, "A", -30, 0),  # exactly 30 min before #1: matched
    ]
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {12: 3, 14: 1}


def test_other_sensors_and_samples_without_sensor_confirm_nothing() -> None:
    samples = [sample(15, "B", 40, 1), sample(16, None, 0, 1), sample(17, "Z", 0, 1)]
    # #4 of sensor B is 35 min away; A's inferences are closer in time but another sensor
    assert match_samples(samples, INFERENCES, WINDOW) == []


def test_no_two_samples_confirm_the_same_inference() -> None:
    samples = [sample(18, "B", 0, 1), sample(19, "B", 11, 0)]  # 5 vs 6 min from #4
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {18: 4}


def test_one_to_one_gives_a_sample_its_next_nearest_free_inference() -> None:
    # #18 at 12 min: nearest #2 (8 min); #19 at 19 min: nearest #2 too (1 min) - #19 gets
    # it (the nearer pair goes first) and #18 falls back to #1 (12 min)
    samples = [sample(18, "A", 12, 1), sample(19, "A", 19, 0)]
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {19: 2, 18: 1}


def test_equal_distances_go_to_the_earlier_sample() -> None:
    samples = [sample(21, "B", 10, 0), sample(20, "B", 0, 1)]  # both 5 min from #4
    assert paired(match_samples(samples, INFERENCES, WINDOW)) == {20: 4}


def test_a_batch_is_matched_on_each_readings_measurement_time() -> None:
    # one request: three readings share inferred_at (arrival, 40 min) but were measured
    # at 0, 10 and 20 min; the sample at 11 min confirms the reading measured at 10
    batch = [Inference(30 + k, "D", at(40), k % 2, "1", measured_at=at(10 * k)) for k in range(3)]
    assert paired(match_samples([sample(22, "D", 11, 1)], batch, WINDOW)) == {22: 31}
    # without measured_at the arrival counts: the tie goes to the smaller id, not reading "0"
    # by position
    arrival = [Inference(40 - k, "D", at(40), 1, "1") for k in range(3)]
    assert paired(match_samples([sample(23, "D", 45, 1)], arrival, WINDOW)) == {23: 38}


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="the match window cannot be negative"):
        match_samples([], [], timedelta(minutes=-1))


def test_iso_weeks_are_utc_and_cross_years() -> None:
    assert iso_week(datetime(2024, 12, 30, 0, 0, tzinfo=UTC)) == ("2025-W01", date(2024, 12, 30))
    # Sunday evening in New York is already Monday in UTC
    eastern = timezone(timedelta(hours=-5))
    assert iso_week(datetime(2025, 1, 5, 23, 30, tzinfo=eastern)) == ("2025-W02", date(2025, 1, 6))


def _matches(
    version: str, week_offset_days: int, tp: int, fp: int, fn: int, tn: int
) -> list[Match]:
    """Hand-made matches with the given confusion counts, all in one week."""
    out = []
    n = 0
    for predicted, actual, count in ((1, 1, tp), (1, 0, fp), (0, 1, fn), (0, 0, tn)):
        for _ in range(count):
            n += 1
            t = T0 + timedelta(days=week_offset_days, minutes=n)
            out.append(
                Match(LabSample(n, "A", t, actual), Inference(n, "A", t, predicted, version))
            )
    return out


def test_live_precision_and_recall_per_version_and_week() -> None:
    week10 = _matches("1", 0, tp=3, fp=1, fn=2, tn=4)  # precision 3/4, recall 3/5
    week11 = _matches("1", 7, tp=1, fp=9, fn=0, tn=1)  # precision 1/10, recall 1/1
    other = _matches("2", 0, tp=0, fp=0, fn=1, tn=2)  # no potable call: precision undefined
    rows = live_metrics(week10 + week11 + other, precision_floor=0.6, limit=3.0)
    by_key = {(r.model_version, r.period): r for r in rows}
    assert [(r.model_version, r.period) for r in rows] == [
        ("1", "2025-W10"),
        ("1", "2025-W11"),
        ("1", ALL_WEEKS),
        ("2", "2025-W10"),
        ("2", ALL_WEEKS),
    ]
    w10 = by_key["1", "2025-W10"]
    assert (
        w10.matches,
        w10.true_positives,
        w10.false_positives,
        w10.false_negatives,
        w10.true_negatives,
    ) == (10, 3, 1, 2, 4)
    assert w10.precision == pytest.approx(0.75) and w10.recall == pytest.approx(0.6)
    assert w10.week_start == date(2025, 3, 3)
    # week 10's calls in time order: 3 confirmed, 1 refuted - the CUSUM ends at 0.288
    assert w10.alarm_statistic == pytest.approx(UP) and not w10.flagged
    w11 = by_key["1", "2025-W11"]
    assert w11.precision == pytest.approx(0.1) and w11.recall == pytest.approx(1.0)
    assert w11.precision_low < 0.1 < w11.precision_high < 0.7  # the 95% interval is reported
    # then 1 confirmed (0.288 - 0.154), 9 refuted in a row: 2.72 < 3, not flagged
    assert w11.alarm_statistic == pytest.approx(10 * UP + DOWN) and not w11.flagged
    total = by_key["1", ALL_WEEKS]
    assert (total.matches, total.true_positives, total.false_positives) == (21, 4, 10)
    assert total.precision == pytest.approx(4 / 14) and total.recall == pytest.approx(4 / 6)
    assert total.week_start is None and total.alarm_statistic == pytest.approx(10 * UP + DOWN)
    # the calls since it last stood at 0 (after week 10's third confirmed call): FP, TP, 9 FP
    assert (total.alarm_calls, total.alarm_confirmed) == (11, 1)
    v2 = by_key["2", ALL_WEEKS]
    assert v2.precision is None and v2.recall == pytest.approx(0.0) and not v2.flagged
    assert v2.alarm_statistic is None
    # a lower limit flags the version, and the weeks where the statistic reached it
    flagged = {
        (r.model_version, r.period): r.flagged
        for r in live_metrics(week10 + week11, 0.6, limit=2.5)
    }
    assert flagged == {("1", "2025-W10"): False, ("1", "2025-W11"): True, ("1", ALL_WEEKS): True}


UP, DOWN = math.log(0.4 / 0.3), math.log(0.6 / 0.7)
"""The CUSUM's steps at floor 0.6, expected 0.7: a refuted call, a confirmed one."""


def test_the_cusum_is_the_log_likelihood_ratio_of_the_floor_kept_above_zero() -> None:
    path = cusum([False, False, True, True, True, True, False], expected=0.7, floor=0.6)
    assert path == pytest.approx(
        [UP, 2 * UP, 2 * UP + DOWN, 2 * UP + 2 * DOWN, 2 * UP + 3 * DOWN, 0.0, UP]
    )
    assert cusum([], 0.7, 0.6) == []


def test_a_model_at_its_expected_precision_keeps_the_statistic_near_zero() -> None:
    # 7 of 10 confirmed, repeated for a year of weekly batches: never near the limit
    calls = ([True] * 7 + [False] * 3) * 260
    assert max(cusum(calls, 0.7, 0.6)) < DEFAULT_ALARM_LIMIT


def _calls(version: str, day: int, confirmed: list[bool]) -> list[Match]:
    """Potable calls a minute apart from ``day``, each confirmed by the lab or not."""
    out = []
    for k, ok in enumerate(confirmed):
        n = day * 10_000 + k
        t = T0 + timedelta(days=day, minutes=k)
        out.append(Match(LabSample(n, "A", t, int(ok)), Inference(n, "A", t, 1, version)))
    return out


def test_a_drop_is_flagged_and_a_recovery_clears_the_flag() -> None:
    """The flag is the state of the sequential test: on while the evidence of a drop lasts."""
    good = _calls("1", 0, ([True] * 7 + [False] * 3) * 10)  # 0.70, peak 0.86
    rows = live_metrics(good, 0.6)
    assert not rows[-1].flagged and rows[-1].alarm_statistic == pytest.approx(3 * UP)
    # 40 calls at 0.25: +0.709 every four calls, past 7.0 within them
    bad = _calls("1", 7, [True, False, False, False] * 10)
    rows = live_metrics(good + bad, 0.6)
    assert rows[-1].flagged and rows[-1].alarm_statistic == pytest.approx(
        3 * UP + 10 * (DOWN + 3 * UP)
    )
    assert rows[-2].flagged and not rows[-3].flagged  # the week it happened in, not before
    assert (rows[-1].alarm_calls, rows[-1].alarm_confirmed) == (43, 10)
    # a run of confirmed calls afterwards brings it back under the limit
    recovered = _calls("1", 14, [True] * 100)
    rows = live_metrics(good + bad + recovered, 0.6)
    assert not rows[-1].flagged and rows[-1].alarm_statistic == 0.0


def test_a_point_estimate_under_the_floor_is_not_evidence() -> None:
    # 1/4 = 0.25 < 0.6, but four calls are 4 x 0.288 at most: far from the limit
    rows = live_metrics(_matches("1", 0, tp=1, fp=3, fn=0, tn=5), 0.6)
    assert rows[-1].precision == pytest.approx(0.25) and not rows[-1].flagged
    assert precision_upper_bound(1, 4) == pytest.approx(0.7514, abs=1e-4)


def test_clopper_pearson_bounds_by_hand() -> None:
    # 0 of n: upper = 1 - 0.05 ** (1/n); n of n: lower = 0.05 ** (1/n)
    assert precision_upper_bound(0, 10) == pytest.approx(1 - 0.05**0.1)
    assert precision_lower_bound(10, 10) == pytest.approx(0.05**0.1)
    assert precision_upper_bound(10, 10) == 1.0 and precision_lower_bound(0, 10) == 0.0
    assert precision_upper_bound(30, 60) > 0.6 > precision_upper_bound(25, 60)
    with pytest.raises(ValueError, match="true positives <= predicted positive"):
        precision_upper_bound(3, 2)


@pytest.mark.parametrize(
    ("floor", "expected", "limit", "message"),
    [
        (0.0, 0.7, 6.5, "precision floor < expected precision"),
        (0.7, 0.7, 6.5, "precision floor < expected precision"),
        (0.6, 1.0, 6.5, "precision floor < expected precision"),
        (0.6, 0.7, 0.0, "the alarm limit must be positive"),
    ],
)
def test_bad_settings_are_refused(
    floor: float, expected: float, limit: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        live_metrics([], floor, expected, limit)


# --- the job on the real database ---------------------------------------------------------


def _insert_inference(
    cur,
    request_id: str,
    sensor: str,
    when: datetime,
    predicted: int,
    version: str,
    features: dict[str, float | None] | None = None,
) -> None:
    values = features or {}
    cols = ", ".join(FEATURE_COLUMNS)
    cur.execute(
        f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) "
        f"VALUES (%s, 0, %s, {', '.join(['%s'] * len(FEATURE_COLUMNS))}, %s, %s, "
        "'water-potability', %s, 'test', %s, 1.0)",
        (
            request_id,
            sensor,
            *[values.get(c) for c in FEATURE_COLUMNS],
            predicted,
            0.9 if predicted else 0.1,
            version,
            when,
        ),
    )


def _insert_lab_sample(
    cur, sample_id: str, sensor: str | None, when: datetime, potable: int
) -> None:
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, sampled_at, "
        "submitted_by, source) VALUES (%s, 7.0, %s, %s, %s, 'lab-tester', 'lab')",
        (sample_id, potable, sensor, when),
    )


def test_the_job_stores_hand_computed_live_metrics_and_drift(clean_db, settings: Settings) -> None:
    conn = clean_db
    cur = conn.cursor()
    # the champion's run starts now (after the seed rows, before the lab rows inserted below,
    # so its training data is the seed); quality control runs a little later
    trained_at = datetime.now(UTC)
    now = trained_at + timedelta(minutes=5)
    base = now - timedelta(hours=3)
    run_id = "qc-test-champion"
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
    cur.execute(
        "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, decision, "
        "model_name, champion_version, champion_family, champion_precision) "
        "VALUES (%s, %s, %s, 'succeeded', 'first_champion', 'water-potability', 'qc7', 'rf', 0.8)",
        (run_id, trained_at, trained_at + timedelta(minutes=1)),
    )
    # sensor S1: predictions at base+0 (potable), +20 (not), +40 (potable), +100 (potable)
    for k, (minutes, predicted) in enumerate([(0, 1), (20, 0), (40, 1), (100, 1)]):
        _insert_inference(
            cur, f"qc-r{k}", "S1", base + timedelta(minutes=minutes), predicted, "qc7", {"ph": 13.9}
        )
    _insert_inference(cur, "qc-r9", "S2", base, 1, "qc7", {"ph": 13.9})
    # 60 more recent readings with an extreme pH, far from any lab sample (drift, no matches)
    for k in range(60):
        _insert_inference(
            cur, f"qc-d{k}", "S9", base - timedelta(hours=20, minutes=k), 0, "qc7", {"ph": 13.9}
        )
    samples = [
        ("qc-s1", "S1", base + timedelta(minutes=2), 1),  # -> +0 potable: TP
        ("qc-s2", "S1", base + timedelta(minutes=19), 1),  # -> +20 not: FN
        ("qc-s3", "S1", base + timedelta(minutes=45), 0),  # -> +40 potable: FP
        ("qc-s4", "S1", base + timedelta(minutes=131), 1),  # +100 is 31 min away: unmatched
        ("qc-s5", None, base, 1),  # no sensor: unmatched
        ("qc-s6", "S2", base - timedelta(minutes=30), 0),  # -> S2 at base: FP (window edge)
    ]
    for s in samples:
        _insert_lab_sample(cur, *s)
    conn.commit()

    result = qc_job.run(conn, settings.with_(qc_precision_floor=0.5, qc_min_matches=3), now)

    assert result.lab_samples == 6 and len(result.matches) == 4
    assert result.champion_version == "qc7"
    cur.execute(
        "SELECT period, matches, true_positives, false_positives, false_negatives, "
        "true_negatives, live_precision, live_recall, flagged FROM water.qc_live_metrics "
        "WHERE run_id = %s AND model_version = 'qc7' AND period = 'all'",
        (result.run_id,),
    )
    period, matches, tp, fp, fn, tn, precision, recall, flagged = cur.fetchone()
    assert (matches, tp, fp, fn, tn) == (4, 1, 2, 1, 0)
    assert precision == pytest.approx(1 / 3) and recall == pytest.approx(1 / 2)
    # 1/3 < 0.5, but three calls (TP, FP, FP in time order) leave the CUSUM at 1.02, far
    # under its limit of 7.0: no evidence of a drop
    assert not flagged
    cur.execute(
        "SELECT lab_samples, matched_samples, precision_floor, min_matches, champion_version, "
        "drift_recent_rows, drift_reference_rows FROM water.qc_runs WHERE id = %s",
        (result.run_id,),
    )
    stored = cur.fetchone()
    cur.execute("SELECT count(*) FROM water.water_potability WHERE source = 'seed'")
    assert list(stored) == [6, 4, 0.5, 3, "qc7", 65, cur.fetchone()[0]]
    cur.execute(
        "SELECT feature, status, psi, recent_rows FROM water.qc_drift WHERE run_id = %s",
        (result.run_id,),
    )
    drift = {f: (status, psi, rows) for f, status, psi, rows in cur.fetchall()}
    # far from the training data (PSI > 0.25) but no weeks before to change from: watch
    assert len(drift) == 9 and drift["ph"][0] == "watch" and drift["ph"][1] > 0.25
    assert drift["ph"][2] == 65
    # nothing else was measured: every other feature is all-missing, which is drift too
    assert drift["Sulfate"][0] == "drift"
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
    conn.commit()


def test_settings_read_the_quality_control_knobs() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.qc_match_window_minutes,
        defaults.qc_precision_floor,
        defaults.qc_min_matches,
        defaults.qc_drift_window_days,
        defaults.qc_precision_expected,
        defaults.qc_alarm_limit,
    ) == (30.0, 0.6, 20, 7.0, 0.7, 7.0)
    custom = Settings.from_env(
        {
            "QC_MATCH_WINDOW_MINUTES": "45",
            "QC_PRECISION_FLOOR": "0.75",
            "QC_MIN_MATCHES": "5",
            "QC_DRIFT_WINDOW_DAYS": "14",
            "QC_PRECISION_EXPECTED": "0.8",
            "QC_ALARM_LIMIT": "5",
        }
    )
    assert (
        custom.qc_match_window_minutes,
        custom.qc_precision_floor,
        custom.qc_min_matches,
        custom.qc_drift_window_days,
        custom.qc_precision_expected,
        custom.qc_alarm_limit,
    ) == (45.0, 0.75, 5, 14.0, 0.8, 5.0)


def test_the_qc_command_computes_and_stores_a_run(
    clean_db, stack_home, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from potability import cli

    cur = clean_db.cursor()
    cur.execute("SELECT coalesce(max(id), 0) FROM water.qc_runs")
    before = cur.fetchone()[0]
    clean_db.commit()
    monkeypatch.setenv("POTABILITY_HOME", str(stack_home))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("QC_MATCH_WINDOW_MINUTES", "15")
    assert cli.main(["qc"]) == 0
    out = capsys.readouterr().out
    cur.execute(
        "SELECT id, match_window_minutes, lab_samples FROM water.qc_runs WHERE id > %s", (before,)
    )
    ((run_id, window, lab),) = cur.fetchall()
    assert (window, lab) == (15.0, 0)
    assert f"quality control run {run_id}: 0 lab samples, 0 matched" in out
    assert "drift ph" in out


def test_fresh_precision_counts_only_the_champions_calls_on_fresh_samples() -> None:
    """Issue 23: the champion's figure on lab samples no promotion test used - its own potable
    calls only, fresh samples only, a two-sided 95% Clopper-Pearson interval, and 'not enough'
    below the minimum number of calls."""
    from potability.quality.live_precision import fresh_precision

    matches = []
    for k in range(30):  # version 2's potable calls: samples 0-29, 21 confirmed
        matches.append(Match(sample(k, "A", k, int(k < 21)), inference(100 + k, "A", k, 1, "2")))
    matches.append(Match(sample(30, "A", 30, 0), inference(130, "A", 30, 0, "2")))  # not potable
    matches.append(Match(sample(31, "A", 31, 0), inference(131, "A", 31, 1, "1")))  # other model
    fresh_ids = set(range(5, 32))  # 0-4: tested by a promotion (or older than the champion)

    got = fresh_precision(matches, "2", T0, fresh_ids, min_calls=20)
    assert (got.potable_calls, got.confirmed, got.enough) == (25, 16, True)
    assert got.precision == 16 / 25
    assert got.precision_low == pytest.approx(precision_lower_bound(16, 25, 0.975))
    assert got.precision_high == pytest.approx(precision_upper_bound(16, 25, 0.975))
    assert got.precision_low < 0.64 < got.precision_high

    few = fresh_precision(matches, "2", T0, set(range(20, 32)), min_calls=20)
    assert (few.potable_calls, few.confirmed, few.enough) == (10, 1, False)
    none = fresh_precision(matches, "9", T0, fresh_ids, min_calls=20)
    assert (none.potable_calls, none.precision, none.precision_low, none.enough) == (
        0,
        None,
        None,
        False,
    )
