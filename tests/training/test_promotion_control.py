"""Promote under the operators' control (issue 22), with real models, the real MLflow registry,
PostgreSQL and (for an approval) the real local model server: a hold blocks a real promotion
while the run's evidence is still recorded; in manual approval mode a winning challenger is
registered but waits, and serves only after ``approve``; a candidate expires; a rejected one
can no longer be approved."""

from __future__ import annotations

import uuid
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import make_pipeline

from potability import alerts, config, db
from potability.config import Settings
from potability.features import FEATURE_NAMES, TARGET
from potability.governance import model_changes as mc
from potability.governance import model_control, run_record
from potability.local import services
from potability.model import sklearn_save_kwargs
from potability.seed import load_training_rows
from potability.serving import model_server
from training import decision, evaluation, promotion
from training.candidates import model_requirements
from training.split import split

FLOOR, SEED, FRACTION = 0.2, 3, 0.2


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(load_training_rows(), FRACTION, SEED)


def _fit(train: pd.DataFrame, shuffle_labels: bool) -> Any:
    """A small forest; with shuffled labels much worse on the held-out rows."""
    y = train[TARGET].sample(frac=1, random_state=0).to_numpy() if shuffle_labels else train[TARGET]
    model = FixedThresholdClassifier(
        make_pipeline(
            SimpleImputer(strategy="median"),
            RandomForestClassifier(
                n_estimators=40,
                min_samples_leaf=5,
                class_weight="balanced",
                random_state=0,
                n_jobs=1,
            ),
        ),
        threshold=0.5,
        response_method="predict_proba",
    )
    return model.fit(train[list(FEATURE_NAMES)], y)


def _candidate(model: Any, family: str, test: pd.DataFrame, experiment: str) -> dict[str, Any]:
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=family) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=model_requirements(), **sklearn_save_kwargs(model)
        )
    return {
        "family": family,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "cv_score": 0.7,
        "cv_recall": 0.25,
        "cv_precision": 0.7,
        "scores": evaluation.score_model(model, test).as_dict(),
    }


@pytest.fixture
def ctx(
    settings: Settings, mlflow_uri: str, conn: db.Connection, tmp_path: Path, webhook: Any
) -> Any:
    mlflow.set_tracking_uri(mlflow_uri)
    name = f"test-control-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(experiment_id=mlflow.set_experiment(name).experiment_id) as parent:
        pass
    home = tmp_path / "stack"
    config.update_env(
        home,
        DATABASE_URL=settings.database_url,
        MLFLOW_TRACKING_URI=mlflow_uri,
        MODEL_SERVER_URL=f"http://127.0.0.1:{services.free_port()}",
    )
    step = settings.with_(
        home=home, mlflow_tracking_uri=mlflow_uri, model_name=name, alert_webhook_url=webhook.url
    )
    runs: list[str] = []

    def run(
        scored: list[dict[str, Any]],
        test: pd.DataFrame,
        approval: str = "auto",
        expiry_days: float = 7.0,
    ) -> promotion.PromoteResult:
        run_id = f"{name}-{len(runs)}"
        today = date(2026, 1, 5) + timedelta(days=7 * len(runs))  # every run a look
        runs.append(run_id)
        run_record.start_run(step, run_id, "sha", 100)
        result = promotion.promote(
            settings=step,
            run_id=run_id,
            scored=scored,
            test=test,
            recall_floor=FLOOR,
            parent_run_id=parent.info.run_id,
            training_rows=100,
            split_seed=SEED,
            test_fraction=FRACTION,
            promotion_approval=approval,
            candidate_expiry_days=expiry_days,
            promotion_confidence=0.9,  # the operators' control, not the level, is tested here
            promotion_look_days=7,
            today=today,
        )
        run_record.finish_run(step, run_id)  # deploy's last act (nothing to deploy here)
        return result

    yield type(
        "Ctx",
        (),
        {
            "name": name,
            "settings": step,
            "run": staticmethod(run),
            "runs": runs,
            "client": mlflow.MlflowClient(mlflow_uri),
            "home": home,
        },
    )
    services.stop(home, model_server.SERVICE)
    conn.rollback()
    cur = conn.cursor()
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id LIKE %s", (f"{name}-%",))
    cur.execute("DELETE FROM water.model_changes WHERE model_name = %s", (name,))
    cur.execute("DELETE FROM water.alerts WHERE occurrence LIKE %s", (f"{name}%",))
    conn.commit()


def _alias(ctx: Any) -> str | None:
    champion = promotion.registry_champion(ctx.client, ctx.name)
    return champion.version if champion else None


def _actions(conn: db.Connection, name: str) -> list[tuple[str, str | None]]:
    conn.rollback()
    from datetime import datetime

    return [(c.action, c.version) for c in mc.history(conn, datetime.now(UTC), model_name=name)][
        ::-1
    ]


def test_a_hold_blocks_a_real_promotion_and_keeps_its_evidence(
    ctx: Any, data: Any, conn: db.Connection, webhook: Any
) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, True), "worse", test, ctx.name)], test)
    assert _alias(ctx) == "1"
    model_control.hold(ctx.settings, "lab results under review", actor="ops@x")
    assert "already held" in model_control.hold(ctx.settings, "again", actor="ops@x").message
    good = _candidate(_fit(train, False), "good", test, ctx.name)
    result = ctx.run([good], test)
    assert (result.decision, result.champion_version, result.champion_changed) == (
        "challenger_held",
        "1",
        False,
    )
    assert _alias(ctx) == "1"
    assert [v.version for v in ctx.client.search_model_versions(f"name='{ctx.name}'")] == ["1"]
    row = run_record.read_run(ctx.settings, ctx.runs[1])  # trained, evaluated, recorded
    assert row.status == "succeeded" and row.champion_version == "1"
    assert row.challenger_precision == pytest.approx(good["scores"]["precision"])
    assert row.probability_challenger_better >= 0.9
    assert _actions(conn, ctx.name) == [("promoted", "1"), ("held", None), ("blocked", None)]
    assert webhook.wait_for(alerts.MODEL_HELD)
    # released: the next run promotes on the same evidence
    model_control.release(ctx.settings, "review done", actor="ops@x")
    again = _candidate(_fit(train, False), "good", test, ctx.name)
    assert ctx.run([again], test).decision == decision.CHALLENGER_WINS
    assert _alias(ctx) == "2"


def test_manual_approval_promotes_only_after_approve(
    ctx: Any, data: Any, conn: db.Connection
) -> None:
    train, test = data
    result = ctx.run(
        [_candidate(_fit(train, False), "good", test, ctx.name)], test, approval="manual"
    )
    assert (result.decision, result.champion_version, result.champion_changed) == (
        "candidate_waiting",
        "",
        False,
    )
    assert _alias(ctx) is None  # registered, not the champion
    assert [c.version for c in mc.pending_candidates(conn, ctx.name)] == ["1"]
    conn.rollback()
    assert (
        run_record.current_champion(conn) is None
        or run_record.current_champion(conn).run.model_name != ctx.name
    )
    with pytest.raises(model_control.Refused, match="not a waiting candidate"):
        model_control.approve(ctx.settings, "2", "wrong one", actor="regulator@x")
    outcome = model_control.approve(ctx.settings, "1", "lab review passed", actor="regulator@x")
    assert (outcome.action, outcome.version) == ("approved", "1")
    assert _alias(ctx) == "1"
    url = config.read_env(ctx.home)["MODEL_SERVER_URL"]
    assert model_server.health(url)["model_version"] == "1"
    assert _actions(conn, ctx.name) == [("candidate", "1"), ("approved", "1")]
    champion = run_record.current_champion(conn)
    assert (champion.version, champion.run.decision, champion.run.champion_family) == (
        "1",
        "approved",
        "good",
    )
    assert mc.pending_candidates(conn, ctx.name) == []
    # a later manual run whose challenger is no better keeps the approved champion
    worse = _candidate(_fit(train, True), "worse", test, ctx.name)
    assert ctx.run([worse], test, approval="manual").decision == decision.CHAMPION_KEPT


def test_a_candidate_expires_and_a_rejected_one_cannot_be_approved(
    ctx: Any, data: Any, conn: db.Connection
) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test, approval="manual")
    with pytest.raises(model_control.Refused, match="v1 was expired"):
        model_control.approve(ctx.settings, "1", "too late", actor="ops@x", expiry_days=1e-9)
    assert _alias(ctx) is None
    ctx.run([_candidate(_fit(train, False), "good-2", test, ctx.name)], test, approval="manual")
    model_control.reject(ctx.settings, "2", "not convinced", actor="regulator@x")
    with pytest.raises(model_control.Refused, match="v2 was rejected"):
        model_control.approve(ctx.settings, "2", "changed my mind", actor="ops@x")
    assert _actions(conn, ctx.name) == [
        ("candidate", "1"),
        ("expired", "1"),
        ("candidate", "2"),
        ("rejected", "2"),
    ]
    conn.rollback()
    assert not [
        a
        for a in alerts.open_alerts(conn)
        if a["event"] == alerts.MODEL_CANDIDATE and ctx.name in a["message"]
    ]
