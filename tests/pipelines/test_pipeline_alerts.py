"""A real failed local pipeline run (a step refusing a bad parameter) reaches the alert
webhook exactly once: the failing step's process records the failure, raises
``pipeline_run_failed`` and delivers it before it exits; reporting the same failure again
(the runner's fallback, a retried step) raises nothing new."""

import uuid

import pytest

from components import runtime
from pipelines.local_run import run_local
from potability import alerts, db
from potability.config import Settings
from potability.governance import run_record

pytestmark = pytest.mark.e2e


def test_a_failed_run_reaches_the_webhook_once(
    tmp_path, database_url: str, mlflow_uri: str, webhook, no_alerts, monkeypatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("POTABILITY_HOME", str(home))  # the steps (subprocesses) read both
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
    settings = Settings(
        env="local",
        home=home,
        database_url=database_url,
        mlflow_tracking_uri=mlflow_uri,
        model_name=f"water-potability-alerts-{uuid.uuid4().hex[:6]}",
    )
    with pytest.raises(RuntimeError, match="finished with status"):  # kfp.local's failure
        run_local(settings, {"grids": "quick", "cv_folds": 3, "test_fraction": 1.5})
    run_id = sorted(p.name for p in (home / "kfp").iterdir())[-1]
    try:
        row = run_record.read_run(settings, run_id)
        assert row.status == "failed" and row.error.startswith("train: ValueError")

        got = webhook.wait_for(alerts.PIPELINE_RUN_FAILED, 1)
        assert len(got) == 1  # delivered by the step's own process before it exited
        body = got[0]
        assert body["occurrence"] == run_id and body["severity"] == "ERROR"
        assert body["figures"]["step"] == "train" and "test_fraction" in body["figures"]["error"]
        assert body["what_to_do"] and body["when"].endswith("Z")

        # the same failure reported again: still one alert, nothing sent
        again = settings.with_(alert_webhook_url=webhook.url)
        runtime.record_failure(again, run_id, "runner: RuntimeError: failed")
        assert alerts.notifier(again).flush(10)
        assert len(webhook.events(alerts.PIPELINE_RUN_FAILED)) == 1
        conn = db.connect(settings)
        try:
            listed = alerts.open_alerts(conn)
        finally:
            conn.close()
        assert [a["event"] for a in listed] == [alerts.PIPELINE_RUN_FAILED]
    finally:
        conn = db.connect(settings)
        conn.cursor().execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
        conn.commit()
        conn.close()
