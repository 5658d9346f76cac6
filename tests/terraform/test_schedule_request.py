"""The body Cloud Scheduler POSTs to Vertex AI every day, as Terraform renders it, checked
against Google's description of ``pipelineJobs.create`` (aiplatform v1 discovery document).

Terraform runs offline against the schema stand-ins with a mocked google provider (as
terraform/tests/ does); an extra output in the scratch copy exposes the scheduler job's
base64 body, which this test decodes and validates - unknown or renamed fields, types, enums,
required fields and the templateUri rule (template registry only, never gs://).
"""

from __future__ import annotations

import base64
import json
import re
import shutil

import gcp_discovery
import pytest

from pipelines.training_pipeline import default_parameters

from .conftest import TF_DIR

RENDER_TEST = """
mock_provider "google" {
  override_resource {
    target = google_service_account.sa
    values = { email = "svc@test-project.iam.gserviceaccount.com" }
  }
}
mock_provider "archive" {}

variables {
  project_id              = "test-project"
  region                  = "europe-west1"
  zone                    = "europe-west1-b"
  regulator_group         = "regulator@example.com"
  sensor_service_accounts = ["sensor-a@sensors.iam.gserviceaccount.com"]
  engineers               = ["group:ml-eng@example.com"]
  db_admins               = ["alice@example.com"]
  image_tag               = "v1"
  image_digest            = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  alert_emails            = ["ops@example.com"]
}

run "render" {
  command = apply
}
"""  # noqa: E501 - the sha256 digest above is one HCL string

RENDER_OUTPUT = """
output "zz_schedule_body_base64" {
  value = google_cloud_scheduler_job.training.http_target[0].body
}
output "zz_schedule_uri" {
  value = google_cloud_scheduler_job.training.http_target[0].uri
}
output "zz_maintenance_body_base64" {
  value = google_cloud_scheduler_job.maintenance[0].http_target[0].body
}
output "zz_maintenance_uri" {
  value = google_cloud_scheduler_job.maintenance[0].http_target[0].uri
}
"""


@pytest.fixture(scope="module")
def rendered(
    offline, terraform_bin: str, stand_ins: str, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    src = tmp_path_factory.mktemp("render-src") / "terraform"
    shutil.copytree(
        TF_DIR, src, ignore=shutil.ignore_patterns(".terraform*", ".build", "*.tfstate*")
    )
    for old in (src / "tests").glob("*.tftest.hcl"):
        old.unlink()
    (src / "tests" / "render.tftest.hcl").write_text(RENDER_TEST)
    (src / "zz_render_outputs.tf").write_text(RENDER_OUTPUT)
    tf = offline.OfflineTerraform(tmp_path_factory.mktemp("render"), src)
    try:
        tf.init()
        with offline.DevServers() as servers:
            res = tf.run("test", "-verbose", "-no-color", timeout=600, servers=servers)
    finally:
        tf.close()
    assert res.returncode == 0, res.stdout + res.stderr
    body = re.search(r'^zz_schedule_body_base64 = "([A-Za-z0-9+/=]+)"$', res.stdout, re.M)
    uri = re.search(r'^zz_schedule_uri = "([^"]+)"$', res.stdout, re.M)
    maintenance_body = re.search(
        r'^zz_maintenance_body_base64 = "([A-Za-z0-9+/=]+)"$', res.stdout, re.M
    )
    maintenance_uri = re.search(r'^zz_maintenance_uri = "([^"]+)"$', res.stdout, re.M)
    assert body and uri and maintenance_body and maintenance_uri, res.stdout[-3000:]
    return {
        "body": json.loads(base64.b64decode(body[1])),
        "uri": uri[1],
        "maintenance_body": json.loads(base64.b64decode(maintenance_body[1])),
        "maintenance_uri": maintenance_uri[1],
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
