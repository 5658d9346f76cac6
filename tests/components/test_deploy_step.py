"""The Vertex AI deploy adapter: the exact SDK calls we would make (fake ``aiplatform``; Google
Cloud is unreachable from tests), and the local deploy's decision to (re)start or not."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components import deploy_step, vertex
from potability.config import Settings

TARGET = vertex.VertexTarget(
    project="demo",
    region="europe-west1",
    endpoint_id="123",
    serving_image="europe-west1-docker.pkg.dev/demo/r/potability:1",
    staging_bucket="gs://demo-bucket/pipeline-root",
)


class FakeAiplatform:
    """Records every call; the endpoint currently serves ``deployed``."""

    def __init__(self, deployed: list[tuple[str, str]], existing_models: list[str]) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        fake = self
        deployed_models = [SimpleNamespace(id=i, display_name=n) for i, n in deployed]

        class Endpoint:
            def __init__(self, endpoint_name: str) -> None:
                fake.calls.append(("Endpoint", endpoint_name, {}))
                self.resource_name = (
                    f"projects/demo/locations/europe-west1/endpoints/{endpoint_name}"
                )

            def list_models(self) -> list[Any]:
                return deployed_models

            def deploy(self, **kwargs: Any) -> None:
                fake.calls.append(("deploy", kwargs.pop("model").resource_name, kwargs))

            def undeploy(self, **kwargs: Any) -> None:
                fake.calls.append(("undeploy", None, kwargs))

        class Model:
            @staticmethod
            def list(filter: str) -> list[Any]:
                fake.calls.append(("Model.list", filter, {}))
                return [SimpleNamespace(resource_name=r) for r in existing_models]

            @staticmethod
            def upload(**kwargs: Any) -> Any:
                fake.calls.append(("Model.upload", None, kwargs))
                return SimpleNamespace(
                    resource_name="projects/demo/locations/europe-west1/models/9@2"
                )

        self.Endpoint = Endpoint
        self.Model = Model

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", None, kwargs))


def test_new_champion_is_uploaded_deployed_with_all_traffic_and_the_old_one_undeployed() -> None:
    fake = FakeAiplatform(
        deployed=[("old-1", "water-potability-v1")],
        existing_models=["projects/demo/locations/europe-west1/models/9"],
    )
    action, name = vertex.deploy_to_endpoint(
        fake,
        TARGET,
        "water-potability",
        "2",
        changed=True,
        model_dir=lambda: "/tmp/model-v2",
        tracking_uri="http://10.0.0.5:5000",
    )
    assert (action, name) == ("deployed", "projects/demo/locations/europe-west1/endpoints/123")
    assert fake.calls == [
        (
            "init",
            None,
            {
                "project": "demo",
                "location": "europe-west1",
                "staging_bucket": "gs://demo-bucket/pipeline-root",
            },
        ),
        ("Endpoint", "123", {}),
        ("Model.list", 'display_name="water-potability"', {}),
        (
            "Model.upload",
            None,
            {
                "display_name": "water-potability",
                "parent_model": "projects/demo/locations/europe-west1/models/9",
                "artifact_uri": "/tmp/model-v2",
                "serving_container_image_uri": "europe-west1-docker.pkg.dev/demo/r/potability:1",
                "serving_container_predict_route": "/predict",
                "serving_container_health_route": "/health",
                "serving_container_ports": [8080],
                "serving_container_environment_variables": {
                    "MODEL_NAME": "water-potability",
                    "MODEL_VERSION": "2",
                    "MLFLOW_TRACKING_URI": "http://10.0.0.5:5000",
                },
                "labels": {"mlflow_model_version": "2"},
                "staging_bucket": "gs://demo-bucket/pipeline-root",
                "sync": True,
            },
        ),
        (
            "deploy",
            "projects/demo/locations/europe-west1/models/9@2",
            {
                "deployed_model_display_name": "water-potability-v2",
                "traffic_percentage": 100,
                "machine_type": "n1-standard-2",
                "min_replica_count": 1,
                "max_replica_count": 3,
                "autoscaling_target_cpu_utilization": 60,
                "sync": True,
            },
        ),
        ("undeploy", None, {"deployed_model_id": "old-1", "sync": True}),
    ]


def test_endpoint_scaling_comes_from_the_target() -> None:
    import dataclasses

    fake = FakeAiplatform(deployed=[], existing_models=[])
    scaled = dataclasses.replace(TARGET, scaling=vertex.ReplicaScaling("n1-highcpu-4", 2, 6, 70))
    vertex.deploy_to_endpoint(
        fake,
        scaled,
        "water-potability",
        "1",
        changed=True,
        model_dir=lambda: "/tmp/m",
        tracking_uri="",
    )
    deploy = next(c for c in fake.calls if c[0] == "deploy")
    assert {
        k: deploy[2][k]
        for k in (
            "machine_type",
            "min_replica_count",
            "max_replica_count",
            "autoscaling_target_cpu_utilization",
        )
    } == {
        "machine_type": "n1-highcpu-4",
        "min_replica_count": 2,
        "max_replica_count": 6,
        "autoscaling_target_cpu_utilization": 70,
    }


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (("n1-standard-2", 0, 1, 60), "need 1 <= endpoint_min_replicas"),
        (("n1-standard-2", 3, 2, 60), "need 1 <= endpoint_min_replicas"),
        (("n1-standard-2", 1, 2, 0), "endpoint_cpu_target must be 1..100 percent"),
        (("", 1, 1, 60), "endpoint machine type must not be empty"),
    ],
)
def test_bad_endpoint_scaling_is_refused_before_any_call(scaling, message: str) -> None:
    import dataclasses

    fake = FakeAiplatform(deployed=[], existing_models=[])
    bad = dataclasses.replace(TARGET, scaling=vertex.ReplicaScaling(*scaling))
    with pytest.raises(ValueError, match=message):
        vertex.deploy_to_endpoint(
            fake,
            bad,
            "water-potability",
            "1",
            changed=True,
            model_dir=lambda: "/tmp/m",
            tracking_uri="",
        )
    assert fake.calls == []


def test_first_upload_creates_the_vertex_model() -> None:
    fake = FakeAiplatform(deployed=[], existing_models=[])
    vertex.deploy_to_endpoint(
        fake,
        TARGET,
        "water-potability",
        "1",
        changed=True,
        model_dir=lambda: "/tmp/m",
        tracking_uri="",
    )
    upload = next(c for c in fake.calls if c[0] == "Model.upload")
    assert upload[2]["parent_model"] is None
    assert not [c for c in fake.calls if c[0] == "undeploy"]


def test_unchanged_champion_already_served_is_left_alone() -> None:
    fake = FakeAiplatform(deployed=[("d1", "water-potability-v3")], existing_models=["m"])
    downloads: list[str] = []
    action, _ = vertex.deploy_to_endpoint(
        fake,
        TARGET,
        "water-potability",
        "3",
        changed=False,
        model_dir=lambda: downloads.append("x") or "/tmp/m",
        tracking_uri="",
    )
    assert action == "unchanged"
    assert [c[0] for c in fake.calls] == ["init", "Endpoint"]
    assert downloads == []


def test_unchanged_champion_missing_from_the_endpoint_is_deployed() -> None:
    fake = FakeAiplatform(deployed=[], existing_models=["m"])
    action, _ = vertex.deploy_to_endpoint(
        fake,
        TARGET,
        "water-potability",
        "3",
        changed=False,
        model_dir=lambda: "/tmp/m",
        tracking_uri="",
    )
    assert action == "deployed"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint_id", "", "needs endpoint_id"),
        ("serving_image", "", "needs serving_image"),
        ("staging_bucket", "/local/root", "gs:// URI"),
    ],
)
def test_incomplete_vertex_target_is_refused_before_any_call(
    field: str, value: str, message: str
) -> None:
    fake = FakeAiplatform(deployed=[], existing_models=[])
    target = vertex.VertexTarget(**{**TARGET.__dict__, field: value})
    with pytest.raises(ValueError, match=message):
        vertex.deploy_to_endpoint(
            fake, target, "water-potability", "1", True, model_dir=lambda: "/tmp/m", tracking_uri=""
        )
    assert fake.calls == []


# --- local deploy decision (the real server start is covered by the end-to-end run) -----------


def _settings(home: Path, url: str) -> Settings:
    from potability import config

    if url:
        config.update_env(home, MODEL_SERVER_URL=url)
    return Settings(
        home=home, mlflow_tracking_uri="http://127.0.0.1:5000", model_name="water-potability"
    )


def test_local_deploy_restarts_the_server_on_a_new_champion(tmp_path: Path) -> None:
    started: list[tuple[Any, ...]] = []
    settings = _settings(tmp_path, "http://127.0.0.1:8080")
    action, url = deploy_step.deploy_local(
        settings,
        "4",
        changed=True,
        probe=lambda u: "3",
        start=lambda *a: started.append(a) or "http://127.0.0.1:8080",
    )
    assert (action, url) == ("started", "http://127.0.0.1:8080")
    assert started == [
        (tmp_path, "models:/water-potability/4", "water-potability", "4", "http://127.0.0.1:5000")
    ]


def test_local_deploy_keeps_a_server_already_serving_the_champion(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "http://127.0.0.1:8080")
    action, _ = deploy_step.deploy_local(
        settings,
        "4",
        changed=False,
        probe=lambda u: "4",
        start=lambda *a: pytest.fail("must not restart"),
    )
    assert action == "unchanged"


def test_local_deploy_starts_the_server_when_it_is_not_running(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "")
    started: list[Any] = []
    action, _ = deploy_step.deploy_local(
        settings,
        "4",
        changed=False,
        probe=lambda u: None,
        start=lambda *a: started.append(a) or "http://x",
    )
    assert action == "started" and len(started) == 1
