"""The pipeline's steps run as plain functions, in order, on real parts: a database of their
own (migrated and seeded), the session's MLflow server, artifacts in a temporary folder.

What KFP does between the steps (passing outputs as inputs) is done here by hand, so each
step's test file can check its own step; the compiled pipeline and a KFP local run are tested
in tests/pipelines. The data set is the shipped one; the grid is ``quick`` with two folds, so
the chain costs seconds, not minutes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Metrics

from potability import db
from potability.config import Settings
from potability.local import local_stack


@dataclass
class StepChain:
    """The steps' shared parameters and, as each step runs, its outputs."""

    run_id: str
    database: dict[str, str]
    settings: Settings
    mlflow_uri: str
    model_name: str
    folder: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def artifact(self, kind: type, name: str) -> Any:
        """A KFP artifact whose ``path`` is a file in the chain's folder (a local URI is its
        own path: kfp ``Artifact._get_path``)."""
        made = kind(name=name, uri=str(self.folder / name), metadata={})
        self.artifacts[name] = made
        return made


@pytest.fixture(scope="session")
def chain_database(database_url: str) -> Iterator[str]:
    """A database of the chain's own, migrated and seeded like a fresh stack's."""
    name = f"steps_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        url = db.with_database(database_url, name)
        local_stack.prepare_database(url, local_users=False)
        yield url
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="session")
def step_chain(chain_database: str, mlflow_uri: str,
               tmp_path_factory: pytest.TempPathFactory) -> StepChain:
    """export -> train -> evaluate -> promote, each step's body called as KFP would."""
    from components.evaluate_step import evaluate_component
    from components.export_step import export_component
    from components.promote_step import promote_component
    from components.train_step import train_component

    chain = StepChain(
        run_id=f"steps-{uuid.uuid4().hex[:8]}", database={"url": chain_database},
        settings=Settings(env="local", database_url=chain_database, mlflow_tracking_uri=mlflow_uri),
        mlflow_uri=mlflow_uri, model_name=f"steps-{uuid.uuid4().hex[:6]}",
        folder=tmp_path_factory.mktemp("steps"))
    common = dict(mlflow_tracking_uri=mlflow_uri, database=chain.database)
    chain.outputs["export"] = export_component(
        run_id=chain.run_id, database=chain.database,
        dataset=chain.artifact(Dataset, "dataset"))
    chain.outputs["train"] = train_component(
        run_id=chain.run_id, dataset=chain.artifacts["dataset"], recall_floor=0.2,
        test_fraction=0.25, split_seed=42, cv_folds=2, grids="quick",
        model_name=chain.model_name, test_set=chain.artifact(Dataset, "test_set"),
        candidates=chain.artifact(Artifact, "candidates"), **common)
    chain.outputs["evaluate"] = evaluate_component(
        run_id=chain.run_id, test_set=chain.artifacts["test_set"],
        candidates=chain.artifacts["candidates"],
        parent_run_id=chain.outputs["train"].parent_run_id, recall_floor=0.2,
        scored_candidates=chain.artifact(Artifact, "scored_candidates"),
        metrics=chain.artifact(Metrics, "metrics"),
        challenger_metrics=chain.artifact(ClassificationMetrics, "challenger_metrics"), **common)
    chain.outputs["promote"] = promote_component(
        run_id=chain.run_id, scored_candidates=chain.artifacts["scored_candidates"],
        test_set=chain.artifacts["test_set"],
        parent_run_id=chain.outputs["train"].parent_run_id,
        training_rows=chain.outputs["train"].training_rows, recall_floor=0.2, split_seed=42,
        test_fraction=0.25, promotion_confidence=0.9, model_name=chain.model_name, **common)
    return chain
