"""End to end: two pipeline runs under kfp.local against the real PostgreSQL and MLflow.

The first run is the local scheduler's: the service (started as ``potability up`` starts it)
fires ``potability pipeline run --local`` - the very command a user types - at its time, and a
run by hand meanwhile is refused. Every family and the soft vote as nested MLflow runs with
their figures, a champion alias, the decision row in water.pipeline_runs, and our model server
answering with that version. The second run, ``run_local`` on unchanged data: same export
hash, an equal challenger, the champion kept and still served. Quick grid and 2 folds keep it
to the pipeline's plumbing, not model quality.

One run serves both the scheduler's test and the first-run tests: a KFP run costs about a
minute, and what each checks is a different side of the same run (issue 32).
"""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import mlflow
import pytest
import requests

from pipelines import local_scheduler
from pipelines.local_run import LocalRun, run_local
from potability import config, db
from potability.config import Settings
from potability.governance import run_record
from potability.local import services
from training import modeling

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("export", "train", "evaluate", "promote", "deploy", "quality control")
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


def _status(home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PIPELINE_SCHEDULE")}
    return subprocess.run(
        [sys.executable, "-m", "potability.cli", "status"],
        cwd=ROOT,
        env={**env, "POTABILITY_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def qc_runs_before(database_url: str) -> set[int]:
    """Quality-control runs stored before this module's pipeline runs."""
    return _qc_run_ids(database_url)


@dataclass(frozen=True)
class Scheduled:
    """What the scheduler's firing showed, observed at the moment each applies (the status
    before and after the run, a run by hand while it ran); the test asserts on it."""

    home: Path
    model: str
    at: datetime
    expression: str
    line: str
    line_again: str
    status_before: str
    by_hand: subprocess.CompletedProcess[str]
    state: dict[str, Any]
    log: str
    run_id: str
    row: tuple[Any, ...]
    status_after: str


@pytest.fixture(scope="module")
def scheduled(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    mlflow_uri: str,
    qc_runs_before: set[int],  # read before the first run starts
) -> Iterator[Scheduled]:
    """The first run: fired by the scheduler service seconds after it starts, in a stack home of
    this module's own (so its model server never replaces the session's), same DB/MLflow."""
    home = tmp_path_factory.mktemp("pipeline-home")
    config.update_env(
        home,
        POTABILITY_ENV="local",
        POTABILITY_HOME=str(home),
        DATABASE_URL=database_url,
        MLFLOW_TRACKING_URI=mlflow_uri,
    )
    zone = ZoneInfo("Europe/Paris")
    model = f"water-potability-e2e-{uuid.uuid4().hex[:6]}"
    try:
        # A firing a few seconds ahead (daily, to the second: it fires once); if the service
        # took longer than that to start, its next run is tomorrow's: stop it, further ahead.
        for lead in (6, 20, 60):
            at = (datetime.now(zone) + timedelta(seconds=lead)).replace(microsecond=0)
            expression = f"{at.minute} {at.hour} * * * {at.second}"
            settings = config.load_settings(home).with_(
                pipeline_schedule=expression,
                pipeline_schedule_time_zone="Europe/Paris",
                pipeline_schedule_params=("grids=quick", "cv_folds=2", f"model_name={model}"),
            )
            line = local_scheduler.start(settings)
            if line.endswith(f"next run {at.isoformat()}"):
                break
            services.stop(home, local_scheduler.SERVICE)
        else:
            pytest.fail(f"the scheduler started too late for each firing: {line}")
        status_before = _status(home)
        line_again = local_scheduler.start(settings)  # `up` again keeps the running service

        log = services.log_file(home, local_scheduler.SERVICE)
        deadline = time.monotonic() + 900
        while "\n  export " not in log.read_text():  # the scheduled run holds the lock by now
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        # never two at once: a run by hand while the scheduled one runs is refused
        by_hand = subprocess.run(
            [sys.executable, "-m", "potability.cli", "pipeline", "run", "--local"],
            cwd=ROOT,
            env={**os.environ, "POTABILITY_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        while "last_exit" not in local_scheduler.read_state(home):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(2)
        state = local_scheduler.read_state(home)
        text = log.read_text()
        found = re.search(r"^run (\S+): succeeded", text, re.M)
        assert found, text
        with closing(db.connect(Settings(database_url=database_url))) as conn:
            cur = conn.cursor()
            cur.execute(
                "SELECT status, model_name FROM water.pipeline_runs WHERE run_id = %s",
                (found.group(1),),
            )
            row = tuple(cur.fetchone())
        status_after = _status(home)
        services.stop(home, local_scheduler.SERVICE)  # its next firing is tomorrow's
        yield Scheduled(
            home=home,
            model=model,
            at=at,
            expression=expression,
            line=line,
            line_again=line_again,
            status_before=status_before,
            by_hand=by_hand,
            state=state,
            log=text,
            run_id=found.group(1),
            row=row,
            status_after=status_after,
        )
    finally:
        for service in (local_scheduler.SERVICE, "model-server"):
            services.stop(home, service)
        with closing(db.connect(Settings(database_url=database_url))) as conn:
            conn.cursor().execute("DELETE FROM water.pipeline_runs WHERE model_name = %s", (model,))
            conn.commit()


@pytest.fixture(scope="module")
def e2e(scheduled: Scheduled, database_url: str, mlflow_uri: str) -> Iterator[Any]:
    """The scheduled run, then a second by hand (``run_local``) on unchanged data, in the same
    home (its model server is the scheduled run's)."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv("POTABILITY_HOME", str(scheduled.home))  # the components (subprocesses) read it
    settings = Settings(
        env="local",
        home=scheduled.home,
        database_url=database_url,
        mlflow_tracking_uri=mlflow_uri,
        model_name=scheduled.model,
    )
    try:
        second = run_local(settings, {"grids": "quick", "cv_folds": 2})
        yield settings, LocalRun(scheduled.run_id, {}), second
    finally:
        monkey.undo()


def test_the_scheduler_fires_a_real_run_at_its_time(scheduled: Scheduled) -> None:
    at, expression, model, text = scheduled.at, scheduled.expression, scheduled.model, scheduled.log
    assert scheduled.line == f"{expression} (Europe/Paris), next run {at.isoformat()}"
    assert f"{'next run':24} {at.isoformat()}" in scheduled.status_before
    assert scheduled.line_again == scheduled.line
    by_hand = scheduled.by_hand
    assert by_hand.returncode == 3, by_hand.stdout + by_hand.stderr
    assert "another local pipeline run is in progress" in by_hand.stderr

    state = scheduled.state
    assert state["last_maintenance_outcome"] == "succeeded"  # before the run: the log's upkeep
    assert "inference-log maintenance: partitions created" in text
    assert state["last_exit"] == 0, text
    run_id = scheduled.run_id
    output = text[text.index("scheduled run starting") :].splitlines()[1:-1]
    # the run's output: a header, one line per step in order, a short summary
    steps = [re.match(r"  (\S+(?: control)?) +(\d+\.\d) s  (.*)", line) for line in output[1:7]]
    assert [m.group(1) for m in steps if m] == list(STEPS), output
    results = {m.group(1): m.group(3) for m in steps}
    assert re.fullmatch(r"\d+ rows exported", results["export"])
    assert re.fullmatch(
        r"\d+ families on \d+ rows, best CV precision \d+\.\d% \(\w+\)", results["train"]
    )
    assert results["promote"] == "first champion, champion v1"
    assert results["deploy"].startswith(f"started {model} v1 at http://127.0.0.1:")
    assert len(output) <= 20, output  # the run's share of make run's 80 lines (no functions)
    assert re.search(rf"^champion     {model} v1 \(\w+\): held-out precision \d+\.\d%", text, re.M)
    link = re.search(r"^MLflow run   (\S+)", text, re.M).group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs/[0-9a-f]{32}", link)
    run_log = scheduled.home / "logs" / "pipeline-runs" / f"{run_id}.log"
    assert f"full log     {run_log}" in text
    assert "Executing task" in run_log.read_text()  # kfp's whole output went there
    assert "Executing task" not in text

    assert scheduled.row == ("succeeded", model)
    after = scheduled.status_after
    assert f"{run_id} succeeded" in after and str(run_log) in after
    assert re.search(r"next run +\S+", after)  # the next day's firing


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
