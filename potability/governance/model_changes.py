"""The record of every change of the model in service: ``water.model_changes`` (sql/012).

One owner for the table: who changed the served model, why, when, on what evidence. The
daily pipeline's promotions (actor ``automatic``), operators' rollbacks, approvals,
rejections, holds and releases, candidates waiting for approval, their expiry, and winning
challengers a hold blocked - each one row, with the evidence of the version concerned
(held-out precision and its 95% interval, P(challenger better), the pipeline run it comes
from), so the public history (status page) and "what serves now" need no other table.

* pure rules: :func:`gate` (what a winning challenger becomes under a hold or manual
  approval), :func:`is_expired`;
* readers, typed (:class:`ModelChange`, :class:`Hold`): :func:`hold_state`,
  :func:`latest_serving`, :func:`version_evidence`, :func:`pending_candidates`,
  :func:`history`, :func:`alerts_around`;
* writers, in the caller's transaction: :func:`record`, :func:`begin_switch`,
  :func:`finish_switch`, :func:`fail_switch`, :func:`record_run_outcome` (the pipeline's
  success, from :func:`potability.governance.run_record.finish_run`), :func:`expire_candidates`.

The actions themselves (moving the alias, deploying, undeploying) are
:mod:`potability.governance.model_control`'s; this module imports neither MLflow nor the run
record, so the status function and :mod:`potability.governance.run_record` can read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from potability import alerts, db

AUTOMATIC = "automatic"
"""The actor of the daily pipeline's changes."""

PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
APPROVED = "approved"
REJECTED = "rejected"
CANDIDATE = "candidate"
EXPIRED = "expired"
BLOCKED = "blocked"
HELD = "held"
RELEASED = "released"
ACTIONS = (PROMOTED, ROLLED_BACK, APPROVED, REJECTED, CANDIDATE, EXPIRED, BLOCKED, HELD, RELEASED)
SERVING_ACTIONS = (PROMOTED, ROLLED_BACK, APPROVED)
"""Actions after which another version serves."""

SWITCHING, DONE, FAILED = "switching", "done", "failed"

AUTO, MANUAL = "auto", "manual"
APPROVAL_MODES = (AUTO, MANUAL)
"""``PROMOTION_APPROVAL``: ``auto`` promotes a winning challenger at once, ``manual`` makes it
a candidate that waits for ``potability model approve``."""

# promote's decisions (training/decision.py) a hold or manual approval turns into these two
WINNING_DECISIONS = ("first_champion", "challenger_wins")
CHALLENGER_HELD = "challenger_held"
CANDIDATE_WAITING = "candidate_waiting"

HISTORY_DAYS = 90
"""How far back the public history goes."""
ALERTS_AROUND_HOURS = 24.0
"""Alerts raised this long before (and after) a change are shown beside it."""


@dataclass(frozen=True)
class ModelChange:
    """One row of ``water.model_changes``."""

    id: int
    model_name: str
    action: str
    version: str | None
    previous_version: str | None
    family: str | None
    held_out_precision: float | None
    held_out_precision_low: float | None
    held_out_precision_high: float | None
    held_out_recall: float | None
    threshold: float | None
    probability_better: float | None
    training_rows: int | None
    run_id: str | None
    actor: str
    reason: str | None
    status: str
    started_at: datetime
    changed_at: datetime | None
    error: str | None


_COLUMNS = tuple(f.name for f in fields(ModelChange))
_EVIDENCE = (
    "family",
    "held_out_precision",
    "held_out_precision_low",
    "held_out_precision_high",
    "held_out_recall",
    "threshold",
    "probability_better",
    "training_rows",
    "run_id",
)
"""The evidence columns a change copies from the row that brought its version in."""


def _change(row: Any) -> ModelChange:
    return ModelChange(**dict(zip(_COLUMNS, row, strict=False)))


def _select(
    where: str, params: tuple[Any, ...], conn: db.Connection, tail: str = ""
) -> list[ModelChange]:
    cur = conn.cursor()
    cur.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM water.model_changes WHERE {where} {tail}", params
    )
    return [_change(r) for r in cur.fetchall()]


@dataclass(frozen=True)
class Hold:
    """Promotions are held: since when, by whom, why."""

    since: datetime
    actor: str
    reason: str | None


# --- pure rules ------------------------------------------------------------------------------


def check_approval_mode(mode: str) -> str:
    if mode not in APPROVAL_MODES:
        raise ValueError(f"promotion approval must be one of {APPROVAL_MODES}, got {mode!r}")
    return mode


def gate(decision: str, held: bool, approval: str) -> str:
    """What promote's ``decision`` becomes: a winning challenger is ``challenger_held`` while
    promotions are held, a ``candidate_waiting`` in manual approval mode, else unchanged."""
    check_approval_mode(approval)
    if decision not in WINNING_DECISIONS:
        return decision
    if held:
        return CHALLENGER_HELD
    return CANDIDATE_WAITING if approval == MANUAL else decision


def is_expired(candidate: ModelChange, now: datetime, days: float) -> bool:
    """A candidate older than ``days`` can no longer be approved (its evidence is stale: the
    champion and the lab samples moved on)."""
    return now - candidate.started_at > timedelta(days=days)


# --- readers ---------------------------------------------------------------------------------


def find(conn: db.Connection, change_id: int) -> ModelChange:
    """The change ``change_id`` (every caller has just recorded it: LookupError otherwise)."""
    rows = _select("id = %s", (change_id,), conn)
    if not rows:
        raise LookupError(f"no model change {change_id}")
    return rows[0]


def hold_state(conn: db.Connection, model_name: str) -> Hold | None:
    """The hold in force (the latest ``held`` not followed by a ``released``), or None."""
    rows = _select(
        "model_name = %s AND action IN ('held', 'released')",
        (model_name,),
        conn,
        "ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    if not rows or rows[0].action != HELD:
        return None
    return Hold(rows[0].started_at, rows[0].actor, rows[0].reason)


def latest_serving(conn: db.Connection, model_name: str | None = None) -> ModelChange | None:
    """The last completed change of the served version (any model when ``model_name`` is
    None), or None before the first."""
    where = "status = 'done' AND action IN ('promoted', 'rolled_back', 'approved')"
    params: tuple[Any, ...] = ()
    if model_name is not None:
        where += " AND model_name = %s"
        params = (model_name,)
    rows = _select(where, params, conn, "ORDER BY changed_at DESC, id DESC LIMIT 1")
    return rows[0] if rows else None


def version_evidence(conn: db.Connection, model_name: str, version: str) -> ModelChange | None:
    """The row that brought ``version`` in - its promotion, approval or candidacy - with its
    evidence; None if the record never saw that version."""
    rows = _select(
        "model_name = %s AND version = %s AND action IN "
        "('promoted', 'approved', 'candidate') AND held_out_precision IS NOT NULL",
        (model_name, version),
        conn,
        "ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    return rows[0] if rows else None


def served_versions(conn: db.Connection, model_name: str) -> list[str]:
    """Versions that served, most recent first, each once (``rollback``'s default target is
    the second)."""
    seen: list[str] = []
    for change in _select(
        "model_name = %s AND status = 'done' AND action IN ('promoted', 'rolled_back', 'approved')",
        (model_name,),
        conn,
        "ORDER BY changed_at DESC, id DESC",
    ):
        if change.version and change.version not in seen:
            seen.append(change.version)
    return seen


def pending_candidates(conn: db.Connection, model_name: str) -> list[ModelChange]:
    """Candidates not yet approved, rejected or expired, newest first."""
    return _select(
        "model_name = %s AND action = 'candidate' AND NOT EXISTS (SELECT 1 FROM "
        "water.model_changes d WHERE d.model_name = water.model_changes.model_name AND "
        "d.version = water.model_changes.version AND d.action IN ('approved', 'rejected', "
        "'expired') AND d.status <> 'failed' AND d.started_at >= water.model_changes.started_at)",
        (model_name,),
        conn,
        "ORDER BY started_at DESC, id DESC",
    )


def history(
    conn: db.Connection,
    now: datetime,
    days: float = HISTORY_DAYS,
    model_name: str | None = None,
    limit: int = 200,
) -> list[ModelChange]:
    """The changes of the last ``days``, newest first (the public history). Failed switches
    are left out: nothing changed for the public."""
    where = "started_at > %s AND started_at <= %s AND status <> 'failed'"
    params: tuple[Any, ...] = (now - timedelta(days=days), now)
    if model_name is not None:
        where += " AND model_name = %s"
        params += (model_name,)
    return _select(where, params, conn, f"ORDER BY started_at DESC, id DESC LIMIT {int(limit)}")


MODEL_EVENTS = (
    alerts.MODEL_ROLLED_BACK,
    alerts.MODEL_CHANGED,
    alerts.MODEL_HELD,
    alerts.MODEL_PROMOTED,
    alerts.MODEL_CANDIDATE,
)


def alerts_around(
    conn: db.Connection, changes: list[ModelChange], hours: float = ALERTS_AROUND_HOURS
) -> dict[int, list[dict[str, Any]]]:
    """Per change id: the other alerts (not the model-change events themselves) raised from
    ``hours`` before to ``hours`` after it - what the public sees next to a change (public
    fields only, no messages)."""
    if not changes:
        return {}
    span = timedelta(hours=hours)
    low = min(c.started_at for c in changes) - span
    high = max(c.started_at for c in changes) + span
    cur = conn.cursor()
    cur.execute(
        "SELECT event, severity, model_version, figures, raised_at, resolved_at "
        "FROM water.alerts WHERE raised_at BETWEEN %s AND %s AND event <> ALL(%s) "
        "ORDER BY raised_at LIMIT 1000",
        (low, high, list(MODEL_EVENTS)),
    )
    found = cur.fetchall()
    out: dict[int, list[dict[str, Any]]] = {}
    for change in changes:
        near = []
        for event, severity, version, figures, raised_at, resolved_at in found:
            if abs(raised_at - change.started_at) <= span:
                if isinstance(figures, str):
                    figures = json.loads(figures)
                near.append(
                    {
                        "event": event,
                        "severity": severity,
                        "model_version": version,
                        "title": alerts.EVENTS[event].title if event in alerts.EVENTS else event,
                        "detail": alerts.public_detail(event, figures or {}),
                        "raised_at": alerts.iso(raised_at),
                        "resolved_at": alerts.iso(resolved_at) if resolved_at else None,
                    }
                )
        out[change.id] = near
    return out


# --- writers (the caller's transaction) -------------------------------------------------------


def record(
    conn: db.Connection,
    *,
    model_name: str,
    action: str,
    actor: str,
    when: datetime,
    version: str | None = None,
    previous_version: str | None = None,
    reason: str | None = None,
    evidence: ModelChange | Mapping[str, Any] | None = None,
    status: str = DONE,
    error: str | None = None,
) -> int:
    """Insert one change; return its id. ``evidence``: the row (or mapping) whose evidence
    columns (family, held-out figures, P(better), run id) the change carries."""
    if action not in ACTIONS:
        raise ValueError(f"unknown model change {action!r}")
    if not actor.strip():
        raise ValueError("a model change needs who made it")
    source: Mapping[str, Any] = (
        {k: getattr(evidence, k) for k in _EVIDENCE}
        if isinstance(evidence, ModelChange)
        else dict(evidence or {})
    )
    values = {k: source.get(k) for k in _EVIDENCE}
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO water.model_changes (model_name, action, version, previous_version, "
        f"{', '.join(_EVIDENCE)}, actor, reason, status, started_at, changed_at, error) "
        f"VALUES (%s, %s, %s, %s, {', '.join(['%s'] * len(_EVIDENCE))}, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (
            model_name,
            action,
            version,
            previous_version,
            *values.values(),
            actor,
            reason,
            status,
            when,
            when if status == DONE else None,
            error,
        ),
    )
    return int(cur.fetchone()[0])


def begin_switch(conn: db.Connection, **kwargs: Any) -> int:
    """Record a serving change as ``switching`` (one at a time per model: the partial unique
    index refuses a second). Commit before deploying, so the window is on record."""
    return record(conn, status=SWITCHING, **kwargs)


def finish_switch(conn: db.Connection, change_id: int, when: datetime) -> None:
    """The new version answers: the change is ``done`` as of ``when``."""
    conn.cursor().execute(
        "UPDATE water.model_changes SET status = 'done', changed_at = greatest(%s, started_at) "
        "WHERE id = %s",
        (when, change_id),
    )


def fail_switch(conn: db.Connection, change_id: int, error: str) -> None:
    """The switch failed; the old version kept serving."""
    conn.cursor().execute(
        "UPDATE water.model_changes SET status = 'failed', error = %s WHERE id = %s",
        (error[:2000], change_id),
    )


def abandoned_switches(conn: db.Connection, model_name: str) -> list[ModelChange]:
    """Switches left ``switching`` (a command killed halfway): the next command marks them
    failed before it starts, as what serves is whatever the serving side reports."""
    return _select("model_name = %s AND status = 'switching'", (model_name,), conn)


def record_run_outcome(conn: db.Connection, run: Any, when: datetime) -> list[alerts.Alert]:
    """The pipeline run ``run`` (a :class:`potability.governance.run_record.PipelineRun`) succeeded:
    record what it changed - a promotion, a candidate, a challenger blocked by a hold - with
    its evidence; return the alerts to raise (already recorded in ``water.alerts``)."""
    details = run.details or {}
    name = run.model_name or ""
    if not name or run.decision not in (*WINNING_DECISIONS, CHALLENGER_HELD, CANDIDATE_WAITING):
        return []
    if _select(
        "run_id = %s AND action IN ('promoted', 'candidate', 'blocked')", (run.run_id,), conn
    ):
        return []  # a retried deploy step: already recorded
    previous = details.get("previous_champion_version")
    if run.decision in WINNING_DECISIONS:
        evidence = {
            "family": run.champion_family,
            "held_out_precision": run.champion_precision,
            "held_out_precision_low": run.champion_precision_low,
            "held_out_precision_high": run.champion_precision_high,
            "held_out_recall": run.champion_recall,
            "threshold": run.champion_threshold,
            "probability_better": run.probability_challenger_better,
            "training_rows": run.training_rows,
            "run_id": run.run_id,
        }
        action, version = PROMOTED, run.champion_version
    else:
        c = details.get("challenger") or {}
        scores = c.get("scores") or {}
        interval = details.get("challenger_precision_interval") or [None, None]
        evidence = {
            "family": c.get("family"),
            "held_out_precision": scores.get("precision"),
            "held_out_precision_low": interval[0],
            "held_out_precision_high": interval[1],
            "held_out_recall": scores.get("recall"),
            "threshold": scores.get("threshold"),
            "probability_better": run.probability_challenger_better,
            "training_rows": run.training_rows,
            "run_id": run.run_id,
        }
        action = CANDIDATE if run.decision == CANDIDATE_WAITING else BLOCKED
        version = details.get("candidate_version")
    change_id = record(
        conn,
        model_name=name,
        action=action,
        actor=AUTOMATIC,
        when=when,
        version=version,
        previous_version=previous,
        evidence=evidence,
    )
    raised = raise_alerts(conn, find(conn, change_id), when)
    if run.decision in WINNING_DECISIONS:
        raised += recall_floor_alerts(conn, run, when)
    return raised


def recall_floor_alerts(conn: db.Connection, run: Any, when: datetime) -> list[alerts.Alert]:
    """A run installed a new champion: close the model's ``champion_under_recall_floor`` alert
    (it was about the version replaced) and raise it again if the new one is more likely under
    the floor than over it (``details.champion_meets_floor`` < 0.5, promote's bootstrap) -
    a first champion is served whatever its recall (issue 31, docs/statistics.md)."""
    name = run.model_name or ""
    alerts.resolve(conn, alerts.CHAMPION_UNDER_FLOOR, [name], when)
    meets = (run.details or {}).get("champion_meets_floor")
    if meets is None or run.champion_recall is None or run.recall_floor is None:
        return []
    alert = alerts.champion_under_floor(
        name, str(run.champion_version), run.champion_recall, run.recall_floor, meets
    )
    return [alert] if alert is not None and alerts.insert(conn, alert, when) else []


def expire_candidates(
    conn: db.Connection, model_name: str, now: datetime, days: float, actor: str = AUTOMATIC
) -> list[tuple[ModelChange, list[alerts.Alert]]]:
    """Record ``expired`` for each pending candidate older than ``days``; return the expired
    candidates and the alerts to publish."""
    out = []
    for candidate in pending_candidates(conn, model_name):
        if is_expired(candidate, now, days):
            change_id = record(
                conn,
                model_name=model_name,
                action=EXPIRED,
                actor=actor,
                when=now,
                version=candidate.version,
                evidence=candidate,
                reason=f"candidate older than {days:g} days",
            )
            expired = find(conn, change_id)
            out.append((candidate, raise_alerts(conn, expired, now)))
    return out


# --- alerts ----------------------------------------------------------------------------------


def alert_for(change: ModelChange) -> alerts.Alert | None:
    """The alert a change raises (pure), None for a change that tells nobody anything new (a
    challenger blocked by a hold already announced; an expiry only closes its candidate's
    alert). A rollback is an ERROR-level event; a hold stays open until released, a candidate
    until approved, rejected or expired; the rest are notices."""
    figures = {
        "action": change.action,
        "version": change.version,
        "previous_version": change.previous_version,
        "family": change.family,
        "held_out_precision": change.held_out_precision,
        "probability_better": change.probability_better,
        "actor": change.actor,
        "reason": change.reason,
    }
    name = change.model_name
    said = f": {change.reason}" if change.reason else ""
    if change.action == ROLLED_BACK:
        return alerts.Alert(
            alerts.MODEL_ROLLED_BACK,
            f"{name}/change-{change.id}",
            f"{name} rolled back from v{change.previous_version} to "
            f"v{change.version} by {change.actor}{said}",
            change.version,
            figures,
        )
    if change.action == HELD:
        return alerts.Alert(
            alerts.MODEL_HELD,
            name,
            f"promotions of {name} held by {change.actor}{said}",
            change.version,
            figures,
        )
    if change.action == CANDIDATE:
        return alerts.Alert(
            alerts.MODEL_CANDIDATE,
            f"{name}/v{change.version}",
            f"{name} v{change.version} ({change.family}) waits for approval",
            change.version,
            figures,
        )
    if change.action == PROMOTED:
        return alerts.Alert(
            alerts.MODEL_PROMOTED,
            f"{name}/change-{change.id}",
            f"{name} v{change.version} ({change.family}) promoted by the daily pipeline",
            change.version,
            figures,
        )
    if change.action in (APPROVED, REJECTED, RELEASED):
        what = (
            "promotions released"
            if change.action == RELEASED
            else f"v{change.version} {change.action}"
        )
        return alerts.Alert(
            alerts.MODEL_CHANGED,
            f"{name}/change-{change.id}",
            f"{name} {what} by {change.actor}{said}",
            change.version,
            figures,
        )
    return None


NOTICES = (alerts.MODEL_ROLLED_BACK, alerts.MODEL_CHANGED, alerts.MODEL_PROMOTED)
"""Events that tell of something done: recorded resolved at once (the history keeps them)."""


def raise_alerts(conn: db.Connection, change: ModelChange, when: datetime) -> list[alerts.Alert]:
    """Record the alert of ``change`` (and close what it ends: a release closes the hold, a
    decision on a candidate closes the candidate's); return those to publish."""
    if change.action == RELEASED:
        alerts.resolve(conn, alerts.MODEL_HELD, [change.model_name], when)
    if change.action in (APPROVED, REJECTED, EXPIRED):
        alerts.resolve(
            conn, alerts.MODEL_CANDIDATE, [f"{change.model_name}/v{change.version}"], when
        )
    alert = alert_for(change)
    if alert is None:
        return []
    raised = [alert] if alerts.insert(conn, alert, when) else []
    if alert.event in NOTICES:
        alerts.resolve(conn, alert.event, [alert.occurrence], when)
    return raised


# --- the promote step's decision point ---------------------------------------------------------

WAITING_DECISIONS = (CHALLENGER_HELD, CANDIDATE_WAITING)
DEFAULT_CANDIDATE_EXPIRY_DAYS = 7.0


def promotion_gate(
    settings: Any,
    decision: str,
    approval: str = AUTO,
    candidate_expiry_days: float = DEFAULT_CANDIDATE_EXPIRY_DAYS,
    now: datetime | None = None,
) -> str:
    """What promote may do with ``decision`` now (:func:`gate`): reads the hold in force and
    first expires candidates older than ``candidate_expiry_days``. Called by
    :func:`training.promotion.decide_and_promote` under its promotion lock, so a hold or an
    approval given meanwhile is seen."""
    from contextlib import closing

    check_approval_mode(approval)
    if candidate_expiry_days <= 0:
        raise ValueError(f"candidate_expiry_days must be > 0, got {candidate_expiry_days}")
    now = now or datetime.now(UTC)
    with closing(db.connect(settings)) as conn:
        try:
            expired = expire_candidates(conn, settings.model_name, now, candidate_expiry_days)
            held = hold_state(conn, settings.model_name) is not None
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    alerts.publish(settings, [a for _, raised in expired for a in raised], now)
    return gate(decision, held, approval)
