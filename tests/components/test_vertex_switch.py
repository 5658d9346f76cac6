"""The operators' switch on the Vertex endpoint (components/vertex.py ``switch_endpoint``,
used by ``potability model rollback|approve`` on GCP): the exact requests the real SDK sends
- deploy with all traffic, predict to check which version answers, undeploy the old only
then - validated against the aiplatform v1 discovery document; and a new version that never
answers sends the traffic back to the old one.

``google.cloud.aiplatform`` runs for real; only its gRPC stubs are replaced (Google is
unreachable from tests), as in test_vertex.py.
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
IMAGE = "europe-west1-docker.pkg.dev/demo/potability/potability@sha256:" + "b" * 64
PROBE = {"ph": 7.0, "Hardness": 200.0}
WHERE = {
    "project": "demo",
    "region": "europe-west1",
    "endpoint_id": "123",
    "staging_bucket": "gs://demo-bucket/pipeline-root",
}


def _body(request: Any, *path_fields: str) -> dict[str, Any]:
    body = json_format.MessageToDict(type(request).pb(request))
    for name in path_fields:
        body.pop(name, None)
    return body


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake gRPC stubs of the model, endpoint and prediction services: an endpoint serving
    v2 (deployed model ``d-2``); MLflow v1 was uploaded before (Vertex model version 1),
    v3 never was. ``answers`` says which version a predict reaches."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform_v1.services.endpoint_service.transports.grpc import (
        EndpointServiceGrpcTransport,
    )
    from google.cloud.aiplatform_v1.services.model_service.transports.grpc import (
        ModelServiceGrpcTransport,
    )
    from google.cloud.aiplatform_v1.services.prediction_service.transports.grpc import (
        PredictionServiceGrpcTransport,
    )
    from google.cloud.aiplatform_v1.types import endpoint as endpoint_t
    from google.cloud.aiplatform_v1.types import (
        endpoint_service,
        machine_resources,
        model_service,
        prediction_service,
    )
    from google.cloud.aiplatform_v1.types import model as model_t
    from google.longrunning import operations_pb2

    state: dict[str, Any] = {"sent": {}, "answers": None, "next": 10}
    resources = machine_resources.DedicatedResources(
        machine_spec=machine_resources.MachineSpec(machine_type="n1-standard-4"),
        min_replica_count=2,
        max_replica_count=5,
    )
    state["deployed"] = [
        endpoint_t.DeployedModel(
            id="d-2",
            model=f"{MODEL}@2",
            display_name="water-potability-v2",
            dedicated_resources=resources,
        )
    ]
    state["traffic"] = {"d-2": 100}

    def model(version: str) -> Any:
        return model_t.Model(
            name=f"{MODEL}@{version}",
            display_name="water-potability",
            version_id=version,
            labels={"mlflow_model_version": version},
            container_spec=model_t.ModelContainerSpec(image_uri=IMAGE),
            supported_deployment_resources_types=[
                model_t.Model.DeploymentResourcesType.DEDICATED_RESOURCES
            ],
        )

    def done(response: Any) -> operations_pb2.Operation:
        packed = any_pb2.Any()
        packed.Pack(type(response).pb(response))
        return operations_pb2.Operation(
            name=f"{PROJECT_PATH}/operations/1", done=True, response=packed
        )

    def stub(name: str, answer: Any) -> property:
        def call(request: Any, timeout: Any = None, metadata: Any = None, **_: Any) -> Any:
            state["sent"].setdefault(name, []).append(request)
            return answer(request)

        return property(lambda self: call)

    def list_models(request: Any) -> Any:
        if 'labels.mlflow_model_version="1"' in request.filter:
            return model_service.ListModelsResponse(models=[model("1")])
        if "labels." in request.filter:
            return model_service.ListModelsResponse(models=[])
        return model_service.ListModelsResponse(models=[model("2")])

    def get_endpoint(_: Any) -> Any:
        return endpoint_t.Endpoint(
            name=ENDPOINT,
            display_name="potability-endpoint",
            deployed_models=list(state["deployed"]),
            traffic_split=dict(state["traffic"]),
        )

    def deploy_model(request: Any) -> Any:
        state["next"] += 1
        new = endpoint_t.DeployedModel(
            id=f"d-{state['next']}",
            model=request.deployed_model.model,
            display_name=request.deployed_model.display_name,
        )
        state["deployed"].append(new)
        state["traffic"] = {
            (new.id if k == "0" else k): v for k, v in request.traffic_split.items()
        }
        return done(endpoint_service.DeployModelResponse(deployed_model=new))

    def undeploy_model(request: Any) -> Any:
        state["deployed"] = [d for d in state["deployed"] if d.id != request.deployed_model_id]
        if request.traffic_split:
            state["traffic"] = dict(request.traffic_split)
        else:
            state["traffic"].pop(request.deployed_model_id, None)
        return done(endpoint_service.UndeployModelResponse())

    def predict(request: Any) -> Any:
        serving = next(d for d in state["deployed"] if state["traffic"].get(d.id) == 100)
        version = state["answers"] or serving.display_name.rsplit("-v", 1)[1]
        raw = prediction_service.PredictResponse.pb()(deployed_model_id=serving.id)
        raw.predictions.add().struct_value.update(
            {"potable": 1, "probability": 0.8, "model_version": version}
        )
        return prediction_service.PredictResponse.wrap(raw)

    patches = {
        (ModelServiceGrpcTransport, "list_models"): list_models,
        (ModelServiceGrpcTransport, "upload_model"): lambda r: done(
            model_service.UploadModelResponse(model=MODEL, model_version_id="3")
        ),
        (ModelServiceGrpcTransport, "get_model"): lambda r: model(
            r.name.rsplit("@", 1)[-1] if "@" in r.name else "3"
        ),
        (EndpointServiceGrpcTransport, "get_endpoint"): get_endpoint,
        (EndpointServiceGrpcTransport, "deploy_model"): deploy_model,
        (EndpointServiceGrpcTransport, "undeploy_model"): undeploy_model,
        (PredictionServiceGrpcTransport, "predict"): predict,
    }
    for (cls, name), answer in patches.items():
        monkeypatch.setattr(cls, name, stub(name, answer))
    for attribute in ("_project", "_location", "_staging_bucket"):
        monkeypatch.setattr(
            initializer.global_config,
            attribute,
            getattr(initializer.global_config, attribute, None),
        )
    monkeypatch.setattr(initializer.global_config, "_credentials", AnonymousCredentials())
    return state


def _switch(version: str, **kwargs: Any) -> str:
    from google.cloud import aiplatform

    return vertex.switch_endpoint(
        aiplatform,
        model_name="water-potability",
        version=version,
        model_dir=lambda: "gs://demo-bucket/mlflow/models/m-3",
        tracking_uri="http://10.0.0.5:5000",
        probe=PROBE,
        sleep=lambda s: None,
        **WHERE,
        **kwargs,
    )


def _validate(method: str, body: dict[str, Any]) -> None:
    gcp_discovery.validate_request(
        "aiplatform", "v1", f"aiplatform.projects.locations.{method}", body
    )


def test_rollback_deploys_the_uploaded_version_moves_traffic_checks_then_undeploys(
    api: Any,
) -> None:
    assert "deployed water-potability-v1" in _switch("1")
    sent = api["sent"]
    assert "upload_model" not in sent  # v1's Vertex model version is reused
    (deploy,) = sent["deploy_model"]
    body = _body(deploy, "endpoint")
    _validate("endpoints.deployModel", body)
    assert body["deployedModel"]["model"] == f"{MODEL}@1"
    assert body["deployedModel"]["displayName"] == "water-potability-v1"
    assert body["trafficSplit"] == {"0": 100}
    resources = body["deployedModel"]["dedicatedResources"]  # as the model it replaces
    assert resources["machineSpec"]["machineType"] == "n1-standard-4"
    assert (resources["minReplicaCount"], resources["maxReplicaCount"]) == (2, 5)
    (predict,) = sent["predict"]
    body = _body(predict, "endpoint")
    _validate("endpoints.predict", body)
    assert body["instances"] == [PROBE]
    (undeploy,) = sent["undeploy_model"]
    body = _body(undeploy, "endpoint")
    _validate("endpoints.undeployModel", body)
    assert body["deployedModelId"] == "d-2"
    assert [d.display_name for d in api["deployed"]] == ["water-potability-v1"]
    # the order: the old one is undeployed only after the new one answered
    assert predict is sent["predict"][0] and len(sent["undeploy_model"]) == 1


def test_approving_a_version_never_uploaded_uploads_it_with_the_serving_image(api: Any) -> None:
    _switch("3")
    (upload,) = api["sent"]["upload_model"]
    body = _body(upload, "parent")
    _validate("models.upload", body)
    assert body["model"]["containerSpec"]["imageUri"] == IMAGE
    assert body["model"]["labels"] == {"mlflow_model_version": "3"}
    assert body["model"]["artifactUri"] == "gs://demo-bucket/mlflow/models/m-3"
    assert [d.display_name for d in api["deployed"]] == ["water-potability-v3"]


def test_a_version_that_never_answers_leaves_the_old_one_serving(api: Any) -> None:
    api["answers"] = "2"  # the endpoint keeps answering with the old version
    with pytest.raises(vertex.SwitchFailed):
        _switch("1", attempts=3)
    assert len(api["sent"]["predict"]) == 3
    (undeploy,) = api["sent"]["undeploy_model"]
    body = _body(undeploy, "endpoint")
    _validate("endpoints.undeployModel", body)
    assert body["deployedModelId"] == "d-11" and body["trafficSplit"] == {"d-2": 100}
    assert [d.display_name for d in api["deployed"]] == ["water-potability-v2"]
    assert api["traffic"] == {"d-2": 100}


def test_repeating_a_finished_switch_only_checks_and_tidies(api: Any) -> None:
    _switch("1")
    api["sent"].clear()
    assert _switch("1").startswith("already deployed")
    assert "deploy_model" not in api["sent"] and "undeploy_model" not in api["sent"]
    assert len(api["sent"]["predict"]) == 1
