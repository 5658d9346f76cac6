"""Step 2, train (components/train_step.py): the split and the candidates, on real MLflow."""

import json
import uuid
import zipfile
from pathlib import Path

import mlflow
import pytest
from kfp.dsl import Artifact, Dataset

from components.train_step import train_component
from potability.governance import run_record
from training import footprint
from training.dataset import read_dataset
from training.modeling import FAMILIES


def test_train_writes_the_held_out_rows_and_one_candidate_per_family(step_chain) -> None:
    out = step_chain.outputs["train"]
    test_set, candidates = step_chain.artifacts["test_set"], step_chain.artifacts["candidates"]
    held_out = read_dataset(test_set.path)
    assert out.training_rows + len(held_out) == step_chain.outputs["export"].rows
    assert test_set.metadata["rows"] == len(held_out) and test_set.metadata["split_seed"] == 42
    logged = json.loads(Path(candidates.path).read_text())
    families = [c["family"] for c in logged]
    assert set(FAMILIES) <= set(families) and candidates.metadata["families"] == families
    assert candidates.metadata["parent_run_id"] == out.parent_run_id
    client = mlflow.MlflowClient(step_chain.mlflow_uri)
    parent = client.get_run(out.parent_run_id)
    assert parent.info.status == "FINISHED"
    # issue 34: each candidate's size and scoring time are metrics, the run's total too; the
    # size is the model's stored skops archive, deflated
    sizes = []
    for candidate in logged:
        metrics = client.get_run(candidate["run_id"]).data.metrics
        assert metrics["scoring_ms_1"] > 0 and metrics["scoring_ms_100"] > 0
        sizes.append(metrics["model_bytes"])
        stored = Path(
            mlflow.artifacts.download_artifacts(
                candidate["model_uri"], tracking_uri=step_chain.mlflow_uri
            )
        )
        with zipfile.ZipFile(stored / "model.skops") as archive:
            assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        assert (stored / "model.skops").stat().st_size == metrics["model_bytes"]
        # the metrics are the logged model's too (MLflow 3: tied by its id)
        model = client.get_logged_model(candidate["model_uri"].removeprefix("models:/"))
        assert {m.key: m.value for m in model.metrics}["model_bytes"] == metrics["model_bytes"]
        assert {"cv_precision_at_recall_floor", "threshold", "scoring_ms_1"} <= {
            m.key for m in model.metrics
        }
    assert parent.data.metrics["models_bytes"] == sum(sizes) <= footprint.MAX_RUN_BYTES


def test_a_failing_train_records_the_run_as_failed_and_raises(step_chain, tmp_path) -> None:
    run_id = f"steps-fail-{uuid.uuid4().hex[:6]}"
    run_record.start_run(step_chain.settings, run_id, "0" * 64, 1)
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        train_component(
            run_id=run_id,
            dataset=step_chain.artifacts["dataset"],
            recall_floor=0.2,
            test_fraction=0.25,
            split_seed=42,
            cv_folds=2,
            grids="nope",
            model_name=step_chain.model_name,
            mlflow_tracking_uri=step_chain.mlflow_uri,
            database=step_chain.database,
            test_set=Dataset(name="t", uri=str(tmp_path / "t"), metadata={}),
            candidates=Artifact(name="c", uri=str(tmp_path / "c"), metadata={}),
        )
    run = run_record.read_run(step_chain.settings, run_id)
    assert run.status == "failed" and run.error.startswith("train: ValueError: unknown grid")
