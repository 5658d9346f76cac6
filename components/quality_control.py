"""Component 6, quality control: measure the served model against the lab samples, daily.

Runs after deploy, so the status page's live precision and drift flags are at most a day old
on GCP too, where nothing else runs :mod:`potability.quality.job` (locally ``potability qc`` runs it
on demand). It reads only the ``water`` tables and writes one ``water.qc_runs`` row with its
metrics in one transaction; the training run is already recorded as succeeded by deploy, so a
failure here fails this task (visible in the pipeline UI) without undoing the new champion.
"""


def quality_control_component(
    run_id: str,
    deploy_summary: str,
    database: dict,
) -> str:
    """Compute live precision per model version and week, and feature drift; store them.

    Args:
        run_id: the pipeline job name (for the log line only).
        deploy_summary: deploy's output; taking it orders this task after deploy.
        database: the pipeline's ``database`` parameter (:func:`components.runtime.step_settings`).
    """
    # KFP ships this function's body alone: every name it uses is imported here.
    from datetime import UTC, datetime

    from components.runtime import step_settings
    from potability import db
    from potability.quality import job as qc_job

    settings = step_settings(database)
    conn = db.connect(settings, timeout=qc_job.SOCKET_TIMEOUT_SECONDS)
    try:
        result = qc_job.run(conn, settings, datetime.now(UTC))
    finally:
        conn.close()
    drifting = [f"{d.feature}={d.status}" for d in result.drift if d.status in ("watch", "drift")]
    flagged = [f"{m.model_version}/{m.period}" for m in result.metrics if m.flagged]
    return (
        f"{run_id}: quality control run {result.run_id} after '{deploy_summary}': "
        f"{result.lab_samples} lab samples, {len(result.matches)} matched, "
        f"below the precision floor: {flagged or 'none'}, drift: {drifting or 'none'}"
    )
