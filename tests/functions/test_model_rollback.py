"""`potability model rollback` on the real local stack, under predict load: the predict
handler (through the functions' own serving wrapper) -> HTTP -> our model server, which the
rollback restarts on the earlier version; MLflow's alias, the model-change record and the
alert webhook are the real ones.

What must hold: no request lost (every answer 200, or the documented retryable 503 while the
model server restarts), and no answer from a version that was not serving at that moment -
each answer's ``model_version`` is checked against the change's recorded window (the old
version may answer until the new one answered, the new one only from the switch's start).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pytest
from fn_support import GOOD_READING, make_app

from functions.context import Context
from potability import alerts, config, db
from potability.config import Settings
from potability.governance import model_changes as mc
from potability.governance import model_control
from potability.local import services
from potability.serving import model_server


def _register(name: str, source: Path) -> str:
    """Register the tiny model (as its own run's artifacts) as a new version of ``name``."""
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "model")
    return str(mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version)


@pytest.fixture
def stack(
    tmp_path: Path,
    settings: Settings,
    mlflow_uri: str,
    tiny_model_dir: Path,
    conn: db.Connection,
    webhook: Any,
) -> Iterator[Any]:
    """Versions 1 and 2 registered, 2 promoted after 1 and served by a model server of its
    own stack home; settings for the operator's command."""
    name = f"test-rollback-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(mlflow_uri)
    versions = [_register(name, tiny_model_dir) for _ in range(2)]
    assert versions == ["1", "2"]
    client = mlflow.MlflowClient(mlflow_uri)
    client.set_registered_model_alias(name, "champion", "2")
    home = tmp_path / "stack"
    config.update_env(home, DATABASE_URL=settings.database_url, MLFLOW_TRACKING_URI=mlflow_uri)
    ctl = settings.with_(
        home=home, mlflow_tracking_uri=mlflow_uri, model_name=name, alert_webhook_url=webhook.url
    )
    now = datetime.now(UTC)
    for version, precision in (("1", 0.68), ("2", 0.71)):
        mc.record(
            conn,
            model_name=name,
            action=mc.PROMOTED,
            actor=mc.AUTOMATIC,
            when=now,
            version=version,
            evidence={
                "family": "logistic_regression",
                "held_out_precision": precision,
                "held_out_precision_low": precision - 0.08,
                "held_out_precision_high": precision + 0.08,
                "run_id": f"{name}-run-{version}",
            },
        )
    conn.commit()
    url = model_server.start_local(home, str(tiny_model_dir), name, "2", "")
    yield type(
        "Stack", (), {"name": name, "settings": ctl, "url": url, "client": client, "home": home}
    )
    services.stop(home, model_server.SERVICE)
    conn.rollback()
    conn.cursor().execute("DELETE FROM water.model_changes WHERE model_name = %s", (name,))
    conn.cursor().execute("DELETE FROM water.alerts WHERE occurrence LIKE %s", (f"{name}%",))
    conn.commit()


class Load:
    """Sensors posting to predict from a few threads; every answer kept with its send and
    receive times."""

    def __init__(self, ctx: Context, threads: int = 3) -> None:
        self.answers: list[tuple[datetime, datetime, int, list[str]]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.app = make_app(ctx)
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, worker: int) -> None:
        client = self.app.test_client()
        n = 0
        while not self.stop.is_set():
            n += 1
            sent = datetime.now(UTC)
            response = client.post(
                "/predict",
                json={"sensor_id": f"rollback-{worker}", "readings": [GOOD_READING]},
                headers={"Idempotency-Key": f"rb-{uuid.uuid4().hex}"},
            )
            received = datetime.now(UTC)
            body = response.get_json() or {}
            versions = [p.get("model_version") for p in body.get("predictions", [])]
            with self.lock:
                self.answers.append((sent, received, response.status_code, versions))
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads)


def test_rollback_under_predict_load_loses_nothing_and_answers_only_from_serving_versions(
    stack: Any, fn_settings: Settings, webhook: Any, conn: db.Connection
) -> None:
    ctx = Context(fn_settings.with_(model_server_url=stack.url, endpoint_timeout_seconds=5))
    try:
        load = Load(ctx)
        time.sleep(1.5)
        outcome = model_control.rollback(
            stack.settings, "live precision dropped overnight", actor="ops@example.com"
        )
        time.sleep(1.5)
        load.finish()
    finally:
        ctx.close()
    assert (outcome.action, outcome.version, outcome.previous_version) == ("rolled_back", "1", "2")
    change = next(
        c
        for c in mc.history(conn, datetime.now(UTC), model_name=stack.name)
        if c.id == outcome.change_id
    )
    assert (change.status, change.actor, change.reason) == (
        "done",
        "ops@example.com",
        "live precision dropped overnight",
    )
    assert change.held_out_precision == 0.68 and change.run_id == f"{stack.name}-run-1"
    start, end = change.started_at, change.changed_at

    statuses = {}
    for sent, received, status, versions in load.answers:
        statuses[status] = statuses.get(status, 0) + 1
        if status == 503:  # the documented retryable answer while the server restarts
            assert received >= start and sent <= end, "a 503 outside the switch"
            continue
        assert status == 200, f"answer {status}"
        (version,) = set(versions)
        if version == "2":
            assert sent <= end, "the old version answered after the new one did"
        else:
            assert version == "1" and received >= start, "v1 answered before the switch"
    before = [v for s, r, st, v in load.answers if st == 200 and r < start]
    after = [v for s, r, st, v in load.answers if st == 200 and s > end]
    assert before and after and {v[0] for v in after} == {"1"}
    print(f"answers: {statuses}, switch took {(end - start).total_seconds():.2f} s")

    assert model_server.health(stack.url)["model_version"] == "1"
    assert stack.client.get_model_version_by_alias(stack.name, "champion").version == "1"
    (hook,) = webhook.wait_for(alerts.MODEL_ROLLED_BACK)
    assert hook["severity"] == "ERROR" and hook["model_version"] == "1"
    assert "ops@example.com" in hook["message"]
    # Safe to repeat: nothing to do, nothing recorded.
    again = model_control.rollback(stack.settings, "again", "1", actor="ops@example.com")
    assert again.change_id is None and "already serves" in again.message


def test_a_rollback_that_fails_halfway_leaves_the_old_model_serving(
    stack: Any, conn: db.Connection, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {}\n")  # registered, but nothing can serve it
    version = _register(stack.name, broken)
    mc.record(
        conn,
        model_name=stack.name,
        action=mc.PROMOTED,
        actor=mc.AUTOMATIC,
        when=datetime(2026, 1, 1, tzinfo=UTC),
        version=version,
    )
    conn.commit()
    with pytest.raises(RuntimeError, match="did not load .* the old server still serves"):
        model_control.rollback(stack.settings, "try the broken one", version, actor="ops@x")
    assert model_server.health(stack.url)["model_version"] == "2"
    assert stack.client.get_model_version_by_alias(stack.name, "champion").version == "2"
    failed = list(mc.abandoned_switches(conn, stack.name))
    assert failed == []
    cur = conn.cursor()
    cur.execute(
        "SELECT status, error FROM water.model_changes WHERE model_name = %s "
        "AND action = 'rolled_back'",
        (stack.name,),
    )
    ((status, error),) = cur.fetchall()
    assert status == "failed" and error


def test_rollback_refuses_without_reason_or_to_a_version_that_never_served(stack: Any) -> None:
    with pytest.raises(model_control.Refused, match="--reason"):
        model_control.rollback(stack.settings, "  ")
    with pytest.raises(model_control.Refused, match="never served"):
        model_control.rollback(stack.settings, "why", "7")
    assert model_server.health(stack.url)["model_version"] == "2"
