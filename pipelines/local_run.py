"""``run --local``: the same pipeline under ``kfp.local`` (SubprocessRunner, current venv).

Parameters default to the local stack's settings (``.potability/env``: DATABASE_URL,
MLFLOW_TRACKING_URI). Each run's folder under ``<home>/kfp`` is named by its pipeline job
name, which is also its ``run_id`` in ``water.pipeline_runs``; if the run fails in a way its
steps could not record (a component killed, say), this runner marks it failed.

Never two runs at once: a run holds an exclusive ``flock`` on ``<home>/run/pipeline.lock``
from start to end (the kernel drops it when the process dies, so a killed run never leaves a
stale lock), and a second run - by hand or by the scheduler - is refused with
:class:`PipelineBusy` instead of training against the same alias and model server.

With ``progress`` (a terminal), kfp's output goes to ``<home>/logs/pipeline-runs/<run
id>.log`` and only one line per finished step is written to ``progress``
(:mod:`pipelines.progress`).
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from potability.config import Settings
from potability.local import services

LOCK_FILE = "pipeline.lock"


class PipelineBusy(RuntimeError):
    """Another local pipeline run holds the lock."""


@dataclass(frozen=True)
class LocalRun:
    run_id: str
    outputs: Mapping[str, Any]
    log_path: Path | None = None
    """The run's full kfp output (only when run with ``progress``)."""


def lock_path(settings: Settings) -> Path:
    return settings.home / "run" / LOCK_FILE


@contextlib.contextmanager
def run_lock(settings: Settings) -> Iterator[None]:
    """Hold the local pipeline lock, or raise :class:`PipelineBusy` at once."""
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise PipelineBusy(
                f"another local pipeline run is in progress (pid {holder}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def local_parameters(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Pipeline parameters for the local stack: defaults, the stack's URLs, then overrides
    (a ``database`` override changes only the keys it names)."""
    from components.runtime import database_parameter
    from pipelines.training_pipeline import default_parameters

    params = {
        **default_parameters(),
        "database": database_parameter(settings),
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "model_name": settings.model_name,
        "deploy_target": "local",
        "promotion_approval": settings.promotion_approval,
        "candidate_expiry_days": settings.candidate_expiry_days,
        "promotion_false_rate": settings.promotion_false_rate,
        "promotion_look_days": settings.promotion_look_days,
    }
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown pipeline parameters: {sorted(unknown)}")
    if isinstance(overrides.get("database"), Mapping):
        overrides["database"] = {**params["database"], **overrides["database"]}
    params.update(overrides)
    if not params["database"].get("url") or not params["mlflow_tracking_uri"]:
        raise RuntimeError("the local stack is not up: run `potability up` (or `make run`) first")
    return params


def pipeline_root(settings: Settings) -> Path:
    return settings.home / "kfp"


def run_local(
    settings: Settings, overrides: Mapping[str, Any] | None = None, progress: TextIO | None = None
) -> LocalRun:
    """Run the pipeline end to end under ``kfp.local``; raise if it fails (recorded as failed).

    Args:
        settings: the local stack's settings (home, database, MLflow).
        overrides: pipeline parameters to change (e.g. ``{"grids": "quick"}``).
        progress: where to write one line per finished step; kfp's own output then goes to
            the run's log file. None: kfp prints as it does.

    Raises:
        PipelineBusy: another local run holds the lock (nothing was started).
    """
    params = local_parameters(settings, overrides)
    with run_lock(settings):
        if progress is None:
            return _run(settings, params)
        return _run_reported(settings, params, progress)


def _run_reported(settings: Settings, params: Mapping[str, Any], progress: TextIO) -> LocalRun:
    """:func:`_run` with kfp's output in a log file and one line per step on ``progress``."""
    from pipelines.progress import ProgressStream

    root = pipeline_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}

    def task_dir(task: str) -> Path | None:
        new = sorted({p.name for p in root.iterdir()} - before)
        return root / new[-1] / task if new else None

    logs = services.runs_log_dir(settings.home)
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.log"
    final = log_path
    with open(log_path, "w", buffering=1) as log:
        stream = ProgressStream(log, progress, task_dir)
        failed = True
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                result = _run(settings, params)
            failed = False
        finally:
            new = sorted({p.name for p in root.iterdir()} - before)
            if new:
                final = logs / f"{new[-1]}.log"
                log_path.rename(final)
            if failed:
                progress.write(f"the run failed; its full output: {final}\n")
    return LocalRun(result.run_id, result.outputs, final)


def _run(settings: Settings, params: Mapping[str, Any]) -> LocalRun:
    import warnings

    from kfp import local

    from components.runtime import record_failure
    from pipelines.training_pipeline import training_pipeline
    from potability.governance import run_record

    root = pipeline_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    # The image is Vertex's business; locally the venv is the image.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*")
    try:
        task = training_pipeline(**params)
    except BaseException as exc:
        for run_id in sorted({p.name for p in root.iterdir()} - before):
            row = run_record.read_run(settings, run_id)
            if row is None or row.status == "running":
                record_failure(
                    settings.with_(model_name=params["model_name"]),
                    run_id,
                    f"runner: {type(exc).__name__}: {exc}",
                )
        raise
    new = sorted({p.name for p in root.iterdir()} - before)
    outputs = getattr(task, "outputs", {}) or {}
    return LocalRun(run_id=new[-1] if new else "", outputs=dict(outputs))
