"""Retention of candidates' models (training/retention.py) on a real MLflow tracking server
with its proxied artifact store."""

from __future__ import annotations

import uuid

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from sklearn.dummy import DummyClassifier

from potability.model import sklearn_save_kwargs
from training import retention
from training.candidates import model_requirements


def _pipeline_run(day: int, families: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """One pipeline run as the train step logs it: a parent run, one nested run and one
    logged model per family. (parent run id, family -> logged-model id)."""
    x, y = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    models = {}
    with mlflow.start_run(run_name=f"day-{day}") as parent:
        for family in families:
            with mlflow.start_run(run_name=family, nested=True):
                mlflow.log_metric("cv_precision", 0.5 + day / 100)
                model = DummyClassifier(strategy="prior").fit(x, y)
                info = mlflow.sklearn.log_model(  # requirements as the train step gives them
                    model,
                    name="model",
                    pip_requirements=model_requirements(),
                    **sklearn_save_kwargs(model),
                )
                models[family] = info.model_id
    return parent.info.run_id, models


def _files(client: mlflow.MlflowClient, model_id: str) -> list[str]:
    location = client.get_logged_model(model_id).artifact_location
    return [a.path for a in get_artifact_repository(location).list_artifacts()]


def test_prune_keeps_the_recent_runs_and_every_registered_model(mlflow_uri) -> None:
    name = f"retention-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_experiment(name)
    client = mlflow.MlflowClient(mlflow_uri)
    days = [_pipeline_run(day, ("forest", "vote")) for day in range(4)]
    (_, oldest), (middle_run, middle), (_, recent), (_, newest) = days
    # the oldest day's forest won and is registered (an old champion a rollback may need)
    registered = mlflow.register_model(f"models:/{oldest['forest']}", name)
    doomed = [oldest["vote"], *middle.values()]
    locations = {m: client.get_logged_model(m).artifact_location for m in doomed}
    assert all(_files(client, m) for m in doomed)  # stored before

    result = retention.prune(client, name, name, keep_runs=2)

    assert sorted(result.deleted) == sorted(doomed)
    assert result.kept_registered == [oldest["forest"]]
    assert len(result.kept_runs) == 2
    for model_id in doomed:  # the files are gone from the store
        assert get_artifact_repository(locations[model_id]).list_artifacts() == []
    listed = {m.model_id for m in client.search_logged_models(experiment_ids=[_id(client, name)])}
    assert listed == {oldest["forest"], *recent.values(), *newest.values()}  # records deleted
    # the candidates' runs keep their metrics: the history of what was tried stays
    children = client.search_runs(
        [_id(client, name)], filter_string=f"tags.mlflow.parentRunId = '{middle_run}'"
    )
    assert len(children) == 2 and all("cv_precision" in r.data.metrics for r in children)
    # what is kept still loads: the registered version and the recent runs' candidates
    assert mlflow.sklearn.load_model(f"models:/{name}/{registered.version}") is not None
    for model_id in [*recent.values(), *newest.values()]:
        assert mlflow.sklearn.load_model(f"models:/{model_id}") is not None
    # idempotent: nothing left to delete
    again = retention.prune(client, name, name, keep_runs=2)
    assert again.deleted == [] and again.kept_registered == [oldest["forest"]]


def test_prune_refuses_to_keep_no_run() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retention.prune(None, "x", "x", keep_runs=0)


def _id(client: mlflow.MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return experiment.experiment_id
