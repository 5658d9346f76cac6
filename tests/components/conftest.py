"""The pipeline's steps run as plain functions, in order, on real parts: a database of their
own (``seeded_db``: migrated and seeded), the session's MLflow server, artifacts in a temporary
folder.

What KFP does between the steps (passing outputs as inputs) is done here by hand, so each
step's test file can check its own step; the compiled pipeline and a KFP local run are tested
in tests/pipelines. The data set is the shipped one; the grid is ``quick`` with two folds, so
the chain costs seconds, not minutes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Metrics

from potability.config import Settings


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
def step_chain(
    seeded_db: str, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> StepChain:
    """export -> train -> evaluate -> promote, each step's body called as KFP would."""
    from components.evaluate_step import evaluate_component
    from components.export_step import export_component
    from components.promote_step import promote_component
    from components.train_step import train_component

    chain = StepChain(
        run_id=f"steps-{uuid.uuid4().hex[:8]}",
        database={"url": seeded_db},
        settings=Settings(env="local", database_url=seeded_db, mlflow_tracking_uri=mlflow_uri),
        mlflow_uri=mlflow_uri,
        model_name=f"steps-{uuid.uuid4().hex[:6]}",
        folder=tmp_path_factory.mktemp("steps"),
    )
    common = {"mlflow_tracking_uri": mlflow_uri, "database": chain.database}
    chain.outputs["export"] = export_component(
        run_id=chain.run_id, database=chain.database, dataset=chain.artifact(Dataset, "dataset")
    )
    chain.outputs["train"] = train_component(
        run_id=chain.run_id,
        dataset=chain.artifacts["dataset"],
        recall_floor=0.2,
        test_fraction=0.25,
        split_seed=42,
        cv_folds=2,
        grids="quick",
        model_name=chain.model_name,
        test_set=chain.artifact(Dataset, "test_set"),
        candidates=chain.artifact(Artifact, "candidates"),
        **common,
    )
    chain.outputs["evaluate"] = evaluate_component(
        run_id=chain.run_id,
        test_set=chain.artifacts["test_set"],
        candidates=chain.artifacts["candidates"],
        parent_run_id=chain.outputs["train"].parent_run_id,
        recall_floor=0.2,
        scored_candidates=chain.artifact(Artifact, "scored_candidates"),
        metrics=chain.artifact(Metrics, "metrics"),
        challenger_metrics=chain.artifact(ClassificationMetrics, "challenger_metrics"),
        **common,
    )
    chain.outputs["promote"] = promote_component(
        run_id=chain.run_id,
        scored_candidates=chain.artifacts["scored_candidates"],
        test_set=chain.artifacts["test_set"],
        parent_run_id=chain.outputs["train"].parent_run_id,
        training_rows=chain.outputs["train"].training_rows,
        recall_floor=0.2,
        split_seed=42,
        test_fraction=0.25,
        promotion_false_rate=0.05,
        promotion_look_days=7,
        model_name=chain.model_name,
        **common,
    )
    return chain
