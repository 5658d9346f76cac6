"""The hourly rollups on the real database: what they say equals a direct count over the raw
rows, for random timestamps (whole-hour boundaries and their neighbours included), whichever
hours happen to be rolled up when the page reads them."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from potability import db
from potability.inference import rollup as inference_rollup
from potability.inference.rollup import HOUR, floor_hour

UTC = UTC
BASE = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # a DST night in Europe: UTC hours do not care
NOW = BASE + timedelta(days=8, minutes=17, seconds=3)
SENSORS = ("north-1", "south-2", "east-3")
VERSIONS = ("3", "4")

_offsets = st.one_of(
    st.integers(0, 9 * 24 * 3600 * 1_000_000),  # anywhere, in microseconds
    st.integers(0, 9 * 24).map(lambda h: h * 3600 * 1_000_000),  # exactly on an hour
    st.integers(0, 9 * 24).map(lambda h: h * 3600 * 1_000_000 - 1),  # just before one
    st.integers(0, 9 * 24).map(lambda h: h * 3600 * 1_000_000 + 1),  # just after one
)
_rows = st.lists(
    st.tuples(_offsets, st.sampled_from(SENSORS), st.sampled_from(VERSIONS), st.integers(0, 1)),
    max_size=60,
)


def _reset(conn: db.Connection) -> None:
    cur = conn.cursor()
    cur.execute("DELETE FROM water.water_inferences")
    cur.execute(
        "TRUNCATE water.inference_hourly, water.inference_hourly_cells, "
        "water.inference_rolled_hours"
    )
    conn.commit()


def _insert(conn: db.Connection, rows: list[tuple[datetime, str, str, int]]) -> None:
    if not rows:
        return
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) SELECT %s || k, 0, s, c, 0.5, 'water-potability', v, 'local', t, 1 "
        "FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::smallint[]) "
        "WITH ORDINALITY AS r(t, s, v, c, k)",
        (
            f"rollup-{uuid.uuid4().hex[:8]}-",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
        ),
    )
    conn.commit()


def _expected(rows: list[tuple[datetime, str, str, int]], now: datetime) -> dict:
    """The status page's numbers counted in Python from the rows themselves (the oracle)."""
    current = floor_hour(now)
    week_start, day_start = current - 167 * HOUR, current - 23 * HOUR
    week = [r for r in rows if week_start <= r[0] <= now]
    day = [r for r in week if r[0] >= day_start]

    def by(key: int, part: list) -> list[tuple[str, int, int]]:
        n, p = Counter(r[key] for r in part), Counter(r[key] for r in part if r[3])
        return sorted(((k, n[k], p[k]) for k in n), key=lambda x: (-x[1], x[0]))

    hours = Counter(floor_hour(r[0]) for r in week)
    potable_hours = Counter(floor_hour(r[0]) for r in week if r[3])
    return {
        "hourly": [
            (day_start + k * HOUR, hours[day_start + k * HOUR], potable_hours[day_start + k * HOUR])
            for k in range(24)
        ],
        "daily": [
            sum(hours[week_start + (24 * d + k) * HOUR] for k in range(24)) for d in range(7)
        ],
        "day": (len(day), sum(r[3] for r in day), by(1, day), by(2, day)),
        "week": (len(week), sum(r[3] for r in week), by(1, week), by(2, week)),
    }


def _seen(a: inference_rollup.InferenceActivity) -> dict:
    def window(w: inference_rollup.WindowSummary) -> tuple:
        return (
            w.readings,
            w.potable,
            [(c.key, c.readings, c.potable) for c in w.by_sensor],
            [(c.key, c.readings, c.potable) for c in w.by_model_version],
        )

    return {
        "hourly": [(c.key, c.readings, c.potable) for c in a.hourly],
        "daily": [c.readings for c in a.daily],
        "day": window(a.last_24h),
        "week": window(a.last_7d),
    }


def _rolled_vs_raw(conn: db.Connection) -> tuple[list, list]:
    cur = conn.cursor()
    cur.execute(
        "SELECT hour, sensor_id, model_version, readings, potable "
        "FROM water.inference_hourly ORDER BY 1, 2, 3"
    )
    rolled = cur.fetchall()
    cur.execute(
        "SELECT date_trunc('hour', inferred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS h, "
        "sensor_id, model_version, count(*), count(*) FILTER (WHERE predicted_class = 1) "
        "FROM water.water_inferences WHERE date_trunc('hour', inferred_at AT TIME ZONE 'UTC') "
        "AT TIME ZONE 'UTC' IN (SELECT hour FROM water.inference_rolled_hours) "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return rolled, cur.fetchall()


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=_rows, max_hours=st.sampled_from([None, 1, 7, 50]))
def test_rollups_equal_a_direct_count_and_the_page_equals_the_raw_count(
    conn: db.Connection, raw: list, max_hours: int | None
) -> None:
    _reset(conn)
    rows = [(BASE + timedelta(microseconds=o), s, v, c) for o, s, v, c in raw]
    _insert(conn, rows)
    expected = _expected(rows, NOW)

    # nothing rolled up: every number comes from the raw rows
    assert _seen(inference_rollup.activity(conn, NOW)) == expected
    conn.rollback()

    # some hours rolled up (the oldest max_hours of the week): same numbers
    inference_rollup.roll_up(
        conn, NOW - timedelta(days=9), inference_rollup.rollable_through(NOW), max_hours
    )
    conn.commit()
    rolled, direct = _rolled_vs_raw(conn)
    assert rolled == direct
    assert _seen(inference_rollup.activity(conn, NOW)) == expected

    # everything rolled up, again: nothing counted twice
    inference_rollup.roll_up(conn, NOW - timedelta(days=9), inference_rollup.rollable_through(NOW))
    assert (
        inference_rollup.roll_up(
            conn, NOW - timedelta(days=9), inference_rollup.rollable_through(NOW)
        )
        == 0
    )
    conn.commit()
    rolled, direct = _rolled_vs_raw(conn)
    assert rolled == direct
    assert _seen(inference_rollup.activity(conn, NOW)) == expected
    conn.rollback()


def test_the_current_hour_and_the_grace_are_never_rolled_up(clean_db: db.Connection) -> None:
    now = floor_hour(datetime.now(UTC)) + timedelta(minutes=1)  # within the grace of the last
    inference_rollup.roll_up(
        clean_db, now - timedelta(hours=3), inference_rollup.rollable_through(now)
    )
    clean_db.commit()
    cur = clean_db.cursor()
    cur.execute("SELECT max(hour) FROM water.inference_rolled_hours")
    assert cur.fetchone()[0] == floor_hour(now) - 2 * HOUR  # the hour that ended 1 min ago waits
    clean_db.rollback()


def test_a_backfilled_hour_is_counted_again_once_forgotten(clean_db: db.Connection) -> None:
    hour = BASE + 5 * HOUR
    _insert(clean_db, [(hour + timedelta(minutes=5), "north-1", "3", 1)])
    assert inference_rollup.catch_up(clean_db, BASE + 8 * HOUR, days=1) == 23
    _insert(clean_db, [(hour + timedelta(minutes=7), "north-1", "3", 0)])  # late: a backfill
    assert inference_rollup.forget(clean_db, hour, hour + HOUR) == 1
    clean_db.commit()
    week = inference_rollup.activity(clean_db, BASE + 6 * HOUR).last_7d
    assert (week.readings, week.potable) == (2, 1)
    clean_db.rollback()


def test_status_role_may_complete_the_rollups_it_reads(clean_db: db.Connection) -> None:
    """The status role only reads tables; the rollup function runs as their owner."""
    cur = clean_db.cursor()
    cur.execute("SET ROLE water_status")
    try:
        cur.execute("SELECT water.roll_up_inference_hours(%s, %s, 2)", (BASE, BASE + 5 * HOUR))
        assert cur.fetchone()[0] == 2
    finally:
        clean_db.rollback()


def _cells_in_table(conn: db.Connection) -> Counter:
    cur = conn.cursor()
    cur.execute("SELECT hour, feature, cell, readings FROM water.inference_hourly_cells")
    return Counter({(h, f, c): n for h, f, c, n in cur.fetchall()})


def test_hourly_drift_cells_equal_a_direct_count_and_follow_their_hours(
    clean_db: db.Connection,
) -> None:
    """The rollup's cells (sql/015) equal the rows' cells counted in Python, per hour and
    feature; an hour rolled up before sql/015 gets its cells at the next catch-up; forgetting
    an hour forgets its cells."""
    import random

    from potability.features import FEATURE_COLUMNS, FEATURES
    from potability.quality import drift

    rng = random.Random(3)
    rows = []
    for _ in range(400):
        when = BASE + timedelta(seconds=rng.choice([0, 3599, 3600, rng.randrange(30 * 3600)]))
        values = [
            None if rng.random() < 0.2 else rng.uniform(f.minimum, f.maximum) * rng.random()
            for f in FEATURES
        ]
        rows.append((when, values))
    cur = clean_db.cursor()
    cols = ", ".join(FEATURE_COLUMNS)
    for k, (when, values) in enumerate(rows):
        cur.execute(
            f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            f"latency_ms) VALUES (%s, 0, 's', {', '.join(['%s'] * 9)}, 1, 0.5, 'm', '3', 'local', "
            "%s, 1)",
            (f"cells-{uuid.uuid4().hex[:6]}-{k}", *values, when),
        )
    clean_db.commit()
    expected: Counter = Counter()
    for when, values in rows:
        for f, (spec, value) in enumerate(zip(FEATURES, values, strict=False)):
            expected[(floor_hour(when), f, int(drift.cells_of(spec.name, [value])[0]))] += 1

    inference_rollup.catch_up(clean_db, BASE + 40 * HOUR, days=2)
    assert _cells_in_table(clean_db) == expected

    # the status page rolls up counts only: no cells until a catch-up fills them
    inference_rollup.forget(clean_db, BASE, BASE + 10 * HOUR)
    assert inference_rollup.roll_up(clean_db, BASE, BASE + 10 * HOUR) == 10
    clean_db.commit()
    assert _cells_in_table(clean_db) == Counter(
        {k: n for k, n in expected.items() if k[0] >= BASE + 10 * HOUR}
    )
    # as if hours 0-9 were rolled up before sql/015: counts, no cells - the catch-up fills them
    cur.execute("DELETE FROM water.inference_hourly_cells WHERE hour < %s", (BASE + 10 * HOUR,))
    cur.execute(
        "UPDATE water.inference_rolled_hours SET cells_rolled = false WHERE hour < %s",
        (BASE + 10 * HOUR,),
    )
    clean_db.commit()
    assert inference_rollup.catch_up(clean_db, BASE + 40 * HOUR, days=2) == 0  # no new hours
    assert _cells_in_table(clean_db) == expected

    assert inference_rollup.forget(clean_db, BASE + 3 * HOUR, BASE + 5 * HOUR) == 2
    clean_db.commit()
    assert _cells_in_table(clean_db) == Counter(
        {k: n for k, n in expected.items() if not BASE + 3 * HOUR <= k[0] < BASE + 5 * HOUR}
    )
    clean_db.rollback()
