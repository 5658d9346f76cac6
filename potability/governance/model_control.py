"""Operators in control of the model in service: ``potability model rollback|hold|release|
approve|reject|status``.

Each action runs under the promotion lock the pipeline's promote step takes (so a daily run
and an operator never move the ``champion`` alias at once), is recorded in
``water.model_changes`` (:mod:`potability.governance.model_changes`: who, why, when, on what
evidence) and raises its alert event. A serving change follows one order, so a failure at any point
leaves the old model serving and a repeat finishes the job:

1. record the change as ``switching`` (committed: the window is on record);
2. serve the new version - locally a new model server loads it beside the old one and takes
   the port over when the old one stops (:func:`potability.serving.model_server.switch_local`:
   predict may answer a retryable 503 only in between),
   on GCP the Vertex endpoint (:func:`components.vertex.switch_endpoint`: deploy, traffic,
   answer check, then undeploy the old);
3. move the registered model's ``champion`` alias (MLflow), so the next daily run compares
   its challenger with what serves;
4. record the change ``done`` as of the moment the new version answered, raise the alert.

If 2 fails the old version is served again (locally restarted on it), the row is ``failed``
and the alias never moved. Who: on GCP the operator's database identity (their gcloud account,
through Cloud SQL IAM authentication); locally ``user@host``.

Locally the serving side is :class:`LocalServing` (:mod:`potability.serving.model_server`); on
GCP the caller (``potability.cli``) passes :class:`components.vertex.EndpointServing`.
"""

from __future__ import annotations

import getpass
import logging
import socket
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from potability import alerts, db
from potability.config import Settings
from potability.governance import model_changes
from potability.governance.model_changes import ModelChange

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
"""The registered model's alias on the served version (as training/promotion.py)."""


class Refused(RuntimeError):
    """The action cannot be done as asked (unknown version, no reason, held...): nothing
    changed. The CLI prints it and exits 2."""


@dataclass(frozen=True)
class Outcome:
    action: str
    version: str | None
    previous_version: str | None
    change_id: int | None
    message: str


class Serving(Protocol):
    """The serving side: which version answers now, and switching it."""

    def current(self) -> str | None: ...

    def switch(self, version: str) -> str: ...


def operator_identity(settings: Settings) -> str:
    """Who acts: the database identity on GCP (the operator's IAM user, i.e. their gcloud
    account), ``user@host`` locally."""
    if settings.env == "gcp" and settings.db_user:
        return settings.db_user
    return f"{getpass.getuser()}@{socket.gethostname()}"


def now() -> datetime:
    return datetime.now(UTC)


# --- serving sides -----------------------------------------------------------------------------


class LocalServing:
    """Our model server of the local stack (``MODEL_SERVER_URL``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def current(self) -> str | None:
        from potability import config
        from potability.serving import model_server

        url = config.read_env(self.settings.home).get("MODEL_SERVER_URL", "")
        answer = model_server.health(url, 3.0) if url else None
        return str(answer["model_version"]) if answer else None

    def model_dir(self, version: str) -> str:
        import mlflow.artifacts

        return mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{self.settings.model_name}/{version}",
            tracking_uri=self.settings.mlflow_tracking_uri,
        )

    def switch(self, version: str) -> str:
        from potability.serving import model_server

        s = self.settings
        before = self.current()
        new_dir = self.model_dir(version)  # fails here: the old one still serves
        try:
            url = model_server.switch_local(
                s.home, new_dir, s.model_name, version, s.mlflow_tracking_uri
            )
        except Exception:
            if before and self.current() != before:
                log.warning("v%s did not start; serving v%s again", version, before)
                model_server.start_local(
                    s.home, self.model_dir(before), s.model_name, before, s.mlflow_tracking_uri
                )
            raise
        return f"serving {s.model_name} v{version} at {url}"


def serving_for(settings: Settings) -> Serving:
    """The local model server; on Vertex the caller passes the endpoint's serving side
    (:class:`components.vertex.EndpointServing`: ``potability.cli`` does), as this core module
    imports no upper floor."""
    if settings.endpoint_mode == "vertex":
        raise ValueError("ENDPOINT_MODE=vertex: pass components.vertex.EndpointServing")
    return LocalServing(settings)


# --- MLflow alias -------------------------------------------------------------------------------


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


def _registered(settings: Settings, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        _client(settings).get_model_version(settings.model_name, version)
        return True
    except MlflowException:
        return False


def _move_alias(settings: Settings, version: str) -> None:
    _client(settings).set_registered_model_alias(settings.model_name, CHAMPION_ALIAS, version)


def _alias_version(settings: Settings) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(
            _client(settings)
            .get_model_version_by_alias(settings.model_name, CHAMPION_ALIAS)
            .version
        )
    except MlflowException:
        return None


# --- the actions --------------------------------------------------------------------------------


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise Refused("--reason is required: the public history says why the model changed")
    if len(reason) > 2000:
        raise Refused("--reason must be at most 2000 characters")
    return reason


def _lock(settings: Settings) -> Any:
    return db.advisory_lock(settings, f"potability.promote:{settings.model_name}", wait_seconds=120)


def _transaction(settings: Settings, work: Callable[[db.Connection], Any]) -> Any:
    with closing(db.connect(settings)) as conn:
        try:
            result = work(conn)
            conn.commit()
            return result
        except BaseException:
            conn.rollback()
            raise


def _clear_abandoned(conn: db.Connection, settings: Settings) -> None:
    for left in model_changes.abandoned_switches(conn, settings.model_name):
        model_changes.fail_switch(conn, left.id, "interrupted; superseded by a later command")


def _switch(
    settings: Settings,
    serving: Serving,
    *,
    action: str,
    version: str,
    reason: str,
    evidence: ModelChange | None,
    actor: str,
) -> Outcome:
    """Steps 1-4 of the module docstring; safe to repeat."""
    previous = serving.current()
    alias = _alias_version(settings)
    if previous == version and alias == version:
        return Outcome(
            action,
            version,
            previous,
            None,
            f"{settings.model_name} v{version} already serves; nothing to do",
        )

    def begin(conn: db.Connection) -> int:
        _clear_abandoned(conn, settings)
        return model_changes.begin_switch(
            conn,
            model_name=settings.model_name,
            action=action,
            actor=actor,
            when=now(),
            version=version,
            previous_version=previous or alias,
            reason=reason,
            evidence=evidence,
        )

    change_id = _transaction(settings, begin)
    try:  # (already serving it: an earlier run of this command stopped before the alias)
        where = (
            f"{settings.model_name} v{version} already serves"
            if previous == version
            else serving.switch(version)
        )
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        _transaction(settings, lambda c: model_changes.fail_switch(c, change_id, error))
        raise
    answered_at = now()
    _move_alias(settings, version)

    def finish(conn: db.Connection) -> list[alerts.Alert]:
        model_changes.finish_switch(conn, change_id, answered_at)
        return model_changes.raise_alerts(conn, model_changes.find(conn, change_id), answered_at)

    publish(settings, _transaction(settings, finish), answered_at)
    return Outcome(action, version, previous or alias, change_id, where)


LOGGING_WRITE_URL = "https://logging.googleapis.com/v2/entries:write"
ALERT_LOG = "potability-alerts"


def cloud_logging_request(
    project: str, raised: list[alerts.Alert], when: datetime, status_url: str = ""
) -> dict[str, Any]:
    """The ``entries.write`` body carrying the alerts' structured lines (pure): the same
    ``jsonPayload`` the pipeline's and functions' stdout lines become, so the log-based metrics
    of ``terraform/monitoring.tf`` match them; resource ``global`` (an operator's machine is no
    Google resource; see the events' ``gcp_resource``)."""
    log_name = f"projects/{project}/logs/{ALERT_LOG}"
    resource = {"type": "global", "labels": {"project_id": project}}
    return {
        "entries": [
            {
                "logName": log_name,
                "resource": resource,
                "severity": a.severity,
                "jsonPayload": alerts.log_record(a, when, status_url),
                "timestamp": alerts.iso(when),
            }
            for a in raised
        ]
    }


def write_to_cloud_logging(
    settings: Settings,
    raised: list[alerts.Alert],
    when: datetime,
    post: Callable[[str, dict[str, Any]], None] | None = None,
) -> None:
    """On GCP the command runs on an operator's machine, whose output Cloud Logging never
    sees: its alert lines are written with the operator's credentials (logging.logWriter,
    terraform/operators.tf)."""
    body = cloud_logging_request(settings.google_cloud_project, raised, when, settings.status_url)
    if post is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/logging.write"]
        )
        session = AuthorizedSession(credentials)

        def post(url: str, json_body: dict[str, Any]) -> None:
            session.post(url, json=json_body, timeout=10).raise_for_status()

    post(LOGGING_WRITE_URL, body)


def publish(settings: Settings, raised: list[alerts.Alert], when: datetime) -> None:
    """Deliver the alerts now (a command's process ends right after): the log line and the
    webhook (bounded by the webhook's own retry); on GCP also Cloud Logging. A delivery that
    fails is reported, never undoes the change (the alert is in ``water.alerts``)."""
    if not raised:
        return
    notifier = alerts.notifier(settings)
    notifier.publish(raised, when)
    notifier.flush()
    if settings.env == "gcp" and settings.google_cloud_project:
        try:
            write_to_cloud_logging(settings, raised, when)
        except Exception as exc:  # noqa: BLE001 - the change is done and recorded
            log.error("could not write the alerts to Cloud Logging: %s", exc)


def rollback(
    settings: Settings,
    reason: str,
    version: str | None = None,
    serving: Serving | None = None,
    actor: str | None = None,
) -> Outcome:
    """Serve the previous champion again (or ``version``, which must have served before)."""
    reason = _require_reason(reason)
    serving = serving or serving_for(settings)
    with _lock(settings):

        def target(conn: db.Connection) -> tuple[str, ModelChange | None]:
            served = model_changes.served_versions(conn, settings.model_name)
            if version is None:
                if len(served) < 2:
                    raise Refused(
                        "no earlier champion to roll back to "
                        f"(versions that served: {', '.join(served) or 'none'})"
                    )
                chosen = served[1]
            else:
                chosen = str(version)
                if chosen not in served:
                    raise Refused(
                        f"v{chosen} never served {settings.model_name}; roll back "
                        f"only to a version that did: {', '.join(served) or 'none'}"
                    )
            return chosen, model_changes.version_evidence(conn, settings.model_name, chosen)

        chosen, evidence = _transaction(settings, target)
        if not _registered(settings, chosen):
            raise Refused(f"{settings.model_name} v{chosen} is not in the model registry")
        return _switch(
            settings,
            serving,
            action=model_changes.ROLLED_BACK,
            version=chosen,
            reason=reason,
            evidence=evidence,
            actor=actor or operator_identity(settings),
        )


def approve(
    settings: Settings,
    version: str,
    reason: str,
    serving: Serving | None = None,
    actor: str | None = None,
    expiry_days: float | None = None,
) -> Outcome:
    """Promote and deploy the waiting candidate ``version`` (refused while held, or once it
    expired: older than ``CANDIDATE_EXPIRY_DAYS``)."""
    reason = _require_reason(reason)
    serving = serving or serving_for(settings)
    days = settings.candidate_expiry_days if expiry_days is None else expiry_days
    who = actor or operator_identity(settings)
    version = str(version)
    with _lock(settings):

        def expire(conn: db.Connection) -> list[alerts.Alert]:
            found = model_changes.expire_candidates(conn, settings.model_name, now(), days, who)
            return [a for _, raised in found for a in raised]

        publish(settings, _transaction(settings, expire), now())

        def candidate(conn: db.Connection) -> ModelChange:
            if model_changes.hold_state(conn, settings.model_name) is not None:
                raise Refused(
                    "promotions are held: release them first "
                    "(`potability model release --reason ...`)"
                )
            pending = {
                c.version: c for c in model_changes.pending_candidates(conn, settings.model_name)
            }
            if version in pending:
                return pending[version]
            gone = [
                c
                for c in model_changes.history(conn, now(), model_name=settings.model_name)
                if c.version == version
                and c.action in (model_changes.EXPIRED, model_changes.REJECTED)
            ]
            why = (
                f"v{version} was {gone[0].action} at {alerts.iso(gone[0].started_at)}"
                if gone
                else f"v{version} is not a waiting candidate"
            )
            raise Refused(f"{why}; waiting: {', '.join(v or '?' for v in pending) or 'none'}")

        found = _transaction(settings, candidate)
        return _switch(
            settings,
            serving,
            action=model_changes.APPROVED,
            version=version,
            reason=reason,
            evidence=found,
            actor=who,
        )


def _simple(
    settings: Settings,
    action: str,
    reason: str,
    version: str | None,
    actor: str | None,
    check: Callable[[db.Connection], None],
) -> Outcome:
    reason = _require_reason(reason)
    with _lock(settings):

        def work(conn: db.Connection) -> tuple[ModelChange, list[alerts.Alert]]:
            check(conn)
            when = now()
            evidence = (
                model_changes.version_evidence(conn, settings.model_name, version)
                if version
                else None
            )
            current = model_changes.latest_serving(conn, settings.model_name)
            change_id = model_changes.record(
                conn,
                model_name=settings.model_name,
                action=action,
                actor=actor or operator_identity(settings),
                when=when,
                version=version,
                previous_version=current.version if current else None,
                reason=reason,
                evidence=evidence,
            )
            change = model_changes.find(conn, change_id)
            return change, model_changes.raise_alerts(conn, change, when)

        change, raised = _transaction(settings, work)
    publish(settings, raised, change.started_at)
    return Outcome(
        action,
        version,
        change.previous_version,
        change.id,
        f"{settings.model_name}: {action.replace('_', ' ')}" + (f" v{version}" if version else ""),
    )


def hold(settings: Settings, reason: str, actor: str | None = None) -> Outcome:
    """Hold promotions: daily runs train and evaluate, record their evidence, never promote."""

    def check(conn: db.Connection) -> None:
        held = model_changes.hold_state(conn, settings.model_name)
        if held is not None:
            raise _AlreadyDone(
                f"promotions of {settings.model_name} are already held since "
                f"{alerts.iso(held.since)} (by {held.actor})"
            )

    try:
        return _simple(settings, model_changes.HELD, reason, None, actor, check)
    except _AlreadyDone as exc:
        return Outcome(model_changes.HELD, None, None, None, str(exc))


def release(settings: Settings, reason: str, actor: str | None = None) -> Outcome:
    """End the hold: the next daily run may promote again."""

    def check(conn: db.Connection) -> None:
        if model_changes.hold_state(conn, settings.model_name) is None:
            raise _AlreadyDone(f"promotions of {settings.model_name} are not held")

    try:
        return _simple(settings, model_changes.RELEASED, reason, None, actor, check)
    except _AlreadyDone as exc:
        return Outcome(model_changes.RELEASED, None, None, None, str(exc))


def reject(settings: Settings, version: str, reason: str, actor: str | None = None) -> Outcome:
    """Discard the waiting candidate ``version`` (it can no longer be approved)."""

    def check(conn: db.Connection) -> None:
        pending = [c.version for c in model_changes.pending_candidates(conn, settings.model_name)]
        if str(version) not in pending:
            raise Refused(
                f"v{version} is not a waiting candidate; waiting: "
                f"{', '.join(v or '?' for v in pending) or 'none'}"
            )

    return _simple(settings, model_changes.REJECTED, reason, str(version), actor, check)


class _AlreadyDone(Exception):
    """A hold or release that is already in force: repeating it changes nothing."""


@dataclass(frozen=True)
class State:
    """What ``potability model status`` shows."""

    serving: str | None
    alias: str | None
    hold: model_changes.Hold | None
    candidates: list[ModelChange]
    recent: list[ModelChange]


def state(settings: Settings, serving: Serving | None = None) -> State:
    serving = serving or serving_for(settings)

    def read(conn: db.Connection) -> tuple[Any, ...]:
        return (
            model_changes.hold_state(conn, settings.model_name),
            model_changes.pending_candidates(conn, settings.model_name),
            model_changes.history(conn, now(), model_name=settings.model_name, limit=10),
        )

    held, candidates, recent = _transaction(settings, read)
    return State(serving.current(), _alias_version(settings), held, candidates, recent)
