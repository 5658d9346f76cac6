"""The discovery-document validator (tests/gcp_discovery.py) rejects what Google would: each
kind of departure on a body that is otherwise valid, so a renamed field cannot pass."""

from __future__ import annotations

import copy
from typing import Any

import gcp_discovery
import pytest

VALID_JOB: dict[str, Any] = {
    "displayName": "potability-training",
    "templateUri": "https://europe-west1-kfp.pkg.dev/p/potability-pipelines/water-potability-training/latest",
    "serviceAccount": "pipelines@p.iam.gserviceaccount.com",
    "labels": {"app": "potability"},
    "runtimeConfig": {
        "gcsOutputDirectory": "gs://b/pipeline-root",
        "parameterValues": {"split_seed": 42, "grids": "default"},
    },
    "pscInterfaceConfig": {"networkAttachment": "potability-pipelines"},
}
CREATE = "aiplatform.projects.locations.pipelineJobs.create"


def _job(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(VALID_JOB)
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


def _errors(api: str, version: str, schema: str, body: Any) -> list[str]:
    with pytest.raises(gcp_discovery.RequestInvalid) as err:
        gcp_discovery.validate(api, version, schema, body)
    return err.value.errors


def test_a_valid_pipeline_job_passes() -> None:
    gcp_discovery.validate_request("aiplatform", "v1", CREATE, VALID_JOB)


def test_a_renamed_field_is_refused() -> None:
    body = _job(templateUri=None)
    body["templateURI"] = VALID_JOB["templateUri"]
    errors = _errors("aiplatform", "v1", "GoogleCloudAiplatformV1PipelineJob", body)
    assert errors == [
        "templateURI: unknown field of GoogleCloudAiplatformV1PipelineJob "
        f"(known: {errors[0].split('(known: ')[1]}"
    ]
    nested = _job(runtimeConfig={"gcsOutputDir": "gs://b/x"})
    assert _errors("aiplatform", "v1", "GoogleCloudAiplatformV1PipelineJob", nested)[0].startswith(
        "runtimeConfig.gcsOutputDir: unknown field of "
        "GoogleCloudAiplatformV1PipelineJobRuntimeConfig"
    )


def test_a_gs_template_uri_is_refused_citing_googles_rule() -> None:
    errors = _errors(
        "aiplatform",
        "v1",
        "GoogleCloudAiplatformV1PipelineJob",
        _job(templateUri="gs://b/pipelines/training_pipeline.yaml"),
    )
    assert len(errors) == 1 and "Vertex Template Registry" in errors[0]
    assert errors[0].startswith("templateUri: templateUri must come from")


def test_the_prose_rule_is_still_in_googles_description() -> None:
    doc = gcp_discovery.document("aiplatform", "v1")
    description = doc["schemas"]["GoogleCloudAiplatformV1PipelineJob"]["properties"]["templateUri"][
        "description"
    ]
    assert "only uri from Vertex Template Registry & Gallery is supported" in description


def test_a_wrong_enum_is_refused() -> None:
    errors = _errors(
        "aiplatform",
        "v1",
        "GoogleCloudAiplatformV1PipelineJobRuntimeConfig",
        {"gcsOutputDirectory": "gs://b", "failurePolicy": "FAIL_SOMETIMES"},
    )
    assert errors[0].startswith("failurePolicy: 'FAIL_SOMETIMES' is not one of [")
    gcp_discovery.validate(
        "aiplatform",
        "v1",
        "GoogleCloudAiplatformV1PipelineJobRuntimeConfig",
        {"gcsOutputDirectory": "gs://b", "failurePolicy": "PIPELINE_FAILURE_POLICY_FAIL_FAST"},
    )


def test_a_missing_required_field_is_refused() -> None:
    # GoogleCloudAiplatformV1PipelineJobRuntimeConfig.gcsOutputDirectory: "Required. ..."
    errors = _errors(
        "aiplatform",
        "v1",
        "GoogleCloudAiplatformV1PipelineJob",
        _job(runtimeConfig={"parameterValues": {}}),
    )
    assert errors == [
        "runtimeConfig.gcsOutputDirectory: required by "
        'GoogleCloudAiplatformV1PipelineJobRuntimeConfig ("Required.") but missing'
    ]
    errors = _errors("aiplatform", "v1", "GoogleCloudAiplatformV1DeployModelRequest", {})
    assert errors == [
        "deployedModel: required by GoogleCloudAiplatformV1DeployModelRequest "
        '("Required.") but missing'
    ]


@pytest.mark.parametrize(
    ("schema", "body", "message"),
    [
        (
            "GoogleCloudAiplatformV1PipelineJob",
            _job(displayName=3),
            "displayName: expected a string",
        ),
        ("GoogleCloudAiplatformV1PipelineJob", _job(labels=["a"]), "labels: expected an object"),
        (
            "GoogleCloudAiplatformV1PipelineJob",
            _job(labels={"a": 1}),
            "labels['a']: expected a string",
        ),
        (
            "GoogleCloudAiplatformV1PipelineJob",
            _job(reservedIpRanges="r"),
            "reservedIpRanges: expected an array",
        ),
        (
            "GoogleCloudAiplatformV1PipelineJob",
            _job(preflightValidations="yes"),
            "preflightValidations: expected a boolean",
        ),
        (
            "GoogleCloudAiplatformV1PipelineJob",
            _job(state="PIPELINE_STATE_RUNNING"),
            "state: output-only field",
        ),
        # int64 travels as a decimal string in JSON; int32 as a number
        (
            "GoogleCloudAiplatformV1DedicatedResources",
            {"minReplicaCount": "1", "machineSpec": {"machineType": "n1-standard-2"}},
            "minReplicaCount: expected an integer (int32)",
        ),
        (
            "GoogleCloudAiplatformV1DeployedModel",
            {
                "model": "m",
                "dedicatedResources": {
                    "minReplicaCount": 1,
                    "machineSpec": {"machineType": "n1-standard-2"},
                },
                "displayName": 7,
            },
            "displayName: expected a string",
        ),
    ],
)
def test_wrong_types_are_refused(schema: str, body: Any, message: str) -> None:
    errors = _errors("aiplatform", "v1", schema, body)
    assert any(e.startswith(message) for e in errors), errors


def test_int64_travels_as_a_decimal_string() -> None:
    doc = gcp_discovery.document("aiplatform", "v1")
    errors: list[str] = []
    gcp_discovery._check(doc, {"type": "string", "format": "int64"}, "12", "x", errors)
    gcp_discovery._check(doc, {"type": "string", "format": "int64"}, 12, "y", errors)
    gcp_discovery._check(doc, {"type": "string", "format": "int64"}, "1.5", "z", errors)
    assert [e.split(":")[0] for e in errors] == ["y", "z"]


def test_unknown_method_or_schema_is_an_error_not_a_pass() -> None:
    with pytest.raises(KeyError):
        gcp_discovery.validate_request("aiplatform", "v1", "aiplatform.nothing.create", {})
    with pytest.raises(KeyError):
        gcp_discovery.validate("aiplatform", "v1", "NoSuchSchema", {})
