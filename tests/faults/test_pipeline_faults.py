"""Faults in the training pipeline, on real processes: MLflow killed during a run, a pipeline
step killed with SIGKILL, and promotions from two runs at once.

The pipeline runs are real ``potability pipeline run --local`` processes (kfp.local, one
subprocess per step) with ``grids=quick`` against a PostgreSQL and an MLflow server of this
module's own (so killing MLflow disturbs no other test), a champion already registered and
served by our model server. Both failing runs stop during ``train`` - the longest step, and
the one a fault is likeliest to hit - and each test bounds its own time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import psutil
import pytest
import requests
from faults_support import ROOT, deadline

from pipelines.local_scheduler import local_run_command
from potability import config, db
from potability.config import Settings
from potability.governance import run_record
from potability.local import services
from potability.local import stack as local_stack
from potability.model import sklearn_save_kwargs
from potability.serving import model_server
from training.candidates import model_requirements

CHAMPION = "champion"
QUICK = ("grids=quick", "cv_folds=2")
# MLflow's client retries a refused connection with exponential backoff (7 times by default,
# minutes in all); a step must fail in bounded time once MLflow is gone.
BOUNDED_MLFLOW = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def register_champion(tracking_uri: str, name: str, model_dir: Path) -> str:
    """Log ``model_dir`` as a run's model, register it as ``name`` and point the alias at it."""
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name="seed-champion"):
        estimator = mlflow.sklearn.load_model(str(model_dir))
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            pip_requirements=model_requirements(),
            **sklearn_save_kwargs(estimator),
        )
    version = mlflow.register_model(
        info.model_uri, name, tags={"split_seed": "42", "test_fraction": "0.2"}
    )
    client = mlflow.MlflowClient(tracking_uri)
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return str(version.version)


@dataclass
class PipelineStack:
    home: Path
    settings: Settings
    champion_version: str
    model_url: str
    model_pid: int

    def alias(self) -> str:
        client = mlflow.MlflowClient(self.settings.mlflow_tracking_uri)
        return str(client.get_model_version_by_alias(self.settings.model_name, CHAMPION).version)

    def versions(self) -> list[str]:
        client = mlflow.MlflowClient(self.settings.mlflow_tracking_uri)
        return sorted(
            str(v.version)
            for v in client.search_model_versions(f"name='{self.settings.model_name}'")
        )

    def served(self) -> tuple[str, str, int | None]:
        health = requests.get(f"{self.model_url}/health", timeout=5).json()
        return (
            health["model_name"],
            health["model_version"],
            services.running_pid(self.home, model_server.SERVICE),
        )


@pytest.fixture(scope="module")
def pipeline_stack(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, tiny_model_dir: Path
) -> Iterator[PipelineStack]:
    """Its own home and MLflow server (on the session's database), a registered champion
    served by our model server - what a stack looks like the day after a good run."""
    home = tmp_path_factory.mktemp("pipeline-faults")
    name = f"water-potability-faults-{uuid.uuid4().hex[:6]}"
    config.update_env(
        home, POTABILITY_ENV="local", POTABILITY_HOME=str(home), DATABASE_URL=database_url
    )
    try:
        tracking = local_stack.start_mlflow(home, database_url, port=services.free_port())
        config.update_env(home, MLFLOW_TRACKING_URI=tracking)
        version = register_champion(tracking, name, tiny_model_dir)
        url = model_server.start_local(
            home,
            f"models:/{name}/{version}",
            name,
            version,
            tracking_uri=tracking,
            port=services.free_port(),
        )
        pid = services.running_pid(home, model_server.SERVICE)
        assert pid is not None
        yield PipelineStack(
            home,
            Settings(
                env="local",
                home=home,
                database_url=database_url,
                mlflow_tracking_uri=tracking,
                model_name=name,
            ),
            version,
            url,
            pid,
        )
    finally:
        for service in (model_server.SERVICE, local_stack.MLFLOW):
            services.stop(home, service)


def start_pipeline(stack: PipelineStack) -> subprocess.Popen[str]:
    """``potability pipeline run --local`` for the stack's model, as an operator starts it."""
    env = {
        **os.environ,
        **BOUNDED_MLFLOW,
        "POTABILITY_HOME": str(stack.home),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "MODEL_SERVER_URL"):
        env.pop(key, None)  # the stack's env file says where they are
    # Popen gives the child its own copy of the descriptor: ours can close at once.
    with open(stack.home / f"pipeline-{uuid.uuid4().hex[:6]}.log", "w") as log:
        return subprocess.Popen(
            local_run_command([*QUICK, f"model_name={stack.settings.model_name}"]),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def wait_for_step(pipeline: subprocess.Popen[str], function: str, left: Any) -> psutil.Process:
    """The process running the pipeline step ``function`` (kfp.local's executor)."""
    root = psutil.Process(pipeline.pid)
    while True:
        left()
        if pipeline.poll() is not None:
            raise AssertionError(f"the pipeline ended ({pipeline.returncode}) before {function}")
        for child in root.children(recursive=True):
            try:
                if function in " ".join(child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)


def finish(pipeline: subprocess.Popen[str], left: Any) -> int:
    try:
        return pipeline.wait(timeout=max(1.0, left()))
    except subprocess.TimeoutExpired:
        os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait()
        raise


def latest_run(settings: Settings, since: float) -> dict[str, Any]:
    """The pipeline_runs row this test's run opened (started after ``since``, epoch s)."""
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT run_id FROM water.pipeline_runs WHERE started_at >= to_timestamp(%s) "
            "AND run_id NOT LIKE 'race-%%' ORDER BY started_at DESC",
            (since,),
        )
        rows = cur.fetchall()
    finally:
        conn.close()
    assert len(rows) == 1, rows
    row = run_record.read_run(settings, rows[0][0])
    assert row is not None
    return row


def assert_unchanged(stack: PipelineStack) -> None:
    """The champion alias, the registered versions and the served model are what they were."""
    assert stack.alias() == stack.champion_version
    assert stack.versions() == [stack.champion_version]  # nothing registered by a failed run
    name, version, pid = stack.served()
    assert (name, version, pid) == (
        stack.settings.model_name,
        stack.champion_version,
        stack.model_pid,
    )


def test_pipeline_step_killed_with_sigkill_is_recorded_failed_and_changes_nothing(
    pipeline_stack: PipelineStack,
) -> None:
    left = deadline(240)
    since = time.time() - 1
    pipeline = start_pipeline(pipeline_stack)
    try:
        step = wait_for_step(pipeline, "train_component", left)
        time.sleep(1.0)  # into its work (the run's row is open: export finished)
        # the step's process tree (kfp's ``sh -c`` and the Python executor under it): it
        # records nothing, so the runner must
        for proc in [step, *step.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        assert finish(pipeline, left) != 0
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
    row = latest_run(pipeline_stack.settings, since)
    assert row.status == "failed" and row.finished_at is not None
    assert row.error.startswith("runner:"), row.error  # marked by local_run's runner
    assert row.decision is None
    assert_unchanged(pipeline_stack)


def test_mlflow_down_during_a_run_is_recorded_failed_and_changes_nothing(
    pipeline_stack: PipelineStack,
) -> None:
    left = deadline(300)
    home, settings = pipeline_stack.home, pipeline_stack.settings
    since = time.time() - 1
    pipeline = start_pipeline(pipeline_stack)
    try:
        wait_for_step(pipeline, "train_component", left)
        mlflow_pid = services.running_pid(home, local_stack.MLFLOW)
        assert mlflow_pid is not None
        os.killpg(mlflow_pid, signal.SIGKILL)  # gone, as a crashed VM is
        assert finish(pipeline, left) != 0
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
        # back (on another port if the old one is still in TIME_WAIT), to read the registry
        port = int(settings.mlflow_tracking_uri.rsplit(":", 1)[1])
        uri = local_stack.start_mlflow(home, settings.database_url, port=port)
        config.update_env(home, MLFLOW_TRACKING_URI=uri)
        pipeline_stack.settings = settings = settings.with_(mlflow_tracking_uri=uri)
    row = latest_run(settings, since)
    assert row.status == "failed" and row.decision is None
    assert row.error, row
    assert_unchanged(pipeline_stack)


# --- two promotions at once -------------------------------------------------------------------


def start_worker(mode: str, args: dict[str, Any], log: Path) -> subprocess.Popen[str]:
    """promote_worker.py: its result on stdout (one line), its chatter in ``log``."""
    with open(log, "w") as err:
        return subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("promote_worker.py")),
                mode,
                json.dumps(args),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )


def waiting_for_advisory_locks(settings: Settings) -> int:
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_two_promotions_at_once_are_serialised_and_the_alias_stays_registered(
    tmp_path: Path, database_url: str, mlflow_uri: str, tiny_model_dir: Path
) -> None:
    """Two runs' promote steps, on real MLflow and PostgreSQL, both finding no champion. The
    local run lock keeps two *local* runs apart, but not two stacks on one database, a manual
    run beside a scheduled Vertex run, or a retried step - so promote holds a lock of its own.
    A third process holds that lock until both promotions are queued behind it, then dies by
    SIGKILL: both proceed (a dead holder releases it), one after the other. Serialised, the
    second sees the first's champion and keeps it (equal models, unchanged data); unserialised,
    both would register a "first champion" and the alias would follow whichever came last."""
    import mlflow.sklearn

    left = deadline(300)
    name = f"water-potability-race-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        env="local", database_url=database_url, mlflow_tracking_uri=mlflow_uri, model_name=name
    )
    from potability.seed import load_dataset

    test = load_dataset().sample(300, random_state=1).reset_index(drop=True)
    test.insert(0, "sample_id", [f"race-{i}" for i in range(len(test))])
    test_csv = tmp_path / "held_out.csv"
    test.to_csv(test_csv, index=False)
    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_experiment(name)
    estimator = mlflow.sklearn.load_model(str(tiny_model_dir))
    runs = []
    for n in range(2):  # two runs' challengers: equal models, logged apart
        with mlflow.start_run(run_name=f"race-{n}") as parent:
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                pip_requirements=model_requirements(),
                **sklearn_save_kwargs(estimator),
            )
        runs.append(
            {
                "database_url": database_url,
                "mlflow_tracking_uri": mlflow_uri,
                "model_name": name,
                "run_id": f"race-{name}-{n}",
                "parent_run_id": parent.info.run_id,
                "source_run_id": parent.info.run_id,
                "model_uri": info.model_uri,
                "test_csv": str(test_csv),
            }
        )
    client = mlflow.MlflowClient(mlflow_uri)

    holder = start_worker("hold", runs[0], tmp_path / "holder.log")
    workers: list[subprocess.Popen[str]] = []
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        workers = [
            start_worker("promote", args, tmp_path / f"worker-{n}.log")
            for n, args in enumerate(runs)
        ]
        while waiting_for_advisory_locks(settings) < 2:  # both queued behind the holder
            left()
            for n, worker in enumerate(workers):
                assert worker.poll() is None, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
            time.sleep(0.2)
        assert list(client.search_model_versions(f"name='{name}'")) == []  # nobody went ahead
        os.kill(holder.pid, signal.SIGKILL)
        results = []
        for n, worker in enumerate(workers):
            out, _ = worker.communicate(timeout=max(1.0, left()))
            assert worker.returncode == 0, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in [holder, *workers]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    assert sorted(r["decision"] for r in results) == ["champion_kept", "first_champion"]
    versions = [str(v.version) for v in client.search_model_versions(f"name='{name}'")]
    assert versions == ["1"]  # one registration, not one per run
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    assert {r["champion_version"] for r in results} == {"1"}
    rows = [run_record.read_run(settings, args["run_id"]) for args in runs]
    assert sorted(r.decision for r in rows) == ["champion_kept", "first_champion"]
    assert {r.champion_version for r in rows} == {"1"}
    conn = db.connect(settings)
    try:
        conn.cursor().execute(
            "DELETE FROM water.pipeline_runs WHERE run_id IN (%s, %s)",
            (runs[0]["run_id"], runs[1]["run_id"]),
        )
        conn.commit()
    finally:
        conn.close()
