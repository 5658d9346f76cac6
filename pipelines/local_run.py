"""``run --local``: the same pipeline under ``kfp.local`` (SubprocessRunner, current venv).

Parameters default to the local stack's settings (``.potability/env``: DATABASE_URL,
MLFLOW_TRACKING_URI). Each run's folder under ``<home>/kfp`` is named by its pipeline job
name, which is also its ``run_id`` in ``water.pipeline_runs``; if the run fails in a way its
steps could not record (a component killed, say), this runner marks it failed.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from potability.config import Settings


@dataclass(frozen=True)
class LocalRun:
    run_id: str
    outputs: Mapping[str, Any]


def local_parameters(settings: Settings, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Pipeline parameters for the local stack: defaults, the stack's URLs, then overrides."""
    from pipelines.training_pipeline import DEFAULT_PARAMETERS

    params = {**DEFAULT_PARAMETERS, "database_url": settings.database_url,
              "mlflow_tracking_uri": settings.mlflow_tracking_uri,
              "model_name": settings.model_name, "deploy_target": "local"}
    unknown = set(overrides or {}) - set(DEFAULT_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown pipeline parameters: {sorted(unknown)}")
    params.update(overrides or {})
    if not params["database_url"] or not params["mlflow_tracking_uri"]:
        raise RuntimeError("the local stack is not up: run `potability up` (or `make run`) first")
    return params


def pipeline_root(settings: Settings) -> Path:
    return settings.home / "kfp"


def run_local(settings: Settings, overrides: Mapping[str, Any] | None = None) -> LocalRun:
    """Run the pipeline end to end under ``kfp.local``; raise if it fails (recorded as failed).

    Args:
        settings: the local stack's settings (home, database, MLflow).
        overrides: pipeline parameters to change (e.g. ``{"grids": "quick"}``).
    """
    import warnings

    from kfp import local

    from components import run_record
    from pipelines.training_pipeline import training_pipeline

    params = local_parameters(settings, overrides)
    root = pipeline_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               raise_on_error=True)
    # The image is Vertex's business; locally the venv is the image.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    try:
        task = training_pipeline(**params)
    except BaseException as exc:
        for run_id in sorted({p.name for p in root.iterdir()} - before):
            row = run_record.read_run(settings, run_id)
            if row is None or row["status"] == "running":
                run_record.mark_failed(settings.with_(model_name=params["model_name"]),
                                       run_id, f"runner: {type(exc).__name__}: {exc}")
        raise
    new = sorted({p.name for p in root.iterdir()} - before)
    outputs = getattr(task, "outputs", {}) or {}
    return LocalRun(run_id=new[-1] if new else "", outputs=dict(outputs))
