"""Thin adapter to the Vertex AI SDK for deploy: upload, deploy with 100% traffic, undeploy old.

The ``aiplatform`` module is passed in, so tests inject a fake and assert the exact calls;
nothing here is tested against the network (Google Cloud is unreachable from the tests).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

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
            raise ValueError(
                f"need 1 <= endpoint_min_replicas ({self.min_replicas}) <= "
                f"endpoint_max_replicas ({self.max_replicas})"
            )
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
        missing = [
            k for k in ("project", "region", "endpoint_id", "serving_image") if not getattr(self, k)
        ]
        if missing:
            raise ValueError(f"deploy_target 'vertex' needs {', '.join(missing)}")
        if not self.staging_bucket.startswith("gs://"):
            raise ValueError(f"staging bucket must be a gs:// URI, got {self.staging_bucket!r}")
        self.scaling.check()


def deployed_display_name(model_name: str, version: str) -> str:
    """How a deployed champion is named on the endpoint (carries the MLflow version)."""
    return f"{model_name}-v{version}"


def deploy_to_endpoint(
    aiplatform: Any,
    target: VertexTarget,
    model_name: str,
    version: str,
    changed: bool,
    model_dir: Callable[[], str],
    tracking_uri: str,
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
    aiplatform.init(
        project=target.project, location=target.region, staging_bucket=target.staging_bucket
    )
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
            "MODEL_NAME": model_name,
            "MODEL_VERSION": version,
            "MLFLOW_TRACKING_URI": tracking_uri,
        },
        labels={"mlflow_model_version": version},
        staging_bucket=target.staging_bucket,
        sync=True,
    )
    endpoint.deploy(
        model=model,
        deployed_model_display_name=wanted,
        traffic_percentage=100,
        machine_type=target.scaling.machine_type,
        min_replica_count=target.scaling.min_replicas,
        max_replica_count=target.scaling.max_replicas,
        autoscaling_target_cpu_utilization=target.scaling.cpu_target,
        sync=True,
    )
    for old in previous:
        endpoint.undeploy(deployed_model_id=old.id, sync=True)
    return "deployed", endpoint.resource_name


# --- operators' switch (issue 22): `potability model rollback|approve` on the endpoint ------


class SwitchFailed(RuntimeError):
    """The new version did not answer; the endpoint serves the old one again."""


def find_model_version(aiplatform: Any, model_name: str, version: str) -> Any | None:
    """The Vertex model version uploaded for MLflow ``version`` (label
    ``mlflow_model_version``), or None if it never was."""
    found = aiplatform.Model.list(
        filter=f'display_name="{model_name}" AND labels.mlflow_model_version="{version}"'
    )
    return found[0] if found else None


def switch_endpoint(
    aiplatform: Any,
    *,
    project: str,
    region: str,
    endpoint_id: str,
    staging_bucket: str,
    model_name: str,
    version: str,
    model_dir: Callable[[], str],
    tracking_uri: str,
    probe: dict[str, Any],
    attempts: int = 5,
    wait_seconds: float = 10.0,
    sleep: Callable[[float], None] | None = None,
) -> str:
    """Serve MLflow ``version`` on the endpoint; return what was done.

    Deploy that version (its Vertex model version if one was uploaded before, else a new
    upload with the serving image and resources of the deployed model it replaces), with
    ``trafficSplit`` moving all traffic to it (Vertex moves traffic only once the new deployed
    model is ready), then ask the endpoint until an answer carries ``version``; only then
    undeploy the others. If it never answers, the traffic goes back to the old deployed model
    (undeploying the new one with ``trafficSplit``) and :class:`SwitchFailed` is raised: a
    failure halfway leaves the old model serving. Safe to repeat: a version already deployed
    with all the traffic is checked and the others undeployed.

    Args:
        aiplatform: the ``google.cloud.aiplatform`` module (or a fake).
        probe: one valid reading, sent to check which version answers.
    """
    import time

    sleep = sleep or time.sleep
    aiplatform.init(project=project, location=region, staging_bucket=staging_bucket)
    endpoint = aiplatform.Endpoint(endpoint_name=endpoint_id)
    wanted = deployed_display_name(model_name, version)
    deployed = list(endpoint.list_models())
    mine = [d for d in deployed if d.display_name == wanted]
    others = [d for d in deployed if d.display_name != wanted]
    traffic = dict(endpoint.traffic_split or {})
    if mine and traffic.get(mine[0].id, 0) == 100:
        new_id, action = mine[0].id, "already deployed"
    else:
        for stale in mine:  # deployed before without the traffic (an interrupted switch)
            endpoint.undeploy(deployed_model_id=stale.id, sync=True)
        template = others[0] if others else None
        model = find_model_version(aiplatform, model_name, version)
        if model is None:
            if template is None:
                raise ValueError(
                    f"nothing deployed on {endpoint_id} to copy the serving "
                    f"image from, and {model_name} v{version} was never uploaded"
                )
            image = aiplatform.Model(model_name=template.model).container_spec.image_uri
            parents = aiplatform.Model.list(filter=f'display_name="{model_name}"')
            model = aiplatform.Model.upload(
                display_name=model_name,
                parent_model=parents[0].resource_name if parents else None,
                artifact_uri=model_dir(),
                serving_container_image_uri=image,
                serving_container_predict_route=PREDICT_ROUTE,
                serving_container_health_route=HEALTH_ROUTE,
                serving_container_ports=[SERVING_PORT],
                serving_container_environment_variables={
                    "MODEL_NAME": model_name,
                    "MODEL_VERSION": version,
                    "MLFLOW_TRACKING_URI": tracking_uri,
                },
                labels={"mlflow_model_version": version},
                staging_bucket=staging_bucket,
                sync=True,
            )
        resources = template.dedicated_resources if template is not None else None
        scaling = (
            ReplicaScaling()
            if resources is None
            else ReplicaScaling(
                resources.machine_spec.machine_type or MACHINE_TYPE,
                resources.min_replica_count or 1,
                resources.max_replica_count or 1,
                next((m.target for m in resources.autoscaling_metric_specs), 60) or 60,
            )
        )
        endpoint.deploy(
            model=model,
            deployed_model_display_name=wanted,
            traffic_split={"0": 100},
            machine_type=scaling.machine_type,
            min_replica_count=scaling.min_replicas,
            max_replica_count=scaling.max_replicas,
            autoscaling_target_cpu_utilization=scaling.cpu_target,
            sync=True,
        )
        new_id = next(d.id for d in endpoint.list_models() if d.display_name == wanted)
        action = "deployed"
    for attempt in range(attempts):
        try:
            answer = endpoint.predict(instances=[probe])
            served = {str(p.get("model_version")) for p in answer.predictions}
        except Exception as exc:  # noqa: BLE001 - not answering yet is what we wait out
            import logging

            logging.getLogger(__name__).warning("v%s does not answer yet: %s", version, exc)
            served = set()
        if served == {str(version)}:
            break
        if attempt + 1 < attempts:
            sleep(wait_seconds)
    else:
        if others:
            endpoint.undeploy(
                deployed_model_id=new_id, traffic_split={others[0].id: 100}, sync=True
            )
        raise SwitchFailed(
            f"{model_name} v{version} did not answer on {endpoint_id} after "
            f"{attempts} tries; the endpoint serves the old version again"
        )
    for old in others:
        endpoint.undeploy(deployed_model_id=old.id, sync=True)
    return f"{action} {wanted} on {endpoint.resource_name}"


def served_on_endpoint(
    aiplatform: Any, *, project: str, region: str, endpoint_id: str, model_name: str
) -> str | None:
    """The MLflow version the endpoint gives all traffic to, from the deployed model's
    display name (None if none does)."""
    aiplatform.init(project=project, location=region)
    endpoint = aiplatform.Endpoint(endpoint_name=endpoint_id)
    traffic = dict(endpoint.traffic_split or {})
    prefix = f"{model_name}-v"
    for d in endpoint.list_models():
        if traffic.get(d.id, 0) == 100 and d.display_name.startswith(prefix):
            return d.display_name[len(prefix) :]
    return None


class EndpointLocation(TypedDict):
    """Which Vertex endpoint: the keywords every endpoint call here takes."""

    project: str
    region: str
    endpoint_id: str


class EndpointServing:
    """The serving side of ``potability model rollback|approve`` on GCP
    (:class:`potability.governance.model_control.Serving`): the Terraform-created endpoint
    (``VERTEX_ENDPOINT_ID``), switched by :func:`switch_endpoint`."""

    def __init__(
        self, settings: Any, aiplatform: Any = None, sleep: Callable[[float], None] | None = None
    ) -> None:
        if aiplatform is None:
            from google.cloud import aiplatform
        self.settings = settings
        self.aiplatform = aiplatform
        self.sleep = sleep

    def _where(self) -> EndpointLocation:
        s = self.settings
        return {
            "project": s.google_cloud_project,
            "region": s.google_cloud_region,
            "endpoint_id": s.vertex_endpoint_id,
        }

    def current(self) -> str | None:
        return served_on_endpoint(
            self.aiplatform, model_name=self.settings.model_name, **self._where()
        )

    def switch(self, version: str) -> str:
        from potability.features import FEATURE_NAMES
        from potability.governance.model_control import LocalServing
        from potability.seed import load_dataset

        s = self.settings
        row = load_dataset()[list(FEATURE_NAMES)].dropna().iloc[0]
        return switch_endpoint(
            self.aiplatform,
            staging_bucket=s.pipeline_root,
            model_name=s.model_name,
            version=version,
            tracking_uri=s.mlflow_tracking_uri,
            model_dir=lambda: LocalServing(s).model_dir(version),
            probe={str(k): float(v) for k, v in row.items()},
            sleep=self.sleep,
            **self._where(),
        )
