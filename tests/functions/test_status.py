"""The status function on the real database: known rows in, the same numbers out (JSON and
HTML), nothing private, 503 with Retry-After when the database is down."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import pytest
from werkzeug.serving import make_server

from functions import status as status_module
from functions.context import Context, serve
from functions.http import RETRY_AFTER_SECONDS
from functions.status import status_data
from functions.status_page import render_html
from potability import db
from potability.config import Settings
from potability.features import FEATURE_COLUMNS
from potability.inference.rollup import floor_hour
from potability.quality import job as qc_job

UTC = UTC
PRIVATE = ("alice@utility.example", "status-sample-", "status-req-", "token")
CHAMPION_RUN, LAST_RUN = "status-test-champion", "status-test-last"


def _inference(cur: Any, key: str, sensor: str, when: datetime, predicted: int) -> None:
    cols = ", ".join(FEATURE_COLUMNS)
    cur.execute(
        f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) "
        f"VALUES (%s, 0, %s, {', '.join(['7.0'] * len(FEATURE_COLUMNS))}, %s, 0.5, "
        "'water-potability', '3', 'local', %s, 2.0)",
        (f"status-req-{key}", sensor, predicted, when),
    )


def _lab(
    cur: Any, key: str, sensor: str, sampled: datetime, created: datetime, potable: int
) -> None:
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, sampled_at, "
        "submitted_by, source, created_at) VALUES (%s, 7.0, %s, %s, %s, %s, 'lab', %s)",
        (f"status-sample-{key}", potable, sensor, sampled, "alice@utility.example", created),
    )


def insert_scenario(conn: db.Connection, settings: Settings, now: datetime) -> None:
    """Known rows (see the expected numbers in the tests), then one quality-control run."""
    cur = conn.cursor()
    cur.execute(
        "DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)", (CHAMPION_RUN, LAST_RUN)
    )
    cur.execute(
        "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, decision, "
        "model_name, champion_version, champion_family, champion_precision, champion_recall, "
        "champion_threshold, training_rows) VALUES "
        "(%s, %s, %s, 'succeeded', 'first_champion', 'water-potability', '3', "
        "'random_forest', 0.71, 0.42, 0.6, 3276)",
        (CHAMPION_RUN, now - timedelta(days=3), now - timedelta(days=3) + timedelta(hours=1)),
    )
    # the last run: newest of the session (it starts just before `now`), kept the champion
    cur.execute(
        "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, decision, "
        "model_name, champion_version, champion_family, champion_precision, champion_recall, "
        "challenger_family, challenger_precision, challenger_recall, training_rows, error, "
        "champion_precision_low, champion_precision_high, probability_challenger_better) VALUES "
        "(%s, %s, %s, 'succeeded', 'champion_kept', 'water-potability', '3', 'random_forest', "
        "0.71, 0.42, 'hist_gradient_boosting', 0.65, 0.45, 3280, 'secret-host:5432 detail', "
        "0.62, 0.8, 0.12)",
        (LAST_RUN, now - timedelta(seconds=2), now - timedelta(seconds=1)),
    )
    h = timedelta(hours=1)
    for key, sensor, when, predicted in [
        ("a", "north-1", now - h - timedelta(minutes=1), 1),
        ("b", "north-1", now - 2 * h - timedelta(minutes=1), 1),
        ("c", "north-1", now - 5 * h - timedelta(minutes=1), 0),
        ("d", "south-2", now - timedelta(minutes=30), 0),
        ("e", "north-1", now - timedelta(days=2), 1),
        ("f", "north-1", now - timedelta(days=2, hours=5), 0),
        ("g", "south-2", now - timedelta(days=3), 0),
        ("h", "south-2", now - timedelta(days=8), 1),  # older than 7 days: not counted
    ]:
        _inference(cur, key, sensor, when, predicted)
    # lab samples: one confirms "a" (TP), one refutes "e" (FP), one is too old to be recent
    _lab(cur, "1", "north-1", now - h - timedelta(minutes=6), now - h, 1)
    _lab(cur, "2", "north-1", now - timedelta(days=2, minutes=-10), now - timedelta(days=2), 0)
    _lab(cur, "3", "south-2", now - timedelta(days=10), now - timedelta(days=10), 1)
    conn.commit()
    # the CUSUM at floor 0.98 against 0.99 expected: the refuted call (2 days ago) adds
    # log(0.02 / 0.01) = 0.693, the confirmed one (1 h ago) takes 0.010: 0.683 >= limit 0.5
    qc_job.run(
        conn,
        settings.with_(
            qc_precision_floor=0.98,
            qc_precision_expected=0.99,
            qc_alarm_limit=0.5,
            qc_min_matches=2,
        ),
        now,
    )


@pytest.fixture
def scenario(clean_db: db.Connection, settings: Settings) -> Iterator[datetime]:
    now = datetime.now(UTC)
    insert_scenario(clean_db, settings, now)
    yield now
    cur = clean_db.cursor()
    cur.execute(
        "DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)", (CHAMPION_RUN, LAST_RUN)
    )
    clean_db.commit()


def test_status_data_shows_the_numbers_of_the_database(clean_db, scenario) -> None:
    data = status_data(clean_db, scenario)
    json.dumps(data, allow_nan=False)  # JSON-safe as is
    model = data["model"]
    assert (model["version"], model["family"], model["held_out_precision"]) == (
        "3",
        "random_forest",
        0.71,
    )
    assert model["held_out_precision_interval"] == [0.62, 0.8]
    assert model["held_out_precision_reused_by_tests"] is True  # labelled: optimistic
    fresh = data["champion_fresh_precision"]  # lab samples after the champion's run, untested
    assert (
        fresh["model_version"],
        fresh["potable_calls"],
        fresh["confirmed"],
        fresh["precision"],
        fresh["enough_evidence"],
    ) == ("3", 2, 1, 0.5, True)
    run = data["last_pipeline_run"]
    assert (run["status"], run["decision"], run["challenger_family"]) == (
        "succeeded",
        "champion_kept",
        "hist_gradient_boosting",
    )
    day, week = data["inferences"]["last_24h"], data["inferences"]["last_7d"]
    assert (day["total"], day["potable"], day["potable_share"], day["sensors"]) == (4, 2, 0.5, 2)
    assert [(s["sensor_id"], s["total"], s["potable"]) for s in day["by_sensor"]] == [
        ("north-1", 3, 2),
        ("south-2", 1, 0),
    ]
    assert (week["total"], week["potable"], week["potable_share"]) == (7, 3, 3 / 7)
    assert [(s["sensor_id"], s["total"], s["potable_share"]) for s in week["by_sensor"]] == [
        ("north-1", 5, 0.6),
        ("south-2", 2, 0.0),
    ]
    assert week["by_model_version"] == [
        {"model_version": "3", "total": 7, "potable": 3, "potable_share": 3 / 7}
    ]
    hourly = data["inferences"]["hourly_24h"]
    assert len(hourly) == 24 and sum(b["total"] for b in hourly) == 4
    # clock hours, newest (the current, partial one) last: each reading in the hour it fell in
    ends = [datetime.fromisoformat(b["end"].replace("Z", "+00:00")) for b in hourly]
    assert ends[-1] == floor_hour(scenario) + timedelta(hours=1)
    for minutes_ago, predicted in [(30, 0), (61, 1), (121, 1), (301, 0)]:
        when = scenario - timedelta(minutes=minutes_ago)
        bucket = hourly[ends.index(floor_hour(when) + timedelta(hours=1))]
        assert bucket["total"] >= 1 and (predicted == 0 or bucket["potable"] >= 1)
    daily = data["inferences"]["daily_7d"]
    assert [b["total"] for b in daily] == [0, 0, 0, 1, 2, 0, 4]
    lab = data["lab_samples"]
    assert (lab["total"], lab["last_24h"], lab["last_7d"], lab["potable_share_7d"]) == (
        3,
        1,
        2,
        0.5,
    )
    live = data["live_precision"]
    assert (live["model_version"], live["matches"], live["precision"], live["recall"]) == (
        "3",
        2,
        0.5,
        1.0,
    )
    assert live["flagged"] and data["quality_control"]["flagged"]
    qc = data["quality_control"]
    assert (qc["lab_samples"], qc["matched_samples"], qc["precision_floor"]) == (3, 2, 0.98)
    assert [f["feature"] for f in qc["drift"]["features"]][:2] == ["ph", "Hardness"]
    assert {f["status"] for f in qc["drift"]["features"]} == {"insufficient_data"}  # 7 readings
    assert qc["drift"]["recent_rows"] == 7


def test_nothing_private_is_published(clean_db, scenario) -> None:
    data = status_data(clean_db, scenario)
    for text in (json.dumps(data), render_html(data)):
        for secret in PRIVATE + ("secret-host", "postgresql://"):
            assert secret not in text


def test_the_page_renders_the_numbers_and_escapes_database_text(clean_db, scenario) -> None:
    data = status_data(clean_db, scenario)
    page = render_html(data)
    assert '<meta name="viewport"' in page and "<script" not in page and "http" not in page
    assert 'data-testid="model-version">v3<' in page
    assert 'data-testid="inferences-24h-total">4<' in page
    assert 'data-testid="inferences-7d-total">7<' in page
    assert 'data-testid="live-precision">50.0%<' in page
    assert 'data-testid="model-precision-interval">(95% interval 62.0% to 80.0%)<' in page
    assert (
        "between 62.0% and 80.0% are expected to really be potable" in page
        and "likely a little optimistic" in page
    )
    assert 'data-testid="fresh-precision">50.0%<' in page  # 2 calls meet this scenario's minimum
    fresh = {
        "model_version": "3",
        "since": "2026-05-01T00:00:00Z",
        "potable_calls": 25,
        "confirmed": 16,
        "precision": 0.64,
        "interval_95": [0.425, 0.82],
        "enough_evidence": True,
        "min_potable_calls": 20,
        "computed_at": None,
    }
    shown = render_html({**data, "champion_fresh_precision": fresh})
    assert (
        'data-testid="fresh-precision">64.0%<' in shown and "(95% interval 42.5% to 82.0%" in shown
    )
    assert shown.index("fresh-precision") < shown.index('data-testid="model-precision"')  # first
    few = render_html(
        {
            **data,
            "champion_fresh_precision": {**fresh, "potable_calls": 7, "enough_evidence": False},
        }
    )
    assert "not enough yet (7 of 20 potable calls checked by the lab)" in few
    other = render_html({**data, "champion_fresh_precision": {**fresh, "model_version": "2"}})
    assert "not measured yet" in other  # a figure of another version is not this model's
    without = render_html({**data, "model": {**data["model"], "held_out_precision_interval": None}})
    assert "model-precision-interval" not in without and "model-precision-meaning" not in without
    assert ">below floor 98%<" in page
    assert page.count('data-testid="sensor-row"') == 2 and page.count("<svg") >= 5
    data["inferences"]["last_7d"]["by_sensor"][0]["sensor_id"] = "<script>alert(1)</script>"
    hostile = render_html(data)
    assert "<script>" not in hostile and "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile


def test_the_page_renders_before_anything_happened(clean_db, scenario) -> None:
    data = status_data(clean_db, scenario)
    empty = {
        **data,
        "model": None,
        "last_pipeline_run": None,
        "quality_control": None,
        "live_precision": None,
    }
    empty["inferences"] = {
        **data["inferences"],
        "last_7d": {**data["inferences"]["last_7d"], "by_sensor": []},
    }
    page = render_html(empty)
    assert "no model promoted yet" in page and "Quality control has not run yet" in page


# --- the HTTP handler (through the shared serving path, as functions/main.py wires it) ------


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """A function instance's context on the session database (its pool from settings)."""
    context = Context(settings.with_(db_pool_size=3, status_refresh_seconds=0))
    yield context
    context.close()


def call(
    ctx: Context, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None
) -> flask.Response:
    app = flask.Flask(__name__)
    with app.test_request_context(path, method=method, headers=headers or {}):
        return serve(
            status_module.FUNCTION,
            status_module.handle,
            flask.request,
            ctx,
            status_module.render_error,
        )


def test_the_json_answer_fits_the_published_document(ctx, scenario) -> None:
    """The status function's JSON is the document's ``Status`` (issue 30): with a model,
    inferences, lab samples and quality control, and before any of them; its refusals are
    problem details."""
    from fn_support import matches_document

    answer = call(ctx, "/?format=json").get_json()
    assert answer["model"] and answer["quality_control"] and answer["live_precision"]
    assert answer["inferences"]["last_7d"]["by_sensor"] and answer["jobs"] is not None
    matches_document("Status", answer)
    nothing_yet = {
        **answer,
        **dict.fromkeys(("model", "last_pipeline_run", "quality_control", "live_precision")),
    }
    matches_document("Status", nothing_yet)
    matches_document("Problem", call(ctx, "/?format=xml").get_json())


def test_json_on_request_html_by_default(ctx, scenario) -> None:
    for response in (
        call(ctx, "/?format=json"),
        call(ctx, "/", headers={"Accept": "application/json"}),
    ):
        assert response.status_code == 200 and response.mimetype == "application/json"
        body = response.get_json()
        assert body["inferences"]["last_24h"]["total"] == 4 and body["model"]["version"] == "3"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for response in (
        call(ctx, "/", headers={"Accept": browser}),
        call(ctx, "/"),
        call(ctx, "/?format=html"),
    ):
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert 'data-testid="inferences-24h-total">4<' in response.get_data(as_text=True)
    assert "max-age" in response.headers["Cache-Control"]


def test_every_answer_carries_the_security_headers(ctx, scenario, dead_database_url) -> None:
    """HTML, JSON and errors alike: nothing but the page itself may load or frame it."""
    dead = Context(Settings(database_url=dead_database_url))
    answers = [
        call(ctx, "/"),
        call(ctx, "/?format=json"),
        call(ctx, "/?format=xml"),
        call(dead, "/"),
        call(dead, "/?format=json"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 400, 503, 503]
    for response in answers:
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src" not in policy  # the page runs no script at all
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_the_public_history_names_a_role_never_a_person() -> None:
    from functions.status import public_role
    from potability.governance import model_changes

    assert public_role(model_changes.AUTOMATIC) == "pipeline"
    assert public_role("ana@utility.example") == "operator"
    assert public_role("root@mlflow-vm") == "operator"


def test_bad_requests_are_json_4xx_naming_the_problem(ctx) -> None:
    response = call(ctx, "/?format=xml")
    assert response.status_code == 400 and response.get_json()["field"] == "format"
    response = call(ctx, "/", method="POST")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    assert response.get_json()["field"] == "method"
    assert response.headers["Cache-Control"] == "no-store"


def test_database_down_is_503_with_the_shared_retry_after(dead_database_url: str) -> None:
    dead = Context(Settings(database_url=dead_database_url))
    response = call(dead, "/?format=json")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.get_json()["field"] == "database" and "retry" in response.get_json()["error"]
    assert response.headers["Cache-Control"] == "no-store"
    response = call(dead, "/")  # a browser gets a readable page for the same outage
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert f"try again in {RETRY_AFTER_SECONDS} seconds" in response.get_data(as_text=True)


def test_one_log_line_per_request(ctx, scenario, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    call(ctx, "/?format=json", headers={"User-Agent": "probe/1"})
    call(ctx, "/", method="DELETE")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["function"], r["httpRequest"]["status"]) for r in lines] == [
        ("status", 200),
        ("status", 405),
    ]
    assert lines[0]["severity"] == "INFO" and lines[0]["format"] == "json"
    assert lines[0]["httpRequest"]["userAgent"] == "probe/1"
    assert lines[1]["severity"] == "WARNING"


def test_uses_its_own_pool_sized_by_settings(ctx, scenario) -> None:
    cached = Context(ctx.settings.with_(status_refresh_seconds=60, status_db_pool_size=1))
    try:
        for _ in range(5):
            assert call(cached, "/?format=json").status_code == 200
        source = status_module.source(cached)
        assert source.pool is not cached.pool and source.pool.size == 1
        assert source.refreshes == 1  # the other four were served from memory
    finally:
        cached.close()


def test_a_stale_pooled_connection_costs_no_503(ctx, scenario, conn) -> None:
    """After a database restart every pooled connection is dead: the read is retried once on a
    fresh connection instead of answering 503 (here: the server terminates the pooled one)."""
    assert call(ctx, "/?format=json").status_code == 200
    with status_module.source(ctx).pool.transaction() as pooled:  # LIFO: the next call's
        cur = pooled.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    admin = conn.cursor()
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.commit()
    response = call(ctx, "/?format=json")
    assert response.status_code == 200, response.get_data(as_text=True)


def test_open_alerts_are_listed_at_the_top_without_private_text(
    clean_db, no_alerts, settings, scenario
) -> None:
    from potability import alerts

    # the scenario's QC run flagged v3's live precision (its CUSUM, 1 FP then 1 TP, stands at
    # 0.683 >= the scenario's limit 0.5): an open alert
    failed = alerts.pipeline_failed("run-secret-7", "train: OSError: secret-host:5432 refused", "3")
    assert alerts.insert(clean_db, failed, scenario)
    clean_db.commit()
    data = status_data(clean_db, scenario)
    events = sorted(a["event"] for a in data["alerts"])
    assert events == [alerts.LIVE_PRECISION_FLAGGED, alerts.PIPELINE_RUN_FAILED]
    flagged = next(a for a in data["alerts"] if a["event"] == alerts.LIVE_PRECISION_FLAGGED)
    assert flagged["severity"] == "ERROR" and flagged["model_version"] == "3"
    assert (
        "live precision 50.0% on the last 2 lab-checked potable calls, floor 98%"
        in (flagged["detail"])
    )
    page = render_html(data)
    assert page.count('data-testid="alert"') == 2
    assert page.index("Open alerts (2)") < page.index('class="cards"')  # first thing shown
    assert "the train step failed; the served model is unchanged" in page
    for text in (json.dumps(data), page):
        assert "secret-host" not in text and "run-secret-7" not in text

    # resolved alerts leave the page
    alerts.resolve(clean_db, alerts.PIPELINE_RUN_FAILED, None, datetime.now(UTC))
    alerts.resolve(clean_db, alerts.LIVE_PRECISION_FLAGGED, None, datetime.now(UTC))
    clean_db.commit()
    data = status_data(clean_db, scenario)
    assert data["alerts"] == [] and 'data-testid="alerts-none"' in render_html(data)


# --- many readers, one query: the page cannot take the database from predict ----------------


@contextlib.contextmanager
def _server(ctx: Context) -> Iterator[str]:
    """The status handler behind a real threaded HTTP server on loopback."""
    app = flask.Flask("status-under-test")
    app.add_url_rule(
        "/",
        "status",
        view_func=lambda: serve(
            status_module.FUNCTION,
            status_module.handle,
            flask.request,
            ctx,
            status_module.render_error,
        ),
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/?format=json"
    finally:
        server.shutdown()
        thread.join(10)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _hold_rollups(conn: db.Connection) -> None:
    """Block every status refresh (its first statement reads the rolled-up hours)."""
    conn.cursor().execute("LOCK TABLE water.inference_rolled_hours IN ACCESS EXCLUSIVE MODE")


def _waiting_status_queries(conn: db.Connection) -> int:
    """Status queries waiting on the held lock: the refresh's roll-up, or - once its short
    budget ran out (functions/status.py ROLLUP_BUDGET_MS) - the refresh's read."""
    cur = conn.cursor()
    cur.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND (query LIKE '%roll_up_inference_hours%' OR query LIKE '%inference_rolled_hours%') "
        "AND pid <> pg_backend_pid()"
    )
    waiting = int(cur.fetchone()[0])
    conn.rollback()  # the statistics are a snapshot per transaction
    return waiting


def test_many_concurrent_readers_cost_one_query(settings: Settings, scenario, conn) -> None:
    readers = 40
    ctx = Context(settings.with_(status_refresh_seconds=60, status_db_pool_size=2))
    blocker = db.connect(settings)
    try:
        with _server(ctx) as url, ThreadPoolExecutor(readers) as pool:
            _hold_rollups(blocker)
            answers = [pool.submit(_get, url) for _ in range(readers)]
            deadline = time.monotonic() + 20
            while _waiting_status_queries(conn) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # every reader has arrived and waits for the one refresh
            assert _waiting_status_queries(conn) == 1  # one query in the database, not forty
            blocker.rollback()  # release: the refresh completes, all readers get its answer
            results = [a.result(timeout=30) for a in answers]
        assert [code for code, _ in results] == [200] * readers
        assert {body["generated_at"] for _, body in results} == {results[0][1]["generated_at"]}
        assert results[0][1]["inferences"]["last_7d"]["total"] == 7
        assert status_module.source(ctx).refreshes == 1
    finally:
        blocker.close()
        ctx.close()


def test_a_slow_database_fails_the_page_fast_by_the_statement_timeout(
    settings: Settings, scenario
) -> None:
    ctx = Context(settings.with_(status_refresh_seconds=0, status_statement_timeout_ms=300))
    blocker = db.connect(settings)
    try:
        _hold_rollups(blocker)
        started = time.monotonic()
        code, body = _get_direct(ctx)
        elapsed = time.monotonic() - started
        assert code == 503 and body["field"] == "database"
        assert elapsed < 5  # two attempts of 0.3 s each, not a wait for the lock
    finally:
        blocker.rollback()
        blocker.close()
        ctx.close()


def _get_direct(ctx: Context) -> tuple[int, dict]:
    response = call(ctx, "/?format=json")
    return response.status_code, response.get_json()
