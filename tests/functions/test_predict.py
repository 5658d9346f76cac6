"""The predict function on the real PostgreSQL and the real model server."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC
from typing import Any

import pytest
from fn_support import count, make_app, reading

from functions import predict
from functions.callers import LOCAL_OPEN_CALLER
from functions.context import Context
from functions.predict import REPLAY_HEADER
from potability import db
from potability.config import Settings


def post(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/predict", json=body, headers=headers or {})


def test_single_reading_is_answered_and_logged(client, clean_db) -> None:
    response = post(client, {"sensor_id": "plant-7", "reading": reading()})
    assert response.status_code == 200, response.json
    body = response.json
    request_id = body["request_id"]
    assert response.headers["X-Request-Id"] == request_id
    [prediction] = body["predictions"]
    assert prediction["potable"] in (0, 1)
    assert 0.0 <= prediction["probability"] <= 1.0
    assert prediction["model_version"] == "test-1"
    assert prediction["request_id"] == request_id
    cur = clean_db.cursor()
    cur.execute(
        "SELECT sensor_id, ph, turbidity, predicted_class, probability, model_version, "
        "model_name, endpoint, latency_ms FROM water.water_inferences "
        "WHERE request_id = %s",
        (request_id,),
    )
    [row] = cur.fetchall()
    assert row[:6] == [
        "plant-7",
        7.08,
        3.9,
        prediction["potable"],
        prediction["probability"],
        "test-1",
    ]
    assert row[6] == "water-potability" and row[7].startswith("local:http://127.0.0.1:")
    assert row[8] >= 0


def test_batch_one_row_per_reading_in_order(client, clean_db) -> None:
    readings = [reading(ph=float(i % 14), Sulfate=None) for i in range(25)]
    response = post(client, {"sensor_id": "plant-7", "readings": readings})
    assert response.status_code == 200, response.json
    predictions = response.json["predictions"]
    assert [p["reading_index"] for p in predictions] == list(range(25))
    cur = clean_db.cursor()
    cur.execute(
        "SELECT reading_index, ph, sulfate, probability FROM water.water_inferences "
        "ORDER BY reading_index"
    )
    rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(25))
    assert [r[1] for r in rows] == [float(i % 14) for i in range(25)]
    assert all(r[2] is None for r in rows)
    assert [r[3] for r in rows] == [p["probability"] for p in predictions]
    # The model sees the readings: different pH values give different probabilities.
    assert len({p["probability"] for p in predictions}) > 1


def test_missing_values_are_explicit_nulls(client, clean_db) -> None:
    all_null = dict.fromkeys(reading())
    response = post(client, {"sensor_id": "s", "reading": all_null})
    assert response.status_code == 200, response.json
    assert count(clean_db, "water_inferences") == 1


def test_batch_limit_is_enforced(client, clean_db, fn_settings: Settings) -> None:
    limit = fn_settings.predict_max_readings
    ok = post(client, {"sensor_id": "s", "readings": [reading()] * limit})
    assert ok.status_code == 200
    too_many = post(client, {"sensor_id": "s", "readings": [reading()] * (limit + 1)})
    assert too_many.status_code == 413
    assert too_many.json["field"] == "readings"
    assert count(clean_db, "water_inferences") == limit


@pytest.mark.parametrize("how", ["header", "field"])
def test_retry_with_the_same_request_id_returns_the_logged_answer(client, clean_db, how) -> None:
    body: dict[str, Any] = {"sensor_id": "plant-7", "readings": [reading(), reading(ph=3.0)]}
    headers = {}
    if how == "header":
        headers["Idempotency-Key"] = "sensor-7-000123"
    else:
        body["request_id"] = "sensor-7-000123"
    first = post(client, body, headers)
    assert first.status_code == 200
    assert REPLAY_HEADER not in first.headers
    again = post(client, body, headers)
    assert again.status_code == 200
    assert again.headers[REPLAY_HEADER] == "true"
    assert again.json == first.json
    assert first.json["request_id"] == "sensor-7-000123"
    assert count(clean_db, "water_inferences") == 2


def test_same_request_id_with_other_readings_is_a_conflict(client, clean_db) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert post(client, {"sensor_id": "a", "reading": reading()}, headers).status_code == 200
    other = post(client, {"sensor_id": "a", "reading": reading(ph=6.0)}, headers)
    assert other.status_code == 409
    assert other.json["field"] == "request_id"
    other_sensor = post(client, {"sensor_id": "b", "reading": reading()}, headers)
    assert other_sensor.status_code == 409
    more = post(client, {"sensor_id": "a", "readings": [reading(), reading()]}, headers)
    assert more.status_code == 409
    assert count(clean_db, "water_inferences") == 1


def test_header_and_field_must_agree(client, clean_db) -> None:
    response = post(
        client,
        {"sensor_id": "a", "reading": reading(), "request_id": "x"},
        {"Idempotency-Key": "y"},
    )
    assert response.status_code == 400
    assert response.json["field"] == "request_id"
    assert count(clean_db, "water_inferences") == 0


def test_concurrent_identical_requests_log_once_and_agree(fn_context, clean_db) -> None:
    app = make_app(fn_context)
    body = {"sensor_id": "race", "readings": [reading(ph=float(i)) for i in range(10)]}

    def send(_: int) -> Any:
        response = app.test_client().post(
            "/predict", json=body, headers={"Idempotency-Key": "race-1"}
        )
        return response.status_code, response.json

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(16)))
    assert {status for status, _ in results} == {200}
    assert len({str(answer) for _, answer in results}) == 1
    assert count(clean_db, "water_inferences") == 10


def test_concurrent_requests_with_one_key_and_other_readings_add_no_row(
    fn_context, clean_db
) -> None:
    """In flight at once under one key, with 1, 2 or 3 readings: the readings of one request
    only are logged (all of them); every other answer is that request's replay or a 409."""
    app = make_app(fn_context)
    bodies = [
        {"sensor_id": "mix", "readings": [reading(ph=float(k)) for k in range(i % 3 + 1)]}
        for i in range(12)
    ]

    def send(body: dict) -> Any:
        response = app.test_client().post(
            "/predict", json=body, headers={"Idempotency-Key": "mix-1"}
        )
        return len(body["readings"]), response.status_code, response.json

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, bodies))
    cur = clean_db.cursor()
    cur.execute("SELECT count(*), max(reading_index), min(caller) FROM water.water_inferences")
    rows, last, caller = cur.fetchone()
    cur.execute("SELECT readings FROM water.inference_requests WHERE request_id = 'mix-1'")
    assert [list(r) for r in cur.fetchall()] == [[rows]]
    assert last == rows - 1 and caller == LOCAL_OPEN_CALLER  # the open local mode's caller
    for size, status, answer in results:
        assert (status, size == rows) in {(200, True), (409, False)}, (size, status, answer)
        if status == 200:
            assert len(answer["predictions"]) == rows


def test_endpoint_down_is_503_and_nothing_is_written(fn_settings, clean_db, dead_port) -> None:
    ctx = Context(fn_settings.with_(model_server_url=f"http://127.0.0.1:{dead_port}"))
    client = make_app(ctx).test_client()
    for headers in ({}, {"Idempotency-Key": "down-1"}):
        response = post(client, {"sensor_id": "a", "readings": [reading()] * 3}, headers)
        assert response.status_code == 503
        assert response.json["field"] == "endpoint"
        assert int(response.headers["Retry-After"]) > 0
    assert count(clean_db, "water_inferences") == 0
    ctx.close()


class CountingPool(db.Pool):
    """The real pool, counting the statements :meth:`run` sends (one round trip each)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, size=2)
        self.statements: list[str] = []

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        self.statements.append(sql)
        return super().run(sql, **params)


def test_a_new_request_with_a_key_costs_one_statement(fn_settings, clean_db) -> None:
    """Issue 34: the key is claimed by the insert itself; nothing is looked up first. Only a
    key that was taken (the replay, the 409) reads the log back."""
    pool = CountingPool(fn_settings)
    ctx = Context(fn_settings, pool=pool)
    client = make_app(ctx).test_client()
    body = {"sensor_id": "a", "readings": [reading(), reading(ph=4.0)]}
    assert post(client, body, {"Idempotency-Key": "one-trip-1"}).status_code == 200
    assert pool.statements == [predict.INSERT_SQL]
    pool.statements.clear()
    again = post(client, body, {"Idempotency-Key": "one-trip-1"})
    assert again.headers[REPLAY_HEADER] == "true"
    assert pool.statements == [predict.INSERT_SQL, predict.SELECT_LOGGED]
    pool.statements.clear()
    other = post(
        client, {"sensor_id": "a", "reading": reading()}, {"Idempotency-Key": "one-trip-1"}
    )
    assert other.status_code == 409
    assert pool.statements == [predict.INSERT_SQL, predict.SELECT_LOGGED]
    assert count(clean_db, "water_inferences") == 2
    ctx.close()


def test_a_logged_request_is_answered_while_the_endpoint_is_down(
    client, fn_settings, clean_db, dead_port
) -> None:
    """A retry is answered from the log even when the endpoint cannot score it (the log is
    read when the endpoint fails a request with a client id); a new request gets the 503, and a
    reused key with other readings the 409."""
    body = {"sensor_id": "a", "readings": [reading(), reading(ph=5.0)]}
    first = post(client, body, {"Idempotency-Key": "down-retry-1"})
    assert first.status_code == 200
    down = Context(fn_settings.with_(model_server_url=f"http://127.0.0.1:{dead_port}"))
    down_client = make_app(down).test_client()
    again = post(down_client, body, {"Idempotency-Key": "down-retry-1"})
    assert again.status_code == 200, again.json
    assert again.headers[REPLAY_HEADER] == "true" and again.json == first.json
    other = post(
        down_client, {"sensor_id": "a", "reading": reading()}, {"Idempotency-Key": "down-retry-1"}
    )
    assert other.status_code == 409
    new = post(down_client, body, {"Idempotency-Key": "down-retry-2"})
    assert new.status_code == 503 and new.json["field"] == "endpoint"
    assert count(clean_db, "water_inferences") == 2
    down.close()


def test_database_down_is_503_and_nothing_is_written(fn_settings, clean_db, tmp_path) -> None:
    dead = f"postgresql://postgres@/potability?host={tmp_path}"  # no server on this socket
    ctx = Context(fn_settings.with_(database_url=dead))
    client = make_app(ctx).test_client()
    for headers in ({}, {"Idempotency-Key": "db-down-1"}):
        response = post(client, {"sensor_id": "a", "reading": reading()}, headers)
        assert response.status_code == 503, response.json
        assert response.json["field"] == "database"
        assert int(response.headers["Retry-After"]) > 0
    assert count(clean_db, "water_inferences") == 0


def test_pooled_connection_killed_by_the_database_is_replaced(fn_settings, clean_db) -> None:
    """The pooled connection dies (as in a database restart): the request is retried once on
    a fresh connection, so the client never sees it; exactly one row per answer."""
    ctx = Context(fn_settings.with_(db_pool_size=1))
    client = make_app(ctx).test_client()
    assert post(client, {"sensor_id": "a", "reading": reading()}).status_code == 200
    with ctx.pool.transaction() as own:
        cur = own.cursor()
        cur.execute("SELECT pg_backend_pid()")
        [backend] = cur.fetchone()
    cur = clean_db.cursor()
    cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
    clean_db.commit()
    again = post(client, {"sensor_id": "a", "reading": reading(ph=2.0)})
    assert again.status_code == 200, again.json
    with ctx.pool.transaction() as own:
        cur = own.cursor()
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != backend
    assert count(clean_db, "water_inferences") == 2
    ctx.close()


def test_each_reading_may_say_when_it_was_measured(client, clean_db) -> None:
    """``measured_at`` per reading is stored as sent (UTC); absent or null stores NULL, and
    quality control then uses the arrival time (potability/quality/live_precision.py)."""
    first = dict(reading(), measured_at="2026-01-05T08:00:00+01:00")
    body = {
        "sensor_id": "plant-7",
        "readings": [first, reading(ph=3.0), dict(reading(), measured_at=None)],
    }
    response = post(client, body, {"Idempotency-Key": "measured-1"})
    assert response.status_code == 200, response.json
    cur = clean_db.cursor()
    cur.execute(
        "SELECT reading_index, measured_at, inferred_at FROM water.water_inferences "
        "WHERE request_id = 'measured-1' ORDER BY reading_index"
    )
    rows = cur.fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert rows[0][1].isoformat() == "2026-01-05T07:00:00+00:00"
    assert rows[1][1] is None and rows[2][1] is None
    # A retry is the same request only with the same measurement times.
    assert post(client, body, {"Idempotency-Key": "measured-1"}).headers[REPLAY_HEADER] == "true"
    other = {
        "sensor_id": "plant-7",
        "readings": [
            dict(first, measured_at="2026-01-05T08:01:00+01:00"),
            reading(ph=3.0),
            reading(),
        ],
    }
    conflict = post(client, other, {"Idempotency-Key": "measured-1"})
    assert conflict.status_code == 409 and conflict.json["field"] == "request_id"
    assert count(clean_db, "water_inferences") == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2999-01-01T00:00:00Z", "is in the future"),
        ("1969-12-31T23:59:59Z", "must not be before 1970-01-01"),
        ("2026-01-05 08:00", "must be an RFC 3339 date-time"),
        (1767600000, "must be an RFC 3339 date-time"),
    ],
)
def test_a_bad_measurement_time_is_refused_naming_the_reading(
    client, clean_db, value, message
) -> None:
    body = {"sensor_id": "plant-7", "readings": [reading(), dict(reading(), measured_at=value)]}
    response = post(client, body)
    assert response.status_code == 400
    assert response.json["field"] == "readings[1].measured_at"
    assert message in response.json["error"]
    assert count(clean_db, "water_inferences") == 0


def test_quality_control_matches_a_lab_sample_on_the_measurement_time(client, clean_db) -> None:
    """A batch sent at once, measured over two hours: the lab sample taken at the second
    reading's measurement time confirms that reading, not the batch's first."""
    from datetime import datetime, timedelta

    from potability.quality import job as qc_job
    from potability.quality import live_precision

    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    readings = [
        dict(reading(ph=6.0 + k), measured_at=(taken + timedelta(hours=k - 1)).isoformat())
        for k in range(3)
    ]
    response = post(
        client, {"sensor_id": "plant-qc", "readings": readings}, {"Idempotency-Key": "measured-qc"}
    )
    assert response.status_code == 200, response.json
    cur = clean_db.cursor()
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, "
        "sampled_at, submitted_by, source) VALUES ('lab-measured-qc', 7.0, 1, "
        "'plant-qc', %s, 'lab-tester', 'lab')",
        (taken,),
    )
    cur.execute(
        "SELECT id FROM water.water_inferences WHERE request_id = 'measured-qc' "
        "ORDER BY reading_index"
    )
    ids = [row[0] for row in cur.fetchall()]
    clean_db.commit()
    window = timedelta(minutes=30)
    inferences = qc_job.load_candidate_inferences(clean_db, window)
    _, samples = qc_job.load_lab_samples(clean_db)
    [matched] = live_precision.match_samples(samples, inferences, window)
    assert matched.inference.id == ids[1]
