"""How long candidates' models are kept in MLflow's artifact store, and the pruning that does it.

Retention (issue 34): every daily run logs one model per candidate (seven). Kept whole:

* every candidate of the last :data:`KEEP_RUNS` pipeline runs (today's, which evaluate and
  promote read, and the days before it, to compare or debug a recent decision);
* every **registered** model version's model, whatever its age: the champion, a challenger
  waiting for approval, and the earlier champions ``potability model rollback`` may return
  to (a version is registered only when a challenger wins, so these are few).

Every other candidate model is deleted - its artifact files (the bulk: the serialised model)
and its MLflow logged-model record. The candidate's *run* stays, with its parameters, metrics
(``model_bytes``, scores), figures and CV tables: the history of what was tried is kept, only
the model file that nobody can serve any more is gone. :func:`prune` runs at the end of the
train step (:mod:`components.train_step`), so the store holds at most ``KEEP_RUNS`` runs of
candidates plus the registered versions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

KEEP_RUNS = 3
"""Pipeline runs whose candidates' models are all kept (the newest, by start time)."""


@dataclass
class Pruned:
    """What :func:`prune` did."""

    kept_runs: list[str] = field(default_factory=list)
    """MLflow ids of the pipeline (parent) runs whose candidates were all kept."""
    kept_registered: list[str] = field(default_factory=list)
    """Logged-model ids kept because a registered version is made from them."""
    deleted: list[str] = field(default_factory=list)
    """Logged-model ids whose artifacts and record were deleted."""


def _recent_pipeline_runs(client: Any, experiment_id: str, count: int) -> list[str]:
    """Ids of the experiment's ``count`` newest pipeline (parent) runs: runs without a parent,
    by start time, newest first (a page of runs at a time, until enough are found)."""
    found: list[str] = []
    page_token = None
    while len(found) < count:
        page = client.search_runs(
            [experiment_id],
            order_by=["attributes.start_time DESC"],
            max_results=500,
            page_token=page_token,
        )
        found += [r.info.run_id for r in page if "mlflow.parentRunId" not in r.data.tags]
        page_token = page.token
        if not page_token:
            break
    return found[:count]


def _registered_model_ids(client: Any, model_name: str) -> set[str]:
    """Logged-model ids (and source run ids) behind every version of ``model_name``."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:  # not registered yet
        return set()
    kept: set[str] = set()
    for version in versions:
        if getattr(version, "model_id", None):
            kept.add(version.model_id)
        source = version.source or ""
        if source.startswith("models:/m-"):
            kept.add(source.split("/")[1])
    return kept


def prune(client: Any, experiment_name: str, model_name: str, keep_runs: int = KEEP_RUNS) -> Pruned:
    """Delete the candidate models retention does not keep (see the module docstring).

    ``client`` is an ``mlflow.MlflowClient`` of the tracking server. Idempotent: a model
    deleted already is not listed again, and a failure midway leaves the rest for next time.
    """
    from mlflow.entities import LoggedModelStatus
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if keep_runs < 1:
        raise ValueError("keep_runs must be at least 1: the current run's candidates are needed")
    experiment = client.get_experiment_by_name(experiment_name)
    result = Pruned()
    if experiment is None:
        return result
    result.kept_runs = _recent_pipeline_runs(client, experiment.experiment_id, keep_runs)
    kept_parents = set(result.kept_runs)
    registered = _registered_model_ids(client, model_name)
    parents: dict[str, str | None] = {}
    page_token = None
    while True:
        page = client.search_logged_models(
            experiment_ids=[experiment.experiment_id], page_token=page_token
        )
        for model in page:
            if model.status not in (LoggedModelStatus.READY, LoggedModelStatus.FAILED):
                continue  # still being written (a run in progress): not ours to judge
            if model.model_id in registered:
                result.kept_registered.append(model.model_id)
                continue
            run_id = model.source_run_id
            if not run_id:
                continue  # logged outside a run: not a candidate, left alone
            if run_id not in parents:
                parents[run_id] = _parent_of(client, run_id)
            if run_id in kept_parents or parents[run_id] in kept_parents:
                continue
            get_artifact_repository(model.artifact_location).delete_artifacts()
            client.delete_logged_model(model.model_id)
            result.deleted.append(model.model_id)
        page_token = page.token
        if not page_token:
            break
    log.info(
        "model retention: kept the candidates of %d runs and %d registered models, "
        "deleted %d candidate models",
        len(result.kept_runs),
        len(result.kept_registered),
        len(result.deleted),
    )
    return result


def _parent_of(client: Any, run_id: str) -> str | None:
    """The pipeline run a candidate run is nested under (None: not nested, or deleted)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).data.tags.get("mlflow.parentRunId")
    except MlflowException:  # the run was deleted: its model is no one's candidate
        return None
