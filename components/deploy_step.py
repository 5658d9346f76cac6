"""Component 5, deploy: make the serving side serve the champion, then close the run.

* ``local``: (re)start our model server (:func:`potability.serving.model_server.start_local`) on
  ``models:/<name>/<version>`` - when the champion changed, or when the server is not already
  serving that version (e.g. after ``potability down``/``up``), so ``make run`` always ends
  with the champion served.
* ``vertex``: upload the champion's MLflow model directory to the Vertex AI Model Registry
  with our serving image (a new version of one Vertex model), deploy it to the
  Terraform-created endpoint with 100% traffic, then undeploy the versions it replaced -
  when the champion changed or the endpoint does not serve it yet. See :mod:`components.vertex`.
"""

from collections.abc import Callable
from typing import Any

LOCAL = "local"
VERTEX = "vertex"
DEPLOY_TARGETS = (LOCAL, VERTEX)


def served_version(url: str, timeout: float = 3.0) -> str | None:
    """The model version the local model server at ``url`` reports, or None if unreachable."""
    from potability.serving import model_server

    answer = model_server.health(url, timeout) if url else None
    return str(answer.get("model_version")) if answer else None


def deploy_local(
    settings: Any,
    version: str,
    changed: bool,
    start: Callable[..., str] | None = None,
    probe: Callable[[str], str | None] = served_version,
) -> tuple[str, str]:
    """Serve ``version`` locally; return (action, url) with action ``started``|``unchanged``.

    Args:
        settings: home, MLflow tracking URI, model name, current MODEL_SERVER_URL.
        version: the champion's registered version.
        changed: whether promote changed the champion.
        start: the model server starter
            (default :func:`potability.serving.model_server.start_local`).
        probe: reads the version a running server serves.
    """
    from potability import config

    url = config.read_env(settings.home).get("MODEL_SERVER_URL", "")
    if not changed and url and probe(url) == version:
        return "unchanged", url
    if start is None:
        from potability.serving.model_server import start_local

        start = start_local
    url = start(
        settings.home,
        f"models:/{settings.model_name}/{version}",
        settings.model_name,
        version,
        settings.mlflow_tracking_uri,
    )
    return "started", url


def download_model(tracking_uri: str, model_name: str, version: str) -> str:
    """The registered version's MLflow model directory, downloaded locally (for Vertex upload)."""
    import mlflow.artifacts

    return mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}", tracking_uri=tracking_uri
    )


# --- the KFP component -----------------------------------------------------------------------


def deploy_component(
    run_id: str,
    champion_version: str,
    champion_changed: bool,
    deploy_target: str,
    model_name: str,
    mlflow_tracking_uri: str,
    project: str,
    region: str,
    endpoint_id: str,
    serving_image: str,
    pipeline_root: str,
    database: dict,
    endpoint_machine_type: str = "n1-standard-2",
    endpoint_min_replicas: int = 1,
    endpoint_max_replicas: int = 3,
    endpoint_cpu_target: int = 60,
    mlflow_credentials_secret: str = "",
) -> str:
    """Serve the champion (locally or on the Vertex endpoint); mark the run succeeded.

    The ``endpoint_*`` parameters size the Vertex endpoint
    (:class:`components.vertex.ReplicaScaling`).
    """
    from components.deploy_step import DEPLOY_TARGETS, LOCAL, deploy_local, download_model
    from components.runtime import failure_recorded, step_settings
    from potability.governance import run_record

    settings = step_settings(database, mlflow_tracking_uri, model_name, mlflow_credentials_secret)
    with failure_recorded(settings, run_id, "deploy"):
        if deploy_target not in DEPLOY_TARGETS:
            raise ValueError(
                f"deploy_target must be one of {DEPLOY_TARGETS}, got {deploy_target!r}"
            )
        if not champion_version:  # the first challenger is held back or awaits approval
            run_record.finish_run(settings, run_id)
            return f"nothing to serve yet: no {model_name} champion (held or awaiting approval)"
        if deploy_target == LOCAL:
            action, where = deploy_local(settings, champion_version, champion_changed)
        else:
            from google.cloud import aiplatform

            from components.vertex import ReplicaScaling, VertexTarget, deploy_to_endpoint

            target = VertexTarget(
                project=project,
                region=region,
                endpoint_id=endpoint_id,
                serving_image=serving_image,
                staging_bucket=pipeline_root,
                scaling=ReplicaScaling(
                    endpoint_machine_type,
                    endpoint_min_replicas,
                    endpoint_max_replicas,
                    endpoint_cpu_target,
                ),
            )
            action, where = deploy_to_endpoint(
                aiplatform,
                target,
                model_name,
                champion_version,
                champion_changed,
                model_dir=lambda: download_model(
                    settings.mlflow_tracking_uri, model_name, champion_version
                ),
                tracking_uri=settings.mlflow_tracking_uri,
            )
        run_record.finish_run(settings, run_id)
    return f"{action} {model_name} v{champion_version} at {where}"
