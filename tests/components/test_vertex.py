"""The Vertex AI requests the deploy adapter (components/vertex.py) makes, as the real SDK
builds them, checked against Google's API description (aiplatform v1 discovery document).

``google.cloud.aiplatform`` runs for real; only its gRPC transport is replaced (the stubs the
GAPIC clients call: Google is unreachable from tests). Each captured request proto is turned
into the JSON the REST API takes (``MessageToDict``, path parameters removed) and validated:
UploadModel, DeployModel, UndeployModel - unknown fields, types, enums, required fields.
"""

from __future__ import annotations

from typing import Any

import gcp_discovery
import pytest
from google.protobuf import any_pb2, json_format

from components import vertex

PROJECT_PATH = "projects/demo/locations/europe-west1"
ENDPOINT = f"{PROJECT_PATH}/endpoints/123"
MODEL = f"{PROJECT_PATH}/models/9"
TARGET = vertex.VertexTarget(
    project="demo",
    region="europe-west1",
    endpoint_id="123",
    serving_image="europe-west1-docker.pkg.dev/demo/potability/potability@sha256:" + "a" * 64,
    staging_bucket="gs://demo-bucket/pipeline-root",
)


def _body(request: Any, *path_fields: str) -> dict[str, Any]:
    """The REST JSON body of a request proto: camelCase, unset fields omitted, path fields out."""
    body = json_format.MessageToDict(type(request).pb(request))
    for name in path_fields:
        body.pop(name, None)
    return body


@pytest.fixture
def vertex_api(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Fake the gRPC stubs of the model and endpoint services; an endpoint serving v1."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform_v1.services.endpoint_service.transports.grpc import (
        EndpointServiceGrpcTransport,
    )
    from google.cloud.aiplatform_v1.services.model_service.transports.grpc import (
        ModelServiceGrpcTransport,
    )
    from google.cloud.aiplatform_v1.types import endpoint as endpoint_t
    from google.cloud.aiplatform_v1.types import endpoint_service, model_service
    from google.cloud.aiplatform_v1.types import model as model_t
    from google.longrunning import operations_pb2

    sent: dict[str, list[Any]] = {}
    state = {
        "deployed": [
            endpoint_t.DeployedModel(
                id="old-1", model=f"{MODEL}@1", display_name="water-potability-v1"
            )
        ],
        "traffic": {"old-1": 100},
    }

    def done(response: Any) -> operations_pb2.Operation:
        packed = any_pb2.Any()
        packed.Pack(type(response).pb(response))
        return operations_pb2.Operation(
            name=f"{PROJECT_PATH}/operations/1", done=True, response=packed
        )

    def stub(name: str, answer: Any) -> property:
        def call(request: Any, timeout: Any = None, metadata: Any = None, **_: Any) -> Any:
            sent.setdefault(name, []).append(request)
            return answer(request)

        return property(lambda self: call)

    def get_endpoint(_: Any) -> Any:
        return endpoint_t.Endpoint(
            name=ENDPOINT,
            display_name="potability-endpoint",
            deployed_models=list(state["deployed"]),
            traffic_split=dict(state["traffic"]),
        )

    def deploy_model(request: Any) -> Any:
        new = endpoint_t.DeployedModel(
            id="new-2",
            model=request.deployed_model.model,
            display_name=request.deployed_model.display_name,
        )
        state["deployed"].append(new)
        state["traffic"] = {"new-2": 100}
        return done(endpoint_service.DeployModelResponse(deployed_model=new))

    def undeploy_model(request: Any) -> Any:
        state["deployed"] = [d for d in state["deployed"] if d.id != request.deployed_model_id]
        return done(endpoint_service.UndeployModelResponse())

    # What Vertex returns for an uploaded custom-container model: it supports dedicated
    # resources (the SDK sends machine type and replicas only for such models).
    model = model_t.Model(
        name=MODEL,
        display_name="water-potability",
        version_id="2",
        supported_deployment_resources_types=[
            model_t.Model.DeploymentResourcesType.DEDICATED_RESOURCES
        ],
    )
    patches = {
        (ModelServiceGrpcTransport, "list_models"): lambda r: model_service.ListModelsResponse(
            models=[model]
        ),
        (ModelServiceGrpcTransport, "upload_model"): lambda r: done(
            model_service.UploadModelResponse(model=MODEL, model_version_id="2")
        ),
        (ModelServiceGrpcTransport, "get_model"): lambda r: model,
        (EndpointServiceGrpcTransport, "get_endpoint"): get_endpoint,
        (EndpointServiceGrpcTransport, "deploy_model"): deploy_model,
        (EndpointServiceGrpcTransport, "undeploy_model"): undeploy_model,
    }
    for (cls, name), answer in patches.items():
        monkeypatch.setattr(cls, name, stub(name, answer))
    # The adapter's aiplatform.init() sets the SDK's global config: restored after the test.
    for attribute in ("_project", "_location", "_staging_bucket"):
        monkeypatch.setattr(
            initializer.global_config,
            attribute,
            getattr(initializer.global_config, attribute, None),
        )
    monkeypatch.setattr(initializer.global_config, "_credentials", AnonymousCredentials())
    return sent


def test_upload_deploy_undeploy_send_requests_google_accepts(
    vertex_api: dict[str, list[Any]],
) -> None:
    from google.cloud import aiplatform

    action, endpoint = vertex.deploy_to_endpoint(
        aiplatform,
        TARGET,
        "water-potability",
        "2",
        changed=True,
        model_dir=lambda: "gs://demo-bucket/pipeline-root/models/v2",
        tracking_uri="http://10.0.0.5:5000",
    )
    assert (action, endpoint) == ("deployed", ENDPOINT)

    (upload,) = vertex_api["upload_model"]
    assert upload.parent == PROJECT_PATH
    body = _body(upload, "parent")
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.models.upload", body
    )
    assert body["parentModel"] == MODEL
    container = body["model"]["containerSpec"]
    assert container["imageUri"] == TARGET.serving_image
    assert (container["predictRoute"], container["healthRoute"]) == ("/predict", "/health")
    assert container["ports"] == [{"containerPort": 8080}]
    assert body["model"]["artifactUri"] == "gs://demo-bucket/pipeline-root/models/v2"

    (deploy,) = vertex_api["deploy_model"]
    assert deploy.endpoint == ENDPOINT
    body = _body(deploy, "endpoint")
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.endpoints.deployModel", body
    )
    assert body["deployedModel"]["displayName"] == "water-potability-v2"
    assert (
        body["deployedModel"]["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-2"
    )
    assert body["trafficSplit"] == {"0": 100}

    (undeploy,) = vertex_api["undeploy_model"]
    body = _body(undeploy, "endpoint")
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.endpoints.undeployModel", body
    )
    assert body["deployedModelId"] == "old-1"


def test_a_renamed_field_in_a_captured_request_fails(vertex_api: dict[str, list[Any]]) -> None:
    from google.cloud import aiplatform

    vertex.deploy_to_endpoint(
        aiplatform,
        TARGET,
        "water-potability",
        "2",
        changed=True,
        model_dir=lambda: "gs://demo-bucket/m",
        tracking_uri="",
    )
    body = _body(vertex_api["deploy_model"][0], "endpoint")
    body["deployedModel"]["machineType"] = "n1-standard-2"
    with pytest.raises(
        gcp_discovery.RequestInvalid, match="deployedModel.machineType: unknown field"
    ):
        gcp_discovery.validate_request(
            "aiplatform", "v1", "aiplatform.projects.locations.endpoints.deployModel", body
        )
