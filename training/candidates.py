"""Fitting and logging the candidates: one grid search + threshold tuning per family, on the
training part of the split (:mod:`training.split`).

Each family (and the soft-voting ensemble of the best ones) becomes one MLflow run nested
under the pipeline run's parent run, with its parameters, CV scores (the selection score:
cross-validated precision at the recall floor, threshold tuned inside the folds), the grid, the
calibration method and the cross-validated Brier scores, the threshold-tuning figure and a
reliability diagram (out-of-fold, calibrated vs uncalibrated), and the fitted model
(scikit-learn flavour, with signature and input example). The held-out part is written as a
Dataset for evaluate and promote, so all later steps score on exactly the same rows.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from potability.features import FEATURE_NAMES, TARGET
from training import modeling
from training.footprint import drop_duplicates, footprint
from training.split import Split, split


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(X with ``FEATURE_NAMES`` as float columns, y as int)."""
    return frame[list(FEATURE_NAMES)].astype(float), frame[TARGET].astype(int)


def fit_candidates(
    train: pd.DataFrame,
    grid_name: str,
    config: modeling.TrainingConfig,
    families: tuple[str, ...] = modeling.FAMILIES,
    ensemble: bool = True,
) -> list[modeling.FittedCandidate]:
    """Fit every family of the named grid, then the ensemble, on the training part only."""
    x, y = features_and_target(train)
    return modeling.fit_all(modeling.grid(grid_name), x, y, config, families, ensemble)


@dataclass(frozen=True)
class LoggedCandidate:
    """What later steps need to find a candidate: its family, MLflow run and model URI."""

    family: str
    run_id: str
    model_uri: str
    threshold: float
    cv_score: float
    """Selection score: CV precision at the recall floor (0 if CV recall misses the floor)."""
    cv_precision: float
    cv_recall: float
    calibration: str
    best_params: dict[str, Any]
    model_bytes: int = 0
    """Bytes of its stored skops archive (the ``model_bytes`` metric)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "threshold": self.threshold,
            "cv_score": self.cv_score,
            "cv_precision": self.cv_precision,
            "cv_recall": self.cv_recall,
            "calibration": self.calibration,
            "best_params": {k: _plain(v) for k, v in self.best_params.items()},
        }


def _plain(value: Any) -> Any:
    """JSON-able form of a grid value (numbers and strings stay, None stays)."""
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it.

    Stated rather than inferred: MLflow's inference starts a subprocess per model (seconds
    each), and we serve with our own image anyway - this is documentation for other users.
    """
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "skops", "numpy", "pandas")]


def cv_table(candidate: modeling.FittedCandidate) -> dict[str, list[Any]]:
    """The grid search's per-combination CV scores, JSON-able."""
    results = candidate.cv_results
    if not results.get("params"):  # the ensemble: no grid of its own
        return {"params": [], "mean_test_score": [], "std_test_score": [], "rank_test_score": []}
    return {
        "params": [{k: _plain(v) for k, v in p.items()} for p in results["params"]],
        "mean_test_score": [float(s) for s in results["mean_test_score"]],
        "std_test_score": [float(s) for s in results["std_test_score"]],
        "rank_test_score": [int(r) for r in results["rank_test_score"]],
    }


def log_candidate(
    candidate: modeling.FittedCandidate,
    grid: Mapping[str, list[Any]],
    x_train: pd.DataFrame,
    y_train: pd.Series,
    pipeline_run_id: str,
    config: modeling.TrainingConfig,
    cost: Mapping[str, float] | None = None,
) -> LoggedCandidate:
    """Log one family as a nested MLflow run (call inside the parent run).

    Args:
        candidate: the fitted family.
        grid: the parameter grid that was searched.
        x_train: training features (for the signature and input example).
        y_train: training labels (for the out-of-fold reliability diagram).
        pipeline_run_id: the pipeline job name (tag, to find runs of one pipeline run).
        config: the training configuration (logged as parameters).
        cost: its scoring times (:func:`training.footprint.footprint`), logged as metrics;
            its size, ``model_bytes``, is logged as the model is stored.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    from potability.model import sklearn_save_kwargs
    from training import figures, footprint

    with mlflow.start_run(
        run_name=candidate.family,
        nested=True,
        tags={"family": candidate.family, "pipeline_run_id": pipeline_run_id},
    ) as run:
        mlflow.log_params({f"best.{k}": _plain(v) for k, v in candidate.best_params.items()})
        mlflow.log_params(
            {
                "family": candidate.family,
                "recall_floor": config.recall_floor,
                "recall_z": config.recall_z,
                "recall_margin": round(config.recall_margin(y_train), 4),
                "cv_folds": config.cv_folds,
                "seed": config.seed,
                "cv_seed": config.fold_seed,
                "calibration": candidate.calibration,
            }
        )
        mlflow.log_dict({k: [_plain(v) for v in vs] for k, vs in grid.items()}, "grid.json")
        mlflow.log_dict(cv_table(candidate), "cv_results.json")
        thresholds, objective = candidate.tuning_curve
        fig = figures.threshold_tuning_figure(
            thresholds,
            objective,
            candidate.threshold,
            f"{candidate.family}: threshold tuned on out-of-fold calibrated probabilities",
        )
        mlflow.log_figure(fig, "figures/threshold_tuning.png")
        figures.close(fig)
        fig = figures.reliability_figure(
            y_train,
            {
                f"calibrated ({candidate.calibration})": candidate.oof_calibrated,
                **(
                    {"uncalibrated": candidate.oof_proba()}
                    if candidate.oof_proba() is not None
                    else {}
                ),
            },
            f"{candidate.family}: reliability, out-of-fold on the training rows",
        )
        mlflow.log_figure(fig, "figures/reliability_cv.png")
        figures.close(fig)
        example = x_train.dropna().head(3)
        # mlflow.sklearn.log_model with the skops archive deflated (footprint.save_model)
        stored = footprint.StoredModel()
        info = Model.log(
            None,
            stored,
            flavor_name="mlflow.sklearn",
            sk_model=candidate.model,
            name="model",
            input_example=example,
            signature=infer_signature(example, candidate.model.predict(example)),
            pip_requirements=model_requirements(),
            **sklearn_save_kwargs(candidate.model),
        )
        # Logged after the model, tied to it by its id (MLflow 3's logged model shows them):
        # one request. Logged before it, Model.log reads each metric's history back to tie it
        # (1 + 2 x ~20 requests a candidate: 1.8 s of a daily run's train step, profiled).
        mlflow.log_metrics(
            {
                "cv_precision_at_recall_floor": candidate.selection.score,
                "cv_precision": candidate.selection.precision,
                "cv_recall": candidate.selection.recall,
                "cv_best_precision_at_recall": candidate.search_score,
                "threshold": candidate.threshold,
                **{f"cv_brier_{k}": v for k, v in candidate.cv_brier.items()},
                **{f"seconds_{k}": v for k, v in candidate.seconds.items()},
                **(cost or {}),
                "model_bytes": stored.archive_bytes,
            },
            model_id=info.model_id,
        )
        return LoggedCandidate(
            candidate.family,
            run.info.run_id,
            info.model_uri,
            candidate.threshold,
            candidate.cv_score,
            candidate.selection.precision,
            candidate.selection.recall,
            candidate.calibration,
            candidate.best_params,
            stored.archive_bytes,
        )


def train(
    frame: pd.DataFrame,
    *,
    tracking_uri: str,
    experiment: str,
    pipeline_run_id: str,
    grid_name: str,
    config: modeling.TrainingConfig,
    test_fraction: float,
    data_sha256: str = "",
) -> tuple[str, list[LoggedCandidate], Split]:
    """Split, fit all families, log them under one parent run; return (parent id, candidates,
    split).

    Args:
        frame: the exported data.
        tracking_uri: MLflow tracking server.
        experiment: MLflow experiment (the registered model's name).
        pipeline_run_id: the pipeline job name (the parent run's name).
        grid_name: which named grid of :data:`training.modeling.GRIDS`.
        config: recall floor and margin, folds, seed, parallelism.
        test_fraction: share held out for evaluate/promote.
        data_sha256: the export's content hash (logged, ties the run to its data).
    """
    import mlflow

    # the recall margin is sized on the held-out share the floor is judged on
    config = replace(config, test_fraction=test_fraction)
    parts = split(frame, test_fraction, config.seed)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    grids = modeling.grid(grid_name)
    with mlflow.start_run(
        run_name=pipeline_run_id, tags={"pipeline_run_id": pipeline_run_id}
    ) as parent:
        mlflow.log_params(
            {
                "recall_floor": config.recall_floor,
                "recall_z": config.recall_z,
                "recall_margin": round(config.recall_margin(parts.train[TARGET].astype(int)), 4),
                "test_fraction": test_fraction,
                "split_seed": config.seed,
                "cv_folds": config.cv_folds,
                "grids": grid_name,
                "data_sha256": data_sha256,
                "training_rows": len(parts.train),
                "test_rows": len(parts.test),
                "train_potable_share": round(float(parts.train[TARGET].mean()), 4),
                "test_potable_share": round(float(parts.test[TARGET].mean()), 4),
            }
        )
        x_train, y_train = features_and_target(parts.train)
        logged = []
        stored = 0.0
        for candidate in fit_candidates(parts.train, grid_name, config):
            searched = grids.get(candidate.family) or {
                "members": [candidate.best_params["members"]]
            }
            drop_duplicates(candidate.model)  # the vote's second copy of its members
            cost = footprint(candidate.model, x_train)
            logged.append(
                log_candidate(candidate, searched, x_train, y_train, pipeline_run_id, config, cost)
            )
            stored += logged[-1].model_bytes
        # the run's share of the artifact store (issue 34: <= footprint.MAX_RUN_BYTES)
        mlflow.log_metric("models_bytes", stored)
        # log_dict writes any JSON value (json.dump); MLflow annotates a dict
        mlflow.log_dict([c.to_json() for c in logged], "candidates.json")  # type: ignore[arg-type]
        return parent.info.run_id, logged, parts


def load_candidates(path: str | Path) -> list[dict[str, Any]]:
    """The candidate list written by the train component."""
    return json.loads(Path(path).read_text())
