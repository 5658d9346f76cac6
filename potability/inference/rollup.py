"""The one home of the hourly inference rollups (``water.inference_hourly`` and
``water.inference_rolled_hours``, sql/009_inference_rollups.sql) and of every question the
status page asks about the inference log.

Why rollups: the status page shows a week of readings. Counted from the raw log, a view cost a
scan of the week (4.4 s at 2.3 M rows, issue 18); counted from per-hour, per-sensor, per-model-
version rows it costs the same at any traffic. Hours are rolled up once, after they ended (plus
:data:`GRACE` for writers still committing: ``inferred_at`` is their transaction's start), by
whoever needs them first - the status refresh (a bounded number per call), ``potability qc``
(the whole drift window) - under an advisory lock in the database, so concurrent readers never
count an hour twice. Predict's write path is untouched.

Every answer here is exact whatever has been rolled up: an hour of the window that is not
rolled up yet (the current one; older ones right after a deploy or a backfill) is counted from
the raw rows, in the same statement. :func:`forget` re-opens hours whose raw rows changed.

Readers get typed rows (:class:`InferenceActivity`); :mod:`functions.status` maps them to JSON.

It also owns ``water.inference_quarantine`` (sql/018, issue 29): a reading whose drift cells
cannot be computed is found by bisection (:func:`quarantine_failing`), kept in the log, left
out of every cell count and named in the job's alert, so it never stops a rollup again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from potability.db import Connection, sqlstate
from potability.features import FEATURE_COLUMNS, FEATURES, SMOKE_SENSOR_LIKE

HOUR = timedelta(hours=1)
GRACE = timedelta(minutes=2)
"""An hour is rolled up only this long after it ended: a predict transaction that started in it
(and stamped its rows with that start) has committed by then."""
DAY_HOURS = 24
WEEK_HOURS = 7 * 24
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_BIN = "date_bin(interval '1 hour', {col}, timestamptz '2000-01-01 00:00:00+00')"


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` is in (what ``date_bin`` computes in the database)."""
    return _EPOCH + ((moment - _EPOCH) // HOUR) * HOUR


def rollable_through(now: datetime) -> datetime:
    """The end of the newest hour that may be rolled up at ``now``."""
    return floor_hour(now - GRACE)


@dataclass(frozen=True)
class Count:
    """Readings and how many of them were called potable, for one key (an hour, a sensor, a
    model version)."""

    key: Any
    readings: int
    potable: int


@dataclass(frozen=True)
class WindowSummary:
    """Readings of ``[start, end]``; ``by_sensor`` busiest first (at most ``max_sensors``),
    ``by_model_version`` most readings first."""

    start: datetime
    end: datetime
    readings: int
    potable: int
    sensors: int
    by_sensor: list[Count]
    by_model_version: list[Count]


@dataclass(frozen=True)
class InferenceActivity:
    """What the status page shows of the log at ``now``. Windows are whole UTC hours, the
    current (partial) hour last: ``hourly`` has :data:`DAY_HOURS` entries (oldest first, keyed
    by the hour's start), ``daily`` :data:`WEEK_HOURS` / 24 entries of 24 hours each (keyed by
    their end); ``last_24h`` and ``last_7d`` sum them."""

    now: datetime
    hourly: list[Count]
    daily: list[Count]
    last_24h: WindowSummary
    last_7d: WindowSummary
    pending: tuple[datetime, ...] = ()
    """Complete hours with readings that are neither rolled up nor counted here (their
    readings are missing from every figure): empty when the answer is exact. Only a bounded
    reader (``max_raw_hours``) leaves hours pending - after a backfill, a deploy on a full log."""


def roll_up(
    conn: Connection, start: datetime, through: datetime, max_hours: int | None = None
) -> int:
    """Roll up the complete hours of ``[start, through)`` not rolled up yet (the oldest
    ``max_hours`` of them, if given); how many were. Runs in the caller's transaction."""
    cur = conn.cursor()
    cur.execute(
        "SELECT water.roll_up_inference_hours(%s, %s, %s)",
        (floor_hour(start), floor_hour(through), max_hours),
    )
    return int(cur.fetchone()[0])


def roll_up_cells(
    conn: Connection, start: datetime, through: datetime, max_hours: int | None = None
) -> int:
    """Fill the drift cells (sql/015) of the rolled-up hours of ``[start, through)`` that have
    none (the oldest ``max_hours`` of them, if given); how many were. Caller's transaction."""
    cur = conn.cursor()
    cur.execute(
        "SELECT water.roll_up_inference_cells(%s, %s, %s)",
        (floor_hour(start), floor_hour(through), max_hours),
    )
    return int(cur.fetchone()[0])


CATCH_UP_HOURS = 6
"""Hours :func:`catch_up` rolls up per transaction: bounded work per statement (~0.4 M
readings after a 10 M-reading backfill of a week), each batch committed."""
CELL_HOURS = 2
"""Hours whose drift cells :func:`catch_up` fills per transaction: ~23 us a reading measured
(docs/scale.md), so ~5.5 s at 120 k readings an hour - inside a connection's default 10 s
socket timeout."""


def catch_up(
    conn: Connection,
    now: datetime,
    days: float = WEEK_HOURS / 24,
    job: str = "maintenance",
    pace: Callable[[float], None] | None = None,
) -> int:
    """Roll up every complete hour of the last ``days`` (``potability qc``, the hourly
    maintenance, benches), :data:`CATCH_UP_HOURS` hours per transaction, so a long catch-up
    keeps what it did if it is interrupted or times out; then fill the drift cells (sql/015) of
    the rolled-up hours that have none yet, :data:`CELL_HOURS` hours per transaction. The
    status page rolls up counts only: cells cost too much for its statement timeout.

    A batch of cells that fails on a reading's values (SQLSTATE class 22, data exception) does
    not stop the job: the reading is found (:func:`quarantine_failing`), quarantined for
    ``job`` and the batch retried without it. ``pace`` is called with each batch's seconds
    (the maintenance sleeps in proportion, so predict keeps its share of the machine). Returns
    the hours whose counts it rolled up."""
    start = floor_hour(now - timedelta(days=days))
    through = rollable_through(now)
    done = 0
    while True:
        began = time.perf_counter()
        n = roll_up(conn, start, through, CATCH_UP_HOURS)
        conn.commit()
        if not n:
            break
        done += n
        if pace is not None:
            pace(time.perf_counter() - began)
    while True:
        began = time.perf_counter()
        try:
            filled = roll_up_cells(conn, start, through, CELL_HOURS)
        except Exception as exc:
            conn.rollback()
            if not (sqlstate(exc) or "").startswith("22"):
                raise
            if not quarantine_failing(conn, start, through, CELL_HOURS, job, type(exc).__name__):
                raise  # nothing to quarantine: not a reading's fault
            conn.commit()
            continue
        conn.commit()
        if not filled:
            return done
        if pace is not None:
            pace(time.perf_counter() - began)


QUARANTINE_STEP = "drift_cells"


def quarantine_failing(
    conn: Connection, start: datetime, through: datetime, hours: int, job: str, error_class: str
) -> int:
    """Find the readings whose drift cells cannot be computed in the next ``hours`` hours the
    cell rollup would fill, by bisecting each hour's id range (each probe one bounded range
    of one hour: ``water.inference_cells_fail``), and quarantine them; how many. In the
    caller's transaction."""
    cur = conn.cursor()
    cur.execute(
        "SELECT hour FROM water.inference_rolled_hours WHERE hour >= %s AND hour < %s "
        "AND NOT cells_rolled ORDER BY hour LIMIT %s",
        (floor_hour(start), floor_hour(through), hours),
    )
    found = 0
    for (hour,) in cur.fetchall():
        cur.execute(
            "SELECT min(id), max(id) + 1 FROM water.water_inferences "
            "WHERE inferred_at >= %s AND inferred_at < %s",
            (hour, hour + HOUR),
        )
        lo, hi = cur.fetchone()
        while lo is not None and _fails(cur, hour, lo, hi):
            while hi - lo > 1:  # invariant: [lo, hi) holds a failing reading
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if _fails(cur, hour, lo, mid) else (mid, hi)
            cur.execute(
                "INSERT INTO water.inference_quarantine (id, inferred_at, sensor_id, job, step, "
                "error_class) SELECT id, inferred_at, sensor_id, %s, %s, %s "
                "FROM water.water_inferences WHERE id = %s AND inferred_at >= %s "
                "AND inferred_at < %s ON CONFLICT DO NOTHING",
                (job, QUARANTINE_STEP, error_class, lo, hour, hour + HOUR),
            )
            found += 1
            cur.execute(
                "SELECT min(id), max(id) + 1 FROM water.water_inferences "
                "WHERE inferred_at >= %s AND inferred_at < %s",
                (hour, hour + HOUR),
            )
            lo, hi = cur.fetchone()
    return found


def _fails(cur: Any, hour: datetime, lo: int, hi: int) -> bool:
    cur.execute("SELECT water.inference_cells_fail(%s, %s, %s, %s)", (hour, hour + HOUR, lo, hi))
    return cur.fetchone()[0] is not None


@dataclass(frozen=True)
class Quarantined:
    """A reading in quarantine (what a job's alert names)."""

    id: int
    inferred_at: datetime
    sensor_id: str
    job: str
    step: str
    error_class: str


def quarantined(conn: Connection, limit: int = 20) -> tuple[int, list[Quarantined]]:
    """(readings in quarantine, the newest ``limit`` of them)."""
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM water.inference_quarantine")
    total = int(cur.fetchone()[0])
    cur.execute(
        "SELECT id, inferred_at, sensor_id, job, step, error_class "
        "FROM water.inference_quarantine ORDER BY quarantined_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    return total, [Quarantined(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in cur.fetchall()]


def forget(conn: Connection, start: datetime, end: datetime) -> int:
    """Drop the rollups of the hours in ``[start, end)`` (after their raw rows changed: a
    backfill, a correction); they are counted from the raw rows until rolled up again."""
    cur = conn.cursor()
    cur.execute("SELECT water.forget_inference_hours(%s, %s)", (floor_hour(start), floor_hour(end)))
    return int(cur.fetchone()[0])


def forget_cells(conn: Connection, start: datetime, end: datetime) -> None:
    """Drop the drift cells of ``[start, end)`` in the caller's transaction: retention calls
    it as it drops a day's partition, so no cell outlives the readings it counts."""
    conn.cursor().execute(
        "DELETE FROM water.inference_hourly_cells WHERE hour >= %s AND hour < %s", (start, end)
    )


# the drift grid's cell of each feature column, as water.insert_inference_cells computes it
_CELLS = ", ".join(
    f"({k}, water.drift_cell(i.{column}, {f.minimum!r}, {f.maximum!r}))"
    for k, (column, f) in enumerate(zip(FEATURE_COLUMNS, FEATURES, strict=False))
)


def _raw_ranges(
    start: datetime, end: datetime, covered: set[datetime]
) -> list[tuple[str, datetime, str, datetime]]:
    """The parts of ``(start, end]`` outside the covered hours, as (op, bound, op, bound): the
    partial first hour, runs of hours without cells, the partial last hour."""
    first_full, last_full_end = floor_hour(start) + HOUR, floor_hour(end)
    if first_full > last_full_end:
        return [(">", start, "<=", end)]
    ranges = [(">", start, "<", first_full)]
    hour = first_full
    while hour < last_full_end:
        if hour in covered:
            hour += HOUR
            continue
        run_start = hour
        while hour < last_full_end and hour not in covered:
            hour += HOUR
        ranges.append((">=", run_start, "<", hour))
    ranges.append((">=", last_full_end, "<=", end))
    return ranges


def drift_cells(conn: Connection, start: datetime, end: datetime) -> dict[int, dict[int, int]]:
    """Readings of ``(start, end]`` per feature (index in FEATURES) and drift-grid cell: the
    hours whose cells are rolled up from ``water.inference_hourly_cells``, the rest (the two
    partial hours at the ends, hours not rolled up yet) from the raw rows in the same
    statement. Exact whatever has been rolled up; costs ~170 hours of cells plus the raw rows
    of the unrolled part, not a week of readings."""
    cur = conn.cursor()
    cur.execute(
        "SELECT hour FROM water.inference_rolled_hours WHERE cells_rolled "
        "AND hour >= %s AND hour < %s",
        (floor_hour(start) + HOUR, floor_hour(end)),
    )
    covered = sorted(row[0] for row in cur.fetchall())
    ranges = _raw_ranges(start, end, set(covered))
    where = " OR ".join(f"(i.inferred_at {a} %s AND i.inferred_at {b} %s)" for a, _, b, _ in ranges)
    cur.execute(
        "SELECT feature, cell, sum(n)::bigint FROM ("
        " SELECT feature, cell, readings AS n FROM water.inference_hourly_cells"
        " WHERE hour = ANY(%s::timestamptz[])"
        " UNION ALL"
        f" SELECT v.feature, v.cell, count(*) FROM water.water_inferences i"
        f" CROSS JOIN LATERAL (VALUES {_CELLS}) AS v(feature, cell)"
        f" WHERE ({where}) AND NOT EXISTS (SELECT 1 FROM water.inference_quarantine q"
        "  WHERE q.id = i.id AND q.inferred_at = i.inferred_at)"
        " GROUP BY 1, 2) c GROUP BY 1, 2",
        (covered or None, *[bound for _, lo, _, hi in ranges for bound in (lo, hi)]),
    )
    out: dict[int, dict[int, int]] = {k: {} for k in range(len(FEATURES))}
    for feature, cell, n in cur.fetchall():
        out[int(feature)][int(cell)] = int(n)
    return out


@dataclass(frozen=True)
class DayCount:
    """Readings of one UTC day counted from its rolled-up hours (``hours`` of them: 24 for a
    complete past day, fewer for today or a day whose hours were never rolled up)."""

    day: date
    readings: int
    potable: int
    hours: int


_DAILY = """
SELECT (r.hour AT TIME ZONE 'UTC')::date AS day, count(*),
       sum(coalesce(r.public_readings, x.readings, 0))::bigint,
       sum(coalesce(r.public_potable, x.potable, 0))::bigint
FROM water.inference_rolled_hours r
LEFT JOIN LATERAL (  -- an hour rolled up before sql/019: summed from its rollup rows
    SELECT sum(h.readings) AS readings, sum(h.potable) AS potable FROM water.inference_hourly h
    WHERE r.public_readings IS NULL AND h.hour = r.hour AND h.sensor_id NOT LIKE %s
) x ON true
WHERE r.hour >= %s AND r.hour < %s
GROUP BY 1
"""


def daily(conn: Connection, first: date, last: date) -> list[DayCount]:
    """Readings and potable calls per UTC day of ``[first, last]`` (every day, oldest first),
    from the rolled-up hours only: the status page's 90-day traffic trend. Each rolled-up hour
    carries its public totals (sql/019: written by the roll-up, the smoke test's sensors left
    out), so a day costs its 24 rows of ``water.inference_rolled_hours`` whatever the number of
    sensors - never the raw log, nor what is older than the window; an hour rolled up before 019
    is summed from its ``water.inference_hourly`` rows. Hours not rolled up (the current one; a
    gap the maintenance has not caught up) are not counted: each day says how many of its hours
    are."""
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    cur = conn.cursor()
    cur.execute(_DAILY, (SMOKE_SENSOR_LIKE, start, end))
    found = {day: (int(n), int(p), int(h)) for day, h, n, p in cur.fetchall()}
    days = (first + timedelta(days=k) for k in range((last - first).days + 1))
    return [DayCount(d, *found.get(d, (0, 0, 0))) for d in days]


_ACTIVITY = f"""
WITH rolled AS (
    SELECT hour FROM water.inference_rolled_hours WHERE hour >= %(start)s AND hour <= %(now)s
), first_gap AS (
    SELECT min(h) AS hour FROM generate_series(%(start)s::timestamptz, %(now)s::timestamptz,
                                               interval '1 hour') h
    WHERE h NOT IN (SELECT hour FROM rolled)
), counts AS (
    SELECT hour, sensor_id, model_version, readings, potable
    FROM water.inference_hourly WHERE hour >= %(start)s AND hour <= %(now)s
    UNION ALL
    SELECT b.hour, i.sensor_id, i.model_version, count(*),
           count(*) FILTER (WHERE i.predicted_class = 1)
    FROM water.water_inferences i
    CROSS JOIN LATERAL (SELECT {_BIN.format(col="i.inferred_at")} AS hour) b
    WHERE i.inferred_at >= greatest((SELECT hour FROM first_gap), %(raw_from)s)
      AND i.inferred_at <= %(now)s
      AND NOT EXISTS (SELECT 1 FROM rolled r WHERE r.hour = b.hour)
    GROUP BY 1, 2, 3
), marked AS (
    SELECT *, hour >= %(day_start)s AS in_day FROM counts
    WHERE sensor_id NOT LIKE %(smoke)s  -- the deploy smoke test's rows (features.py)
)
SELECT hour, sensor_id, model_version, in_day, sum(readings)::bigint, sum(potable)::bigint,
       GROUPING(hour, sensor_id, model_version, in_day)
FROM marked
GROUP BY GROUPING SETS ((hour), (sensor_id, in_day), (model_version, in_day))
"""


_ACTIVITY_PARAMS = re.findall(r"%\((\w+)\)s", _ACTIVITY)
_ACTIVITY_SQL = re.sub(r"%\(\w+\)s", "%s", _ACTIVITY)
"""pg8000 takes ``%s`` parameters only: the names above, made positional."""

# GROUPING(hour, sensor_id, model_version, in_day): a bit set for each column NOT grouped by
_BY_HOUR, _BY_SENSOR, _BY_VERSION = 0b0111, 0b1010, 0b1100


def _summary(
    start: datetime,
    end: datetime,
    sensors: dict[str, list[int]],
    versions: dict[str, list[int]],
    max_sensors: int,
) -> WindowSummary:
    def ordered(groups: dict[str, list[int]]) -> list[Count]:
        counts = [Count(k, n, p) for k, (n, p) in groups.items() if n]
        return sorted(counts, key=lambda c: (-c.readings, c.key))

    by_sensor = ordered(sensors)
    readings = sum(c.readings for c in by_sensor)
    potable = sum(c.potable for c in by_sensor)
    return WindowSummary(
        start, end, readings, potable, len(by_sensor), by_sensor[:max_sensors], ordered(versions)
    )


RAW_HOURS = 2
"""Hours a bounded reader always counts from raw rows: the current one and the one before
(rollable only :data:`GRACE` after it ended)."""


def unrolled_hours(conn: Connection, start: datetime, before: datetime) -> list[datetime]:
    """The hours of ``[start, before)`` that are not rolled up and have readings: one probe of
    the log's ``inferred_at`` index per hour not rolled up (at most a week's 168), never a
    count."""
    cur = conn.cursor()
    cur.execute(
        "SELECT h FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour', "
        "interval '1 hour') h WHERE NOT EXISTS (SELECT 1 FROM water.inference_rolled_hours r "
        "WHERE r.hour = h) AND EXISTS (SELECT 1 FROM water.water_inferences i "
        "WHERE i.inferred_at >= h AND i.inferred_at < h + interval '1 hour') ORDER BY h",
        (start, before),
    )
    return [r[0] for r in cur.fetchall()]


def activity(
    conn: Connection, now: datetime, max_sensors: int = 50, max_raw_hours: int | None = None
) -> InferenceActivity:
    """The log's last week at ``now``, by hour, day, sensor and model version: rollups for the
    rolled-up hours, raw rows for the others (one statement).

    Exact when ``max_raw_hours`` is None. Otherwise bounded (the status page, issue 29: after
    a 10 M-reading backfill, counting the un-rolled hours from raw rows took ~14 s and every
    view answered 503): if more than ``max_raw_hours`` complete hours older than the latest
    :data:`RAW_HOURS` are neither rolled up nor empty, only the latest :data:`RAW_HOURS` are
    counted from raw rows and the others are returned as ``pending`` - the rollups catch them
    up in bounded steps and the answer is exact again."""
    current = floor_hour(now)
    start = current - (WEEK_HOURS - 1) * HOUR
    day_start = current - (DAY_HOURS - 1) * HOUR
    raw_from = start
    pending: list[datetime] = []
    if max_raw_hours is not None:
        recent = current - (RAW_HOURS - 1) * HOUR
        waiting = unrolled_hours(conn, start, recent)
        if len(waiting) > max_raw_hours:
            raw_from, pending = recent, waiting
    cur = conn.cursor()
    named = {
        "start": start,
        "now": now,
        "day_start": day_start,
        "smoke": SMOKE_SENSOR_LIKE,
        "raw_from": raw_from,
    }
    cur.execute(_ACTIVITY_SQL, tuple(named[name] for name in _ACTIVITY_PARAMS))
    hours: dict[datetime, tuple[int, int]] = {}
    sensors: dict[bool, dict[str, list[int]]] = {True: {}, False: {}}
    versions: dict[bool, dict[str, list[int]]] = {True: {}, False: {}}
    for hour, sensor, version, in_day, n, p, grouping in cur.fetchall():
        if grouping == _BY_HOUR:
            hours[hour] = (int(n), int(p))
        elif grouping == _BY_SENSOR:
            sensors[bool(in_day)][sensor] = [int(n), int(p)]
        elif grouping == _BY_VERSION:
            versions[bool(in_day)][version] = [int(n), int(p)]
    hourly = [
        Count(h, *hours.get(h, (0, 0))) for h in (day_start + k * HOUR for k in range(DAY_HOURS))
    ]
    daily = []
    for d in range(WEEK_HOURS // 24):
        first = start + d * 24 * HOUR
        span = [hours.get(first + k * HOUR, (0, 0)) for k in range(24)]
        daily.append(Count(first + 24 * HOUR, sum(n for n, _ in span), sum(p for _, p in span)))

    def merged(groups: dict[bool, dict[str, list[int]]]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for part in groups.values():
            for key, (n, p) in part.items():
                total = out.setdefault(key, [0, 0])
                total[0] += n
                total[1] += p
        return out

    return InferenceActivity(
        now=now,
        hourly=hourly,
        daily=daily,
        last_24h=_summary(day_start, now, sensors[True], versions[True], max_sensors),
        last_7d=_summary(start, now, merged(sensors), merged(versions), max_sensors),
        pending=tuple(pending),
    )
