"""The public, read-only status page: the regulator follows the operation, customers see the
quality of the service.

``GET /`` answers HTML (a self-contained page, server-rendered SVG charts, no scripts);
``?format=json`` or ``Accept: application/json`` answers the same data as JSON. Everything
comes from the database in one read-only transaction: the current champion and the last
pipeline run from ``water.pipeline_runs`` (asked of :mod:`potability.run_record`; no MLflow
call), inference and lab-sample counts from the logs, live precision and drift from the
latest ``potability qc`` run.

Nothing private is shown: no submitter identities, no sample or request ids, no tokens, no
error texts (they may carry hostnames). It is served like the other functions, through
:func:`functions.serving.serve` (the instance's shared pool, one request log line, the JSON
error contract, the stale-connection retry); database down -> 503 with ``Retry-After``.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Any

import flask

from functions.http import RETRY_AFTER_SECONDS, ApiError, error_response, json_response
from functions.serving import Call, Context, retry_stale_connection
from functions.status_page import render_error_html, render_html
from potability import alerts, db, run_record
from potability.features import FEATURE_NAMES

FUNCTION = "status"
CACHE_SECONDS = 60
MAX_SENSORS = 50
"""Per-sensor breakdowns list the busiest sensors only, so the page stays readable."""


# --- data (pure given a connection) ------------------------------------------------------

def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), digits)


def _share(part: int, total: int) -> float | None:
    return _num(part / total) if total else None


def _rows(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _champion(conn: db.Connection) -> dict[str, Any] | None:
    record = run_record.current_champion(conn)
    if record is None:
        return None
    r = record.run
    return {
        "name": r.model_name,
        "version": r.champion_version,
        "family": r.champion_family,
        "held_out_precision": _num(r.champion_precision),
        # 95% bootstrap interval (training/evaluation.py::precision_interval); None before 006
        "held_out_precision_interval": (
            [_num(r.champion_precision_low), _num(r.champion_precision_high)]
            if r.champion_precision_low is not None else None),
        "held_out_recall": _num(r.champion_recall),
        "threshold": _num(r.champion_threshold),
        "training_rows": r.training_rows,
        "confirmed_at": _iso(r.finished_at),
        "decision": r.decision,
    }


def _last_run(conn: db.Connection) -> dict[str, Any] | None:
    r = run_record.last_run(conn)
    if r is None:
        return None
    return {
        "status": r.status,
        "decision": r.decision,
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "champion_version": r.champion_version,
        "challenger_family": r.challenger_family,
        "challenger_precision": _num(r.challenger_precision),
        "challenger_recall": _num(r.challenger_recall),
        "recall_floor": _num(r.recall_floor),
    }


def _inference_window(cur: Any, start: datetime, end: datetime) -> dict[str, Any]:
    where = "WHERE inferred_at > %s AND inferred_at <= %s"
    cur.execute(
        "SELECT count(*), count(*) FILTER (WHERE predicted_class = 1), count(DISTINCT sensor_id) "
        f"FROM water.water_inferences {where}", (start, end),
    )
    total, potable, sensors = cur.fetchone()
    cur.execute(
        "SELECT sensor_id, count(*) AS n, count(*) FILTER (WHERE predicted_class = 1) AS p "
        f"FROM water.water_inferences {where} GROUP BY sensor_id "
        "ORDER BY n DESC, sensor_id LIMIT %s", (start, end, MAX_SENSORS),
    )
    by_sensor = [
        {"sensor_id": s, "total": n, "potable": p, "potable_share": _share(p, n)}
        for s, n, p in cur.fetchall()
    ]
    cur.execute(
        "SELECT model_version, count(*) AS n, count(*) FILTER (WHERE predicted_class = 1) "
        f"FROM water.water_inferences {where} GROUP BY model_version ORDER BY n DESC, model_version",
        (start, end),
    )
    by_version = [
        {"model_version": v, "total": n, "potable": p, "potable_share": _share(p, n)}
        for v, n, p in cur.fetchall()
    ]
    return {
        "total": total, "potable": potable, "potable_share": _share(potable, total),
        "sensors": sensors, "by_sensor": by_sensor, "by_model_version": by_version,
    }


def _buckets(cur: Any, now: datetime, size: timedelta, count: int) -> list[dict[str, Any]]:
    """Inferences in ``count`` consecutive buckets of ``size`` ending at ``now`` (oldest first);
    bucket k covers (now - (k+1)*size, now - k*size], so the buckets add up to the window."""
    seconds = size.total_seconds()
    cur.execute(
        "SELECT floor(extract(epoch FROM (%s::timestamptz - inferred_at)) / %s)::int AS k, "
        "count(*), count(*) FILTER (WHERE predicted_class = 1) FROM water.water_inferences "
        "WHERE inferred_at > %s AND inferred_at <= %s GROUP BY k",
        (now, seconds, now - size * count, now),
    )
    found = {k: (n, p) for k, n, p in cur.fetchall()}
    out = []
    for k in reversed(range(count)):
        n, p = found.get(k, (0, 0))
        out.append({"end": _iso(now - size * k), "total": n, "potable": p})
    return out


def _lab_samples(cur: Any, now: datetime) -> dict[str, Any]:
    cur.execute(
        "SELECT count(*), "
        "count(*) FILTER (WHERE created_at > %s), "
        "count(*) FILTER (WHERE created_at > %s), "
        "count(*) FILTER (WHERE created_at > %s AND potability = 1), "
        "count(DISTINCT sensor_id) FILTER (WHERE created_at > %s), "
        "max(created_at) "
        "FROM water.water_potability WHERE source = 'lab' AND created_at <= %s",
        (now - timedelta(hours=24), now - timedelta(days=7), now - timedelta(days=7),
         now - timedelta(days=7), now),
    )
    total, day, week, week_potable, week_sensors, last = cur.fetchone()
    return {
        "total": total, "last_24h": day, "last_7d": week,
        "potable_share_7d": _share(week_potable, week), "sensors_7d": week_sensors,
        "last_received_at": _iso(last),
    }


def _quality_control(cur: Any) -> dict[str, Any] | None:
    cur.execute(
        "SELECT id, computed_at, match_window_minutes, precision_floor, min_matches, "
        "lab_samples, matched_samples, champion_version, drift_window_start, drift_window_end, "
        "drift_reference_rows, drift_recent_rows FROM water.qc_runs "
        "ORDER BY computed_at DESC, id DESC LIMIT 1"
    )
    runs = _rows(cur)
    if not runs:
        return None
    run = runs[0]
    cur.execute(
        "SELECT model_version, period, week_start, matches, true_positives, false_positives, "
        "false_negatives, true_negatives, live_precision, live_recall, flagged "
        "FROM water.qc_live_metrics WHERE run_id = %s "
        "ORDER BY model_version, (period = 'all'), week_start",
        (run["id"],),
    )
    live = [
        {
            "model_version": r["model_version"], "period": r["period"],
            "week_start": _iso(r["week_start"]), "matches": r["matches"],
            "true_positives": r["true_positives"], "false_positives": r["false_positives"],
            "false_negatives": r["false_negatives"], "true_negatives": r["true_negatives"],
            "precision": _num(r["live_precision"]), "recall": _num(r["live_recall"]),
            "flagged": r["flagged"],
        }
        for r in _rows(cur)
    ]
    cur.execute(
        "SELECT feature, psi, status, recent_rows, reference_rows, recent_null_share, "
        "reference_null_share FROM water.qc_drift WHERE run_id = %s",
        (run["id"],),
    )
    order = {name: i for i, name in enumerate(FEATURE_NAMES)}
    features = sorted(_rows(cur), key=lambda r: order.get(r["feature"], len(order)))
    drift = [
        {
            "feature": r["feature"], "psi": _num(r["psi"]), "status": r["status"],
            "recent_null_share": _num(r["recent_null_share"]),
            "reference_null_share": _num(r["reference_null_share"]),
        }
        for r in features
    ]
    return {
        "computed_at": _iso(run["computed_at"]),
        "match_window_minutes": _num(run["match_window_minutes"]),
        "precision_floor": _num(run["precision_floor"]),
        "min_matches": run["min_matches"],
        "lab_samples": run["lab_samples"],
        "matched_samples": run["matched_samples"],
        "flagged": any(r["flagged"] for r in live),
        "live": live,
        "drift": {
            "champion_version": run["champion_version"],
            "window_start": _iso(run["drift_window_start"]),
            "window_end": _iso(run["drift_window_end"]),
            "reference_rows": run["drift_reference_rows"],
            "recent_rows": run["drift_recent_rows"],
            "features": drift,
            "drifting": [d["feature"] for d in drift if d["status"] == "drift"],
            "watch": [d["feature"] for d in drift if d["status"] == "watch"],
        },
    }


def _headline(model: dict[str, Any] | None, qc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The live precision to show first: the champion's all-weeks row (else the version with
    the most matches)."""
    if qc is None:
        return None
    rows = [r for r in qc["live"] if r["period"] == "all"]
    if not rows:
        return None
    chosen = [r for r in rows if model and r["model_version"] == model["version"]]
    return chosen[0] if chosen else max(rows, key=lambda r: r["matches"])


def _open_alerts(conn: db.Connection) -> list[dict[str, Any]]:
    """The open alerts (``water.alerts``), public fields only: no messages or raw figures."""
    return [{k: a[k] for k in ("event", "title", "severity", "model_version", "detail",
                               "raised_at")} for a in alerts.open_alerts(conn)]


def status_data(conn: db.Connection, now: datetime) -> dict[str, Any]:
    """Everything the page shows, as JSON-safe values (ISO-8601 UTC strings, rounded floats)."""
    cur = conn.cursor()
    model = _champion(conn)
    qc = _quality_control(cur)
    return {
        "generated_at": _iso(now),
        "alerts": _open_alerts(conn),
        "model": model,
        "last_pipeline_run": _last_run(conn),
        "inferences": {
            "last_24h": _inference_window(cur, now - timedelta(hours=24), now),
            "last_7d": _inference_window(cur, now - timedelta(days=7), now),
            "hourly_24h": _buckets(cur, now, timedelta(hours=1), 24),
            "daily_7d": _buckets(cur, now, timedelta(days=1), 7),
        },
        "lab_samples": _lab_samples(cur, now),
        "live_precision": _headline(model, qc),
        "quality_control": qc,
    }


# --- HTTP edge ---------------------------------------------------------------------------

def _wants_json(request: flask.Request) -> bool:
    fmt = request.args.get("format")
    if fmt is not None:
        return fmt == "json"
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _read(ctx: Context) -> dict[str, Any]:
    """One read-only transaction: every number on the page comes from the same snapshot."""
    with ctx.pool.transaction() as conn:
        conn.cursor().execute("SET TRANSACTION READ ONLY")
        return status_data(conn, datetime.now(timezone.utc))


def handle(request: flask.Request, ctx: Context, call: Call) -> flask.Response:
    """The page (or its JSON); run through :func:`functions.serving.serve` like the others."""
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "method", "use GET or HEAD", {"Allow": "GET, HEAD"})
    fmt = request.args.get("format")
    if fmt not in (None, "html", "json"):
        raise ApiError(400, "format", "format must be 'html' or 'json'")
    as_json = _wants_json(request)
    call.log["format"] = "json" if as_json else "html"
    data = retry_stale_connection(lambda: _read(ctx))  # read-only: always safe to repeat
    headers = {"Cache-Control": f"public, max-age={CACHE_SECONDS}", "Vary": "Accept"}
    if as_json:
        return json_response(data, 200, headers)
    response = flask.Response(render_html(data), 200, mimetype="text/html")
    response.headers.update(headers)
    return response


def render_error(request: flask.Request, error: ApiError, request_id: str | None
                 ) -> flask.Response:
    """Errors in the functions' JSON contract, except that a browser asking for the page while
    the database is down gets a readable HTML page (same 503, same ``Retry-After``). Never
    cached: a CDN must not keep serving an outage after it ended."""
    if error.status == 503 and not _wants_json(request):
        retry_after = int(error.headers.get("Retry-After", RETRY_AFTER_SECONDS))
        response = flask.Response(render_error_html(retry_after), 503, mimetype="text/html")
        response.headers.update(error.headers)
    else:
        response = error_response(error, request_id)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept"
    return response
