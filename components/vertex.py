"""Thin adapter to the Vertex AI SDK for deploy: upload, deploy with 100% traffic, undeploy old.

The ``aiplatform`` module is passed in, so tests inject a fake and assert the exact calls;
nothing here is tested against the network (Google Cloud is unreachable from the tests).
"""

from dataclasses import dataclass
from typing import Any, Callable

SERVING_PORT = 8080
HEALTH_ROUTE = "/health"
PREDICT_ROUTE = "/predict"
MACHINE_TYPE = "n1-standard-2"
"""Default machine of an endpoint replica (2 vCPU, 7.5 GB)."""


@dataclass(frozen=True)
class ReplicaScaling:
    """How the endpoint's deployed model scales (pipeline parameters, Terraform variables).

    Vertex AI adds replicas between ``min_replicas`` and ``max_replicas`` to keep CPU use near
    ``cpu_target`` percent (``Endpoint.deploy``'s ``autoscaling_target_cpu_utilization``;
    Vertex's default is 60). Sizing: see terraform/README.md, "What apply costs".
    """

    machine_type: str = MACHINE_TYPE
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_target: int = 60

    def check(self) -> None:
        if not self.machine_type:
            raise ValueError("endpoint machine type must not be empty")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 1 <= endpoint_min_replicas ({self.min_replicas}) <= "
                             f"endpoint_max_replicas ({self.max_replicas})")
        if not 1 <= self.cpu_target <= 100:
            raise ValueError(f"endpoint_cpu_target must be 1..100 percent, got {self.cpu_target}")


@dataclass(frozen=True)
class VertexTarget:
    """Where the champion goes on GCP (all from pipeline parameters)."""

    project: str
    region: str
    endpoint_id: str
    serving_image: str
    staging_bucket: str
    """A ``gs://`` folder the SDK stages the model directory in (the pipeline root)."""
    scaling: ReplicaScaling = ReplicaScaling()

    def check(self) -> None:
        missing = [k for k in ("project", "region", "endpoint_id", "serving_image")
                   if not getattr(self, k)]
        if missing:
            raise ValueError(f"deploy_target 'vertex' needs {', '.join(missing)}")
        if not self.staging_bucket.startswith("gs://"):
            raise ValueError(f"staging bucket must be a gs:// URI, got {self.staging_bucket!r}")
        self.scaling.check()


def deployed_display_name(model_name: str, version: str) -> str:
    """How a deployed champion is named on the endpoint (carries the MLflow version)."""
    return f"{model_name}-v{version}"


def deploy_to_endpoint(
    aiplatform: Any, target: VertexTarget, model_name: str, version: str, changed: bool,
    model_dir: Callable[[], str], tracking_uri: str,
) -> tuple[str, str]:
    """Serve ``version`` on the endpoint; return (``deployed``|``unchanged``, endpoint name).

    Args:
        aiplatform: the ``google.cloud.aiplatform`` module (or a fake).
        target: project, region, endpoint, serving image, staging bucket.
        model_name: registered model name (also the Vertex model's display name).
        version: the champion's MLflow version.
        changed: whether promote changed the champion.
        model_dir: returns the local MLflow model directory to upload (called only if needed).
        tracking_uri: MLflow tracking server (passed to the container for logging only).
    """
    target.check()
    aiplatform.init(project=target.project, location=target.region,
                    staging_bucket=target.staging_bucket)
    endpoint = aiplatform.Endpoint(endpoint_name=target.endpoint_id)
    wanted = deployed_display_name(model_name, version)
    previous = list(endpoint.list_models())
    if not changed and any(d.display_name == wanted for d in previous):
        return "unchanged", endpoint.resource_name
    parents = aiplatform.Model.list(filter=f'display_name="{model_name}"')
    model = aiplatform.Model.upload(
        display_name=model_name,
        parent_model=parents[0].resource_name if parents else None,
        artifact_uri=model_dir(),
        serving_container_image_uri=target.serving_image,
        serving_container_predict_route=PREDICT_ROUTE,
        serving_container_health_route=HEALTH_ROUTE,
        serving_container_ports=[SERVING_PORT],
        serving_container_environment_variables={
            "MODEL_NAME": model_name, "MODEL_VERSION": version,
            "MLFLOW_TRACKING_URI": tracking_uri,
        },
        labels={"mlflow_model_version": version},
        staging_bucket=target.staging_bucket,
        sync=True,
    )
    endpoint.deploy(
        model=model, deployed_model_display_name=wanted, traffic_percentage=100,
        machine_type=target.scaling.machine_type, min_replica_count=target.scaling.min_replicas,
        max_replica_count=target.scaling.max_replicas,
        autoscaling_target_cpu_utilization=target.scaling.cpu_target, sync=True,
    )
    for old in previous:
        endpoint.undeploy(deployed_model_id=old.id, sync=True)
    return "deployed", endpoint.resource_name
