"""The body Cloud Scheduler POSTs to Vertex AI every day, as Terraform renders it, checked
against Google's description of ``pipelineJobs.create`` (aiplatform v1 discovery document).

Terraform renders the configuration offline (tests/rendered_terraform.py: the schema
stand-ins with a mocked google provider); an extra output exposes the scheduler job's base64
body, which this test decodes and validates - unknown or renamed fields, types, enums,
required fields and the templateUri rule (template registry only, never gs://).
"""

from __future__ import annotations

import base64
import json
import re

import gcp_discovery
import pytest
import rendered_terraform

from pipelines.training_pipeline import default_parameters


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = rendered_terraform.render(
        tmp_path_factory.mktemp("render"),
        {
            "schedule_body": "google_cloud_scheduler_job.training.http_target[0].body",
            "schedule_uri": "google_cloud_scheduler_job.training.http_target[0].uri",
            "maintenance_body": "google_cloud_scheduler_job.maintenance[0].http_target[0].body",
            "maintenance_uri": "google_cloud_scheduler_job.maintenance[0].http_target[0].uri",
        },
    )
    return {
        "body": json.loads(base64.b64decode(out["schedule_body"])),
        "uri": out["schedule_uri"],
        "maintenance_body": json.loads(base64.b64decode(out["maintenance_body"])),
        "maintenance_uri": out["maintenance_uri"],
    }


def test_the_schedule_posts_a_pipeline_job_google_accepts(rendered: dict) -> None:
    body = rendered["body"]
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.pipelineJobs.create", body
    )
    assert body["templateUri"] == (
        "https://europe-west1-kfp.pkg.dev/test-project/"
        "potability-pipelines/water-potability-training/latest"
    )
    # Every runtime parameter is one the compiled pipeline declares.
    values = body["runtimeConfig"]["parameterValues"]
    assert set(values) <= set(default_parameters())
    # the database travels as one STRUCT value, a JSON object with the pipeline's keys
    assert set(values["database"]) == set(default_parameters()["database"])
    assert values["database"]["url"] == ""  # no DSN on GCP: the connector, by instance name
    assert all(
        isinstance(values["database"][k], str) and values["database"][k]
        for k in ("cloud_sql_instance", "name", "user")
    )


def test_the_schedule_calls_the_create_method_google_describes(rendered: dict) -> None:
    create = gcp_discovery.method(
        "aiplatform", "v1", "aiplatform.projects.locations.pipelineJobs.create"
    )
    assert create["httpMethod"] == "POST" and create["path"] == "v1/{+parent}/pipelineJobs"
    assert rendered["uri"] == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/"
        "test-project/locations/europe-west1/pipelineJobs"
    )


def test_a_renamed_field_in_the_rendered_body_fails(rendered: dict) -> None:
    body = dict(rendered["body"])
    body["serviceAccountEmail"] = body.pop("serviceAccount")
    with pytest.raises(gcp_discovery.RequestInvalid, match="serviceAccountEmail: unknown field"):
        gcp_discovery.validate_request(
            "aiplatform", "v1", "aiplatform.projects.locations.pipelineJobs.create", body
        )


def test_the_maintenance_schedule_runs_the_job_as_cloud_run_describes(rendered: dict) -> None:
    """Cloud Scheduler POSTs ``run.projects.locations.jobs.run`` (Cloud Run Admin API v2):
    ``POST v2/{+name}:run`` with a RunJobRequest body (empty: the job as deployed)."""
    run = gcp_discovery.method("run", "v2", "run.projects.locations.jobs.run")
    assert run["httpMethod"] == "POST" and run["path"] == "v2/{+name}:run"
    name = "projects/test-project/locations/europe-west1/jobs/potability-maintenance"
    assert re.fullmatch(run["parameters"]["name"]["pattern"], name)
    root = gcp_discovery.document("run", "v2")["rootUrl"]
    assert rendered["maintenance_uri"] == f"{root}v2/{name}:run"
    gcp_discovery.validate_request(
        "run", "v2", "run.projects.locations.jobs.run", rendered["maintenance_body"]
    )
    with pytest.raises(gcp_discovery.RequestInvalid, match="unknown field"):
        gcp_discovery.validate_request(
            "run", "v2", "run.projects.locations.jobs.run", {"override": {}}
        )
