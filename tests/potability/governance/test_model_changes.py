"""The model-change record (potability/governance/model_changes.py) on the real PostgreSQL: the
gate a winning challenger passes, hold state, candidates and their expiry, what a succeeded run
records, "the current champion" after an operator's change, and the alerts of each action."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pg8000.exceptions
import pytest

from potability import alerts, db
from potability.config import Settings
from potability.governance import model_changes as mc
from potability.governance import run_record

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("decision", "held", "approval", "expected"),
    [
        ("challenger_wins", False, "auto", "challenger_wins"),
        ("first_champion", False, "auto", "first_champion"),
        ("challenger_wins", True, "auto", "challenger_held"),
        ("challenger_wins", True, "manual", "challenger_held"),
        ("challenger_wins", False, "manual", "candidate_waiting"),
        ("first_champion", False, "manual", "candidate_waiting"),
        ("champion_kept", True, "manual", "champion_kept"),
    ],
)
def test_gate(decision: str, held: bool, approval: str, expected: str) -> None:
    assert mc.gate(decision, held, approval) == expected


def test_gate_refuses_an_unknown_approval_mode() -> None:
    with pytest.raises(ValueError, match="auto"):
        mc.gate("challenger_wins", False, "sometimes")


@pytest.fixture
def name(conn: db.Connection) -> Iterator[str]:
    model = f"test-changes-{uuid.uuid4().hex[:8]}"
    yield model
    conn.rollback()
    cur = conn.cursor()
    cur.execute("DELETE FROM water.model_changes WHERE model_name = %s", (model,))
    cur.execute("DELETE FROM water.alerts WHERE occurrence LIKE %s", (f"{model}%",))
    cur.execute("DELETE FROM water.pipeline_runs WHERE model_name = %s", (model,))
    conn.commit()


def _evidence(version: str, precision: float = 0.7) -> dict[str, Any]:
    return {
        "family": "random_forest",
        "held_out_precision": precision,
        "held_out_precision_low": precision - 0.1,
        "held_out_precision_high": precision + 0.1,
        "held_out_recall": 0.3,
        "threshold": 0.55,
        "probability_better": 0.95,
        "training_rows": 2600,
        "run_id": f"run-{version}",
    }


def test_hold_is_the_latest_of_held_and_released(conn: db.Connection, name: str) -> None:
    assert mc.hold_state(conn, name) is None
    mc.record(conn, model_name=name, action=mc.HELD, actor="ops@x", when=T0, reason="bad night")
    held = mc.hold_state(conn, name)
    assert held is not None and (held.since, held.actor, held.reason) == (T0, "ops@x", "bad night")
    mc.record(
        conn,
        model_name=name,
        action=mc.RELEASED,
        actor="ops@x",
        when=T0 + timedelta(hours=1),
        reason="fixed",
    )
    assert mc.hold_state(conn, name) is None
    assert mc.hold_state(conn, "another-model") is None


def test_candidates_wait_until_decided_or_expired(conn: db.Connection, name: str) -> None:
    for version, age in (("3", 10), ("4", 2), ("5", 1)):
        mc.record(
            conn,
            model_name=name,
            action=mc.CANDIDATE,
            actor=mc.AUTOMATIC,
            when=T0 - timedelta(days=age),
            version=version,
            evidence=_evidence(version),
        )
    mc.record(
        conn, model_name=name, action=mc.REJECTED, actor="ops@x", when=T0, version="5", reason="no"
    )
    assert [c.version for c in mc.pending_candidates(conn, name)] == ["4", "3"]
    expired = mc.expire_candidates(conn, name, T0, days=7)
    assert [c.version for c, _ in expired] == ["3"]
    assert [c.version for c in mc.pending_candidates(conn, name)] == ["4"]
    assert mc.expire_candidates(conn, name, T0, days=7) == []  # once
    row = mc.history(conn, T0 + timedelta(seconds=1), model_name=name)[0]
    assert (row.action, row.version, row.held_out_precision) == ("expired", "3", 0.7)


def test_served_versions_and_the_evidence_they_came_with(conn: db.Connection, name: str) -> None:
    for i, version in enumerate(("1", "2", "1", "3")):
        action = mc.ROLLED_BACK if i == 2 else mc.PROMOTED
        mc.record(
            conn,
            model_name=name,
            action=action,
            actor=mc.AUTOMATIC,
            when=T0 + timedelta(days=i),
            version=version,
            evidence=None if i == 2 else _evidence(version, 0.6 + i / 100),
        )
    assert mc.served_versions(conn, name) == ["3", "1", "2"]
    assert mc.latest_serving(conn, name).version == "3"
    assert mc.version_evidence(conn, name, "1").held_out_precision == 0.6
    assert mc.version_evidence(conn, name, "9") is None


def test_a_failed_switch_never_counts_as_serving(conn: db.Connection, name: str) -> None:
    mc.record(
        conn,
        model_name=name,
        action=mc.PROMOTED,
        actor=mc.AUTOMATIC,
        when=T0,
        version="1",
        evidence=_evidence("1"),
    )
    conn.commit()
    mc.begin_switch(
        conn,
        model_name=name,
        action=mc.ROLLED_BACK,
        actor="ops@x",
        when=T0 + timedelta(hours=1),
        version="0",
        reason="r",
    )
    # one switch at a time per model: the partial unique index refuses a second
    with pytest.raises(pg8000.exceptions.DatabaseError, match="model_changes_one_switch"):
        mc.begin_switch(
            conn,
            model_name=name,
            action=mc.ROLLED_BACK,
            actor="ops@y",
            when=T0 + timedelta(hours=1),
            version="0",
            reason="r",
        )
    conn.rollback()
    change = mc.begin_switch(
        conn,
        model_name=name,
        action=mc.ROLLED_BACK,
        actor="ops@x",
        when=T0 + timedelta(hours=1),
        version="0",
        reason="r",
    )
    mc.fail_switch(conn, change, "RuntimeError: did not start")
    assert mc.latest_serving(conn, name).version == "1"
    assert [c.action for c in mc.history(conn, T0 + timedelta(days=1), model_name=name)] == [
        "promoted"
    ]  # the public history leaves failed switches out


def _run(settings: Settings, run_id: str, name: str, decision: str, details: dict) -> None:
    run_record.start_run(settings, run_id, "sha", 100)
    values = {
        "decision": decision,
        "model_name": name,
        "champion_version": "1" if decision != "first_champion" else "1",
        "champion_family": "random_forest",
        "champion_precision": 0.7,
        "champion_precision_low": 0.6,
        "champion_precision_high": 0.8,
        "challenger_family": "svm",
        "challenger_precision": 0.72,
        "probability_challenger_better": 0.97,
        "training_rows": 100,
    }
    run_record.record_decision(settings, run_id, values, details)


def test_a_succeeded_run_records_its_promotion_or_candidate_once(
    settings: Settings, conn: db.Connection, name: str, webhook: Any
) -> None:
    hooked = settings.with_(alert_webhook_url=webhook.url)
    _run(hooked, f"{name}-a", name, "first_champion", {"previous_champion_version": None})
    run_record.finish_run(hooked, f"{name}-a")
    run_record.finish_run(hooked, f"{name}-a")  # a retried deploy step: still one row
    challenger = {"family": "svm", "scores": {"precision": 0.72, "recall": 0.3, "threshold": 0.4}}
    _run(
        hooked,
        f"{name}-b",
        name,
        "candidate_waiting",
        {
            "previous_champion_version": "1",
            "candidate_version": "2",
            "challenger": challenger,
            "challenger_precision_interval": [0.62, 0.81],
        },
    )
    run_record.finish_run(hooked, f"{name}-b")
    rows = mc.history(conn, datetime.now(UTC), model_name=name)
    assert [(r.action, r.version, r.actor) for r in rows] == [
        ("candidate", "2", "automatic"),
        ("promoted", "1", "automatic"),
    ]
    candidate = rows[0]
    assert (
        candidate.family,
        candidate.held_out_precision,
        candidate.held_out_precision_low,
        candidate.probability_better,
    ) == ("svm", 0.72, 0.62, 0.97)
    assert [c.version for c in mc.pending_candidates(conn, name)] == ["2"]
    assert webhook.wait_for(alerts.MODEL_CANDIDATE)[0]["model_version"] == "2"
    assert webhook.wait_for(alerts.MODEL_PROMOTED)[0]["model_version"] == "1"
    # the candidate's alert stays open until it is decided; the promotion is a notice
    open_events = {a["event"] for a in alerts.open_alerts(conn)}
    assert alerts.MODEL_CANDIDATE in open_events and alerts.MODEL_PROMOTED not in open_events


def _installed(
    settings: Settings,
    run_id: str,
    name: str,
    decision: str,
    version: str,
    recall: float,
    meets: float | None,
) -> None:
    run_record.start_run(settings, run_id, "sha", 100)
    values = {
        "decision": decision,
        "model_name": name,
        "champion_version": version,
        "champion_family": "random_forest",
        "champion_precision": 0.7,
        "champion_recall": recall,
        "recall_floor": 0.2,
        "challenger_family": "random_forest",
        "challenger_precision": 0.7,
        "training_rows": 100,
    }
    details = {"previous_champion_version": None, "champion_meets_floor": meets}
    run_record.record_decision(settings, run_id, values, details)
    run_record.finish_run(settings, run_id)


def test_a_champion_under_the_recall_floor_is_served_with_an_open_alert_until_replaced(
    settings: Settings, conn: db.Connection, name: str
) -> None:
    """Issue 31: a first champion is installed whatever its recall, never silently."""
    from pipelines.summary import recall_floor_warning

    def open_floor_alerts() -> list[dict[str, Any]]:
        conn.rollback()
        cur = conn.cursor()
        cur.execute(
            "SELECT model_version, message FROM water.alerts WHERE event = %s "
            "AND occurrence = %s AND resolved_at IS NULL",
            (alerts.CHAMPION_UNDER_FLOOR, name),
        )
        return [{"model_version": v, "message": m} for v, m in cur.fetchall()]

    # under the floor in 70% of resamples: served, alert open, the summary warns
    _installed(settings, f"{name}-a", name, "first_champion", "1", 0.188, 0.3)
    (alert,) = open_floor_alerts()
    assert alert["model_version"] == "1" and "0.188" in alert["message"]
    warning = recall_floor_warning(run_record.read_run(settings, f"{name}-a"))
    assert warning is not None and "18.8%" in warning and "70%" in warning
    # a replacement that meets the floor closes it, and its summary says nothing
    _installed(settings, f"{name}-b", name, "challenger_wins", "2", 0.24, 0.95)
    assert open_floor_alerts() == []
    assert recall_floor_warning(run_record.read_run(settings, f"{name}-b")) is None
    # at exactly half the resamples it is not "more likely under": no alert
    _installed(settings, f"{name}-c", name, "challenger_wins", "3", 0.2, 0.5)
    assert open_floor_alerts() == []


def test_an_operator_change_is_the_current_champion_until_a_later_run(
    settings: Settings, conn: db.Connection, name: str
) -> None:
    _run(settings, f"{name}-a", name, "challenger_wins", {"previous_champion_version": None})
    run_record.finish_run(settings, f"{name}-a")
    assert run_record.current_champion(conn).version == "1"
    when = datetime.now(UTC)
    mc.record(
        conn,
        model_name=name,
        action=mc.ROLLED_BACK,
        actor="ops@x",
        when=when,
        version="0",
        previous_version="1",
        reason="precision dropped",
        evidence=_evidence("0", 0.66),
    )
    conn.commit()
    champion = run_record.current_champion(conn)
    assert (champion.version, champion.run.decision, champion.run.champion_precision) == (
        "0",
        "rolled_back",
        0.66,
    )
    # the next run compares against what serves and confirms it: the run's answer again
    _run(settings, f"{name}-b", name, "champion_kept", {"previous_champion_version": "0"})
    conn.cursor().execute(
        "UPDATE water.pipeline_runs SET champion_version = '0' WHERE run_id = %s", (f"{name}-b",)
    )
    conn.commit()
    run_record.finish_run(settings, f"{name}-b")
    conn.rollback()
    assert run_record.current_champion(conn).run.run_id == f"{name}-b"


def test_each_action_raises_its_event(conn: db.Connection, name: str, no_alerts: Any) -> None:
    raised = {}
    for i, (action, version) in enumerate(
        [
            (mc.HELD, None),
            (mc.RELEASED, None),
            (mc.ROLLED_BACK, "1"),
            (mc.CANDIDATE, "2"),
            (mc.APPROVED, "2"),
            (mc.BLOCKED, "3"),
        ]
    ):
        when = T0 + timedelta(minutes=i)
        change_id = mc.record(
            conn,
            model_name=name,
            action=action,
            actor="ops@x",
            when=when,
            version=version,
            previous_version="2",
            reason="why",
        )
        change = next(
            c
            for c in mc.history(conn, T0 + timedelta(hours=1), model_name=name)
            if c.id == change_id
        )
        raised[action] = [a.event for a in mc.raise_alerts(conn, change, when)]
        if action == mc.HELD:
            assert [a["event"] for a in alerts.open_alerts(conn)] == [alerts.MODEL_HELD]
    assert raised == {
        "held": ["model_held"],
        "released": ["model_changed"],
        "rolled_back": ["model_rolled_back"],
        "candidate": ["model_candidate"],
        "approved": ["model_changed"],
        "blocked": [],
    }
    assert alerts.open_alerts(conn) == []  # released closed the hold, approved the candidate
    assert alerts.EVENTS[alerts.MODEL_ROLLED_BACK].severity == "ERROR"


def test_the_operators_alert_lines_go_to_cloud_logging_as_google_accepts_them() -> None:
    import gcp_discovery

    from potability.governance import model_control

    change = mc.ModelChange(
        id=7,
        model_name="water-potability",
        action=mc.ROLLED_BACK,
        version="4",
        previous_version="5",
        family="svm",
        held_out_precision=0.7,
        held_out_precision_low=0.6,
        held_out_precision_high=0.8,
        held_out_recall=0.3,
        threshold=0.5,
        probability_better=None,
        training_rows=10,
        run_id="r",
        actor="ops@x",
        reason="why",
        status="done",
        started_at=T0,
        changed_at=T0,
        error=None,
    )
    sent = []
    settings = Settings(env="gcp", google_cloud_project="demo", status_url="https://s.example")
    model_control.write_to_cloud_logging(
        settings, [mc.alert_for(change)], T0, post=lambda url, body: sent.append((url, body))
    )
    ((url, body),) = sent
    assert url == "https://logging.googleapis.com/v2/entries:write"
    gcp_discovery.validate_request("logging", "v2", "logging.entries.write", body)
    (entry,) = body["entries"]
    assert entry["resource"] == {"type": "global", "labels": {"project_id": "demo"}}
    assert entry["severity"] == "ERROR"
    assert entry["jsonPayload"]["alert"] == "model_rolled_back"  # what the log filter matches
    assert alerts.EVENTS[alerts.MODEL_ROLLED_BACK].gcp_resource == "global"
