"""Least privilege, tried by acting as each access role (sql/005, sql/011) on the session's
migrated database: what a compromised function could do is what its role allows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError

from potability import alerts, db
from potability.config import Settings


@pytest.fixture
def admin(settings: Settings) -> Iterator[db.Connection]:
    conn = db.connect(settings)
    yield conn
    conn.rollback()
    conn.close()


def as_role(conn: db.Connection, role: str, sql: str, *params: Any) -> list[Any]:
    """Run ``sql`` as ``role`` in a transaction of its own, rolled back afterwards."""
    cur = conn.cursor()
    try:
        cur.execute(f"SET LOCAL ROLE {role}")
        cur.execute(sql, params) if params else cur.execute(sql)
        return [list(r) for r in cur.fetchall()] if cur.description else []
    finally:
        conn.rollback()


def denied(conn: db.Connection, role: str, sql: str, *params: Any) -> bool:
    try:
        as_role(conn, role, sql, *params)
    except DatabaseError as exc:
        return "permission denied" in str(exc)
    return False


ALERT = (
    "INSERT INTO water.alerts (event, occurrence, severity, message) "
    "VALUES ('live_precision_flagged', 'x', 'ERROR', 'm')"
)


@pytest.mark.parametrize("role", ["water_predict", "water_samples"])
def test_public_functions_cannot_touch_alerts_except_their_own_error_rate(admin, role) -> None:
    cur = admin.cursor()
    cur.execute(ALERT + " RETURNING id")
    flagged = cur.fetchone()[0]
    admin.commit()
    try:
        assert denied(admin, role, "UPDATE water.alerts SET resolved_at = now()")
        assert denied(admin, role, "DELETE FROM water.alerts")
        assert denied(admin, role, ALERT)
        now = datetime.now(UTC)
        fn = "predict" if role == "water_predict" else "add_sample"
        assert as_role(
            admin,
            role,
            "SELECT water.raise_function_alert(%s, %s, %s, %s::jsonb, %s)",
            fn,
            None,
            "errors",
            json.dumps({"function": fn}),
            now,
        ) == [[True]]
        assert as_role(admin, role, "SELECT water.resolve_function_alert(%s, %s)", fn, now) == [[0]]
        other = "add_sample" if fn == "predict" else "predict"
        with pytest.raises(DatabaseError):
            as_role(
                admin, role, "SELECT water.raise_function_alert(%s, NULL, 'm', '{}', now())", other
            )
        cur.execute("SELECT resolved_at FROM water.alerts WHERE id = %s", (flagged,))
        assert cur.fetchone()[0] is None
    finally:
        cur.execute("DELETE FROM water.alerts")
        admin.commit()


def test_function_error_alerts_are_recorded_and_resolved_through_the_narrow_functions(
    settings, no_alerts
) -> None:
    alert = alerts.function_errors(
        "predict", {"server_errors": 5, "requests": 20, "window_seconds": 300.0, "error_rate": 0.25}
    )
    record = alerts._record_with_own_connection(settings)
    assert record(alert, datetime.now(UTC)) is True
    assert record(alert, datetime.now(UTC)) is False  # already open
    alerts._resolve_with_own_connection(settings, alert)
    cur = no_alerts.cursor()
    no_alerts.rollback()
    cur.execute("SELECT event, occurrence, resolved_at IS NOT NULL FROM water.alerts")
    assert [list(r) for r in cur.fetchall()] == [["function_errors", "predict", True]]


def test_the_status_role_cannot_read_who_submitted_samples(admin) -> None:
    assert denied(admin, "water_status", "SELECT submitted_by FROM water.water_potability")
    assert denied(admin, "water_status", "SELECT * FROM water.water_potability")
    assert as_role(
        admin, "water_status", "SELECT count(*) FROM water.water_potability WHERE source = 'lab'"
    )
    assert denied(admin, "water_status", "SELECT * FROM water.water_potability_history")


def test_every_write_to_the_training_table_is_in_its_history_admins_included(admin) -> None:
    sample_id = f"audit-{uuid.uuid4().hex[:8]}"
    cur = admin.cursor()
    cur.execute("SET LOCAL ROLE water_samples")
    cur.execute("SELECT set_config('potability.submitter', 'regulator@example.org', true)")
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, potability, sampled_at, "
        "submitted_by, source) VALUES (%s, 1, now(), 'regulator@example.org', 'lab') "
        "RETURNING id",
        (sample_id,),
    )
    row_id = cur.fetchone()[0]
    admin.commit()
    cur.execute("UPDATE water.water_potability SET potability = 0 WHERE id = %s", (row_id,))
    cur.execute("DELETE FROM water.water_potability WHERE id = %s", (row_id,))
    admin.commit()
    cur.execute(
        "SELECT operation, acting_role, app_user, old_row->>'potability', "
        "new_row->>'potability' FROM water.water_potability_history "
        "WHERE row_id = %s ORDER BY id",
        (row_id,),
    )
    rows = [list(r) for r in cur.fetchall()]
    admin.rollback()
    assert [r[0] for r in rows] == ["INSERT", "UPDATE", "DELETE"]
    assert rows[0][1:] == ["water_samples", "regulator@example.org", None, "1"]
    assert rows[1][3:] == ["1", "0"] and rows[1][1:3] == ["none", None]  # the admin, no role
    assert rows[2][3:] == ["0", None]
    assert denied(
        admin, "water_samples", "UPDATE water.water_potability_history SET operation = 'x'"
    )
    assert denied(admin, "water_samples", "DELETE FROM water.water_potability_history")
