"""Step 4, promote (components/promote_step.py): the first champion is registered, recorded
and aliased; the champion is never weighed against itself. (Challenger against champion on
evidence: tests/training/test_promotion.py; a second pipeline run: tests/pipelines.)"""

import uuid

import mlflow
import pytest

from components.promote_step import promote_component
from potability.governance import run_record
from training.decision import FIRST_CHAMPION


def test_the_first_run_installs_a_champion_and_records_it(step_chain) -> None:
    out = step_chain.outputs["promote"]
    assert (out.decision, out.champion_changed, out.previous_version) == (FIRST_CHAMPION, True, "")
    client = mlflow.MlflowClient(step_chain.mlflow_uri)
    alias = client.get_model_version_by_alias(step_chain.model_name, "champion")
    assert alias.version == out.champion_version
    run = run_record.read_run(step_chain.settings, step_chain.run_id)
    assert (run.decision, run.champion_version) == (FIRST_CHAMPION, out.champion_version)


def test_promoting_the_champion_against_itself_is_refused_and_recorded(step_chain) -> None:
    """The same candidates promoted again (a pipeline bug: a cached step re-run) would compare
    the champion with itself; the step refuses, records the run as failed, and the alias stays."""
    run_id = f"steps-again-{uuid.uuid4().hex[:6]}"
    run_record.start_run(
        step_chain.settings,
        run_id,
        step_chain.outputs["export"].sha256,
        step_chain.outputs["export"].rows,
    )
    train, first = step_chain.outputs["train"], step_chain.outputs["promote"]
    with pytest.raises(RuntimeError, match="refusing to compare a model with itself"):
        promote_component(
            run_id=run_id,
            scored_candidates=step_chain.artifacts["scored_candidates"],
            test_set=step_chain.artifacts["test_set"],
            parent_run_id=train.parent_run_id,
            training_rows=train.training_rows,
            recall_floor=0.2,
            split_seed=42,
            test_fraction=0.25,
            promotion_false_rate=0.05,
            promotion_look_days=7,
            model_name=step_chain.model_name,
            mlflow_tracking_uri=step_chain.mlflow_uri,
            database=step_chain.database,
        )
    run = run_record.read_run(step_chain.settings, run_id)
    assert run.status == "failed" and run.error.startswith("promote: RuntimeError")
    alias = mlflow.MlflowClient(step_chain.mlflow_uri).get_model_version_by_alias(
        step_chain.model_name, "champion"
    )
    assert alias.version == first.champion_version
