"""``submit``: create a Vertex AI ``PipelineJob`` from the compiled YAML (thin adapter).

Project, region, pipeline root and service account come from configuration (``Settings``:
GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION, PIPELINE_ROOT, PIPELINE_SERVICE_ACCOUNT). The
template is the published one (PIPELINE_TEMPLATE_URI, ``https://REGION-kfp.pkg.dev/...``, what
the schedule runs: the SDK downloads it and sets ``templateUri``) or a local YAML, which the SDK
sends inline as ``pipelineSpec`` (no ``templateUri``: Vertex accepts only registry URIs there).
The ``aiplatform`` module is injected so the tests assert the exact job we would create, and
tests/pipelines/test_submit.py checks the request the real SDK builds against Google's
API description.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.runtime import database_parameter
from pipelines.training_pipeline import PIPELINE_NAME, default_parameters
from potability.config import Settings


@dataclass(frozen=True)
class JobSpec:
    """Everything the PipelineJob is built from."""

    template_path: str
    parameter_values: dict[str, Any]
    project: str
    location: str
    pipeline_root: str
    service_account: str
    network_attachment: str = ""
    """PSC interface network attachment (empty: none - the run cannot reach private IPs)."""
    display_name: str = PIPELINE_NAME


def vertex_parameters(
    settings: Settings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The parameters of a job on Vertex AI: the defaults, the coordinates in ``settings``
    (Cloud SQL through the connector - never a local ``DATABASE_URL`` -, MLflow, endpoint),
    then ``overrides`` (``--param``)."""
    return {
        **default_parameters(),
        "deploy_target": "vertex",
        "model_name": settings.model_name,
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "mlflow_credentials_secret": settings.mlflow_credentials_secret,
        "database": database_parameter(settings.with_(database_url="")),
        "project": settings.google_cloud_project,
        "region": settings.google_cloud_region,
        "endpoint_id": settings.vertex_endpoint_id,
        "serving_image": settings.pipeline_image,
        **(overrides or {}),
    }


def job_spec(
    settings: Settings, template_path: Path | str, parameters: Mapping[str, Any]
) -> JobSpec:
    """The job for ``settings``; refuses to build one with missing coordinates."""
    missing = [
        name
        for name, value in (
            ("GOOGLE_CLOUD_PROJECT", settings.google_cloud_project),
            ("GOOGLE_CLOUD_REGION", settings.google_cloud_region),
            ("PIPELINE_ROOT", settings.pipeline_root),
            ("PIPELINE_SERVICE_ACCOUNT", settings.pipeline_service_account),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"submit needs {', '.join(missing)}")
    if str(template_path).startswith("gs://"):
        raise ValueError(
            "a gs:// template cannot be submitted by URI (Vertex accepts only the "
            "template registry): `potability pipeline publish`, then submit its "
            "https://REGION-kfp.pkg.dev/... URI, or pass the local YAML"
        )
    return JobSpec(
        str(template_path),
        dict(parameters),
        settings.google_cloud_project,
        settings.google_cloud_region,
        settings.pipeline_root,
        settings.pipeline_service_account,
        settings.pipeline_network_attachment,
    )


def build_job(aiplatform: Any, spec: JobSpec, credentials: Any = None) -> Any:
    """The ``PipelineJob`` (not yet submitted); caching off, like every task in the YAML."""
    return aiplatform.PipelineJob(
        display_name=spec.display_name,
        template_path=spec.template_path,
        pipeline_root=spec.pipeline_root,
        parameter_values=spec.parameter_values,
        project=spec.project,
        location=spec.location,
        enable_caching=False,
        credentials=credentials,
    )


def submit(aiplatform: Any, spec: JobSpec, credentials: Any = None) -> Any:
    """Create the job on Vertex AI, running as the pipelines service account."""
    job = build_job(aiplatform, spec, credentials)
    if spec.network_attachment:
        # The SDK's submit() has no parameter for it; the PipelineJob resource has the field
        # (aiplatform v1 PipelineJob.pscInterfaceConfig), the same one the schedule sends.
        job._gca_resource.psc_interface_config = {"network_attachment": spec.network_attachment}
    job.submit(service_account=spec.service_account)
    return job
