"""End to end: ``run --local`` under kfp.local against the real PostgreSQL and MLflow, twice.

First run: every family and the soft vote as nested MLflow runs with their figures, a champion
alias, the decision row in water.pipeline_runs, and our model server answering with that version.
Second run on unchanged data: same export hash, an equal challenger, the champion kept and
still served. Quick grid and 2 folds keep it to the pipeline's plumbing, not model quality.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from pipelines.local_run import run_local
from potability import config, db
from potability.config import Settings
from potability.governance import run_record
from potability.local import services
from training import modeling

pytestmark = pytest.mark.e2e

READING = {
    "ph": 7.1,
    "Hardness": 204.9,
    "Solids": 20791.3,
    "Chloramines": 7.3,
    "Sulfate": None,
    "Conductivity": 564.3,
    "Organic_carbon": 10.4,
    "Trihalomethanes": 86.99,
    "Turbidity": 2.96,
}


def _qc_run_ids(database_url: str) -> set[int]:
    conn = db.connect(Settings(env="local", database_url=database_url))
    try:
        cur = conn.cursor()
        cur.execute("SELECT id FROM water.qc_runs")
        return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def qc_runs_before(database_url: str) -> set[int]:
    """Quality-control runs stored before this module's pipeline runs."""
    return _qc_run_ids(database_url)


@pytest.fixture(scope="module")
def e2e(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    mlflow_uri: str,
    qc_runs_before: set[int],
) -> Iterator[Any]:
    """Its own stack home (so its model server never replaces the session's), same DB/MLflow."""
    home = tmp_path_factory.mktemp("pipeline-home")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("POTABILITY_HOME", str(home))  # the components (subprocesses) read it
    name = f"water-potability-e2e-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        env="local",
        home=home,
        database_url=database_url,
        mlflow_tracking_uri=mlflow_uri,
        model_name=name,
    )
    params = {"grids": "quick", "cv_folds": 2}
    first = run_local(settings, params)
    second = run_local(settings, params)
    yield settings, first, second
    services.stop(home, "model-server")
    monkey.undo()
    conn = db.connect(settings)
    cur = conn.cursor()
    cur.execute(
        "DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)", (first.run_id, second.run_id)
    )
    conn.commit()
    conn.close()


def test_first_run_logs_every_family_with_figures_under_one_parent(e2e: Any) -> None:
    settings, first, _ = e2e
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.model_name)
    parent = client.search_runs(
        [experiment.experiment_id], f"attributes.run_name = '{first.run_id}'"
    )
    assert len(parent) == 1
    assert parent[0].data.params["split_seed"] == "42"
    assert parent[0].data.tags["decision"] == "first_champion"
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'"
    )
    assert sorted(r.data.tags["family"] for r in children) == sorted(
        (*modeling.FAMILIES, modeling.ENSEMBLE)
    )
    for child in children:
        figures = {f.path for f in client.list_artifacts(child.info.run_id, "figures")}
        assert figures == {
            "figures/confusion_matrix.png",
            "figures/precision_recall_curve.png",
            "figures/threshold_tuning.png",
            "figures/reliability_cv.png",
            "figures/reliability_held_out.png",
        }
        assert {
            "test_precision",
            "test_recall",
            "test_roc_auc",
            "test_pr_auc",
            "test_f1",
            "test_accuracy",
            "test_threshold",
            "test_brier",
            "cv_best_precision_at_recall",
            "cv_precision_at_recall_floor",
            "cv_recall",
            "cv_brier_sigmoid",
            "cv_brier_isotonic",
        } <= set(child.data.metrics)
        assert child.data.params["calibration"] in modeling.CALIBRATION_METHODS
        assert "grid.json" in {f.path for f in client.list_artifacts(child.info.run_id)}
    # The challenger is the best by cross-validation, whatever the held-out figures say.
    by_family = {r.data.tags["family"]: r.data.metrics for r in children}
    best_cv = max(
        by_family,
        key=lambda f: (by_family[f]["cv_precision_at_recall_floor"], by_family[f]["cv_recall"]),
    )
    assert parent[0].data.tags["challenger_family"] == best_cv


def test_first_run_sets_the_champion_records_it_and_serves_it(e2e: Any) -> None:
    settings, first, _ = e2e
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    row = run_record.read_run(settings, first.run_id)
    assert row.status == "succeeded" and row.decision == "first_champion"
    assert row.champion_version == champion.version == "1"
    assert row.training_rows > 0 and len(row.data_sha256) == 64
    url = config.read_env(settings.home)["MODEL_SERVER_URL"]
    response = requests.post(f"{url}/predict", json={"instances": [READING]}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == settings.model_name and body["model_version"] == "1"
    prediction = body["predictions"][0]
    assert prediction["potable"] in (0, 1) and 0.0 <= prediction["probability"] <= 1.0
    # compiled scoring (issue 12): the calibrated champion is served by its ONNX form, which
    # promote checked against scikit-learn on the held-out rows
    assert requests.get(f"{url}/health", timeout=5).json()["runtime"] == "onnx"
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # the registry too (models:/ URIs)
    model_dir = mlflow.artifacts.download_artifacts(
        f"models:/{settings.model_name}/1", dst_path=str(settings.home / "champion-download")
    )
    report = json.loads((Path(model_dir) / "compiled" / "compiled.json").read_text())
    assert report["max_abs_difference"] <= 1e-6 and report["rows_checked"] > 0


def test_second_run_on_unchanged_data_keeps_the_equal_champion(e2e: Any) -> None:
    settings, first, second = e2e
    before = run_record.read_run(settings, first.run_id)
    after = run_record.read_run(settings, second.run_id)
    assert after.data_sha256 == before.data_sha256
    assert after.status == "succeeded" and after.decision == "champion_kept"
    assert after.champion_version == "1"
    assert after.challenger_precision == pytest.approx(before.champion_precision)
    # identical predictions: no evidence at all, recorded as such
    assert after.probability_challenger_better == 0.0 and after.precision_difference == 0.0
    assert after.champion_precision_low <= after.champion_precision <= after.champion_precision_high
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    assert client.get_model_version_by_alias(settings.model_name, "champion").version == "1"
    assert [v.version for v in client.search_model_versions(f"name='{settings.model_name}'")] == [
        "1"
    ]
    url = config.read_env(settings.home)["MODEL_SERVER_URL"]
    assert requests.get(f"{url}/health", timeout=5).json()["model_version"] == "1"


def test_each_run_ends_with_quality_control_of_its_champion(
    e2e: Any, qc_runs_before: set[int]
) -> None:
    settings, _, second = e2e
    new = sorted(_qc_run_ids(settings.database_url) - qc_runs_before)
    assert len(new) == 2
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT q.champion_version, q.computed_at >= r.finished_at, "
            "q.drift_reference_rows FROM water.qc_runs q, water.pipeline_runs r "
            "WHERE q.id = %s AND r.run_id = %s",
            (new[-1], second.run_id),
        )
        version, after_deploy, reference_rows = cur.fetchone()
    finally:
        conn.close()
    assert version == "1" and after_deploy and reference_rows > 0
