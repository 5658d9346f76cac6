"""The few lines a local run ends with: the outcome, where to look, what to try.

Read from the run's row in ``water.pipeline_runs`` (the same record the status page shows), the
stack's env file (URLs) and MLflow's REST API (the experiment of the run, for the UI link
``<tracking uri>/#/experiments/<id>/runs/<run id>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from potability import config
from potability.config import Settings
from potability.local import services

FUNCTION_URLS = (
    ("predict", "PREDICT_URL", "fn-predict"),
    ("add_sample", "ADD_SAMPLE_URL", "fn-add-sample"),
    ("status page", "STATUS_URL", "fn-status"),
)


def mlflow_run_link(tracking_uri: str, mlflow_run_id: str) -> str:
    """The MLflow UI page of a run, or the UI's front page when the run cannot be looked up."""
    if not tracking_uri or not mlflow_run_id:
        return tracking_uri
    try:
        response = requests.get(
            f"{tracking_uri}/api/2.0/mlflow/runs/get", params={"run_id": mlflow_run_id}, timeout=5
        )
        experiment = response.json()["run"]["info"]["experiment_id"]
    except (requests.RequestException, ValueError, KeyError):
        return tracking_uri
    return f"{tracking_uri}/#/experiments/{experiment}/runs/{mlflow_run_id}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def recall_floor_warning(run: Any) -> str | None:
    """The warning line when this run installed a champion whose held-out recall is more likely
    under the floor than over it (it serves, with the ``champion_under_recall_floor`` alert
    open: docs/statistics.md); None otherwise."""
    meets = (run.details or {}).get("champion_meets_floor")
    if meets is None or meets >= 0.5 or run.recall_floor is None:
        return None
    return (
        f"WARNING      v{run.champion_version} serves with held-out recall "
        f"{_pct(run.champion_recall)}, under the floor {_pct(run.recall_floor)} in "
        f"{(1 - meets) * 100:.0f}% of bootstrap resamples: alert champion_under_recall_floor "
        "is open (`potability alerts`)"
    )


def summary_lines(settings: Settings, run_id: str, log_path: Path | None) -> list[str]:
    """The run's outcome, the champion, the URLs and the example curls."""
    from potability.governance.run_record import read_run

    run = read_run(settings, run_id)
    decision = str(run.decision if run and run.decision else "no decision").replace("_", " ")
    lines = [f"run {run_id}: {run.status if run else 'unknown'} - {decision}"]
    if run and run.champion_version:
        lines.append(
            f"champion     {run.model_name} v{run.champion_version} "
            f"({run.champion_family}): held-out precision "
            f"{_pct(run.champion_precision)}, recall {_pct(run.champion_recall)}"
        )
    warning = recall_floor_warning(run) if run else None
    if warning:
        lines.append(warning)
    mlflow_run_id = (run.mlflow_run_id if run else None) or ""
    lines.append(f"MLflow run   {mlflow_run_link(settings.mlflow_tracking_uri, mlflow_run_id)}")
    if log_path is not None:
        lines.append(f"full log     {log_path}")
    env = config.read_env(settings.home)
    running = [
        (label, env[key])
        for label, key, service in FUNCTION_URLS
        if env.get(key) and services.running_pid(settings.home, service)
    ]
    if not running:
        lines.append("functions    not running: `potability functions` starts them")
        return lines
    for label, url in running:
        lines.append(f"{label:<12} {url}")
    from potability.local.function_servers import example_curls

    lines.append("try:")
    lines.extend("  " + curl for curl in example_curls(settings.home))
    return lines
