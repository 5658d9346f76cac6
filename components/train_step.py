"""Step 2, train: the split and the candidates (:func:`training.candidates.train`); the held-out
rows and the candidate list written for evaluate and promote, the split's sample ids recorded
(:func:`potability.governance.run_record.record_split`); then the candidates' models past
retention deleted (:func:`training.retention.prune`)."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Output


def train_component(
    run_id: str,
    dataset: Input[Dataset],
    recall_floor: float,
    test_fraction: float,
    split_seed: int,
    cv_folds: int,
    grids: str,
    model_name: str,
    mlflow_tracking_uri: str,
    database: dict,
    test_set: Output[Dataset],
    candidates: Output[Artifact],
    mlflow_credentials_secret: str = "",
    # KFP reads the step's outputs from this functional NamedTuple; mypy takes no call here.
) -> NamedTuple("TrainOutputs", [("parent_run_id", str), ("training_rows", int)]):  # type: ignore[valid-type]
    """Train the families and the ensemble; write the held-out rows and the candidate list."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from components.runtime import failure_recorded, step_settings
    from potability.governance import run_record
    from training.candidates import train
    from training.dataset import SAMPLE_ID, read_dataset, write_dataset
    from training.modeling import TrainingConfig

    settings = step_settings(database, mlflow_tracking_uri, model_name, mlflow_credentials_secret)
    with failure_recorded(settings, run_id, "train"):
        config = TrainingConfig(recall_floor=recall_floor, cv_folds=cv_folds, seed=split_seed)
        parent_id, logged, parts = train(
            read_dataset(dataset.path),
            tracking_uri=settings.mlflow_tracking_uri,
            experiment=settings.model_name,
            pipeline_run_id=run_id,
            grid_name=grids,
            config=config,
            test_fraction=test_fraction,
            data_sha256=str(dataset.metadata.get("sha256", "")),
        )
        # which samples trained the candidates: the drift reference if one becomes champion
        run_record.record_split(
            settings,
            run_id,
            split_seed,
            test_fraction,
            parts.train[SAMPLE_ID],
            parts.test[SAMPLE_ID],
        )
        held_out = write_dataset(parts.test, Path(test_set.path))
        test_set.metadata.update(
            {
                "rows": held_out.rows,
                "sha256": held_out.sha256,
                "format": "csv",
                "split_seed": split_seed,
            }
        )
        Path(candidates.path).write_text(json.dumps([c.to_json() for c in logged], indent=1))
        candidates.metadata.update(
            {"families": [c.family for c in logged], "parent_run_id": parent_id}
        )
    # Housekeeping after the step's work: a failure to prune (the artifact store briefly
    # unreachable) must not fail a run whose candidates are logged; the next run prunes.
    import logging

    import mlflow

    from training import retention

    try:
        retention.prune(
            mlflow.MlflowClient(settings.mlflow_tracking_uri),
            settings.model_name,
            settings.model_name,
        )
    except Exception:  # logged with its traceback; the next run prunes again
        logging.getLogger(__name__).exception("model retention failed; the next run prunes")
    TrainOutputs = namedtuple("TrainOutputs", ["parent_run_id", "training_rows"])
    return TrainOutputs(parent_id, len(parts.train))
