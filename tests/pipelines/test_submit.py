"""``submit``: the exact PipelineJob we would create on Vertex AI (fake ``aiplatform``)."""

from pathlib import Path
from typing import Any

import pytest

from pipelines import submit
from pipelines.training_pipeline import default_parameters
from potability.config import Settings

SETTINGS = Settings(
    google_cloud_project="demo",
    google_cloud_region="europe-west1",
    pipeline_root="gs://demo-bucket/pipeline-root",
    pipeline_service_account="pipelines@demo.iam.gserviceaccount.com",
)


class FakeAiplatform:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class PipelineJob:
            resource_name = "projects/demo/locations/europe-west1/pipelineJobs/j1"

            def __init__(self, **kwargs: Any) -> None:
                fake.calls.append(("PipelineJob", kwargs))

            def submit(self, **kwargs: Any) -> None:
                fake.calls.append(("submit", kwargs))

        self.PipelineJob = PipelineJob


def test_submit_creates_the_job_from_configuration_and_runs_it_as_the_pipelines_sa() -> None:
    fake = FakeAiplatform()
    params = {**default_parameters(), "deploy_target": "vertex"}
    spec = submit.job_spec(SETTINGS, Path("/x/training_pipeline.yaml"), params)
    job = submit.submit(fake, spec)
    assert job.resource_name.endswith("/pipelineJobs/j1")
    assert fake.calls == [
        (
            "PipelineJob",
            {
                "display_name": "water-potability-training",
                "template_path": "/x/training_pipeline.yaml",
                "pipeline_root": "gs://demo-bucket/pipeline-root",
                "parameter_values": params,
                "project": "demo",
                "location": "europe-west1",
                "enable_caching": False,
                "credentials": None,
            },
        ),
        ("submit", {"service_account": "pipelines@demo.iam.gserviceaccount.com"}),
    ]


def test_submitted_parameters_name_cloud_sql_never_a_local_dsn() -> None:
    settings = SETTINGS.with_(
        database_url="postgresql://me@/potability?host=/tmp/pg",
        cloud_sql_instance="demo:europe-west1:potability",
        db_name="potability",
        db_user="pipelines@demo.iam",
        model_name="wp",
        vertex_endpoint_id="42",
    )
    params = submit.vertex_parameters(settings, {"grids": "quick"})
    assert set(params) == set(default_parameters())
    assert params["database"] == {
        "url": "",
        "cloud_sql_instance": "demo:europe-west1:potability",
        "name": "potability",
        "user": "pipelines@demo.iam",
    }
    assert (
        params["deploy_target"],
        params["model_name"],
        params["endpoint_id"],
        params["grids"],
    ) == ("vertex", "wp", "42", "quick")


def test_submit_refuses_missing_configuration_naming_it() -> None:
    with pytest.raises(ValueError, match="PIPELINE_ROOT, PIPELINE_SERVICE_ACCOUNT"):
        submit.job_spec(
            SETTINGS.with_(pipeline_root="", pipeline_service_account=""), Path("p.yaml"), {}
        )


def test_submit_settings_come_from_the_environment_names() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "demo",
            "GOOGLE_CLOUD_REGION": "europe-west1",
            "PIPELINE_ROOT": "gs://b/pipeline-root",
            "PIPELINE_SERVICE_ACCOUNT": "sa@demo",
            "PIPELINE_IMAGE": "img:1",
        }
    )
    spec = submit.job_spec(settings, Path("p.yaml"), {})
    assert (spec.project, spec.location, spec.pipeline_root, spec.service_account) == (
        "demo",
        "europe-west1",
        "gs://b/pipeline-root",
        "sa@demo",
    )
    assert settings.pipeline_image == "img:1"


# --- the request the real Vertex AI SDK builds, checked against Google's API description -----

import gcp_discovery  # noqa: E402

from pipelines.training_pipeline import compile_pipeline  # noqa: E402

TEMPLATE_URI = (
    "https://europe-west1-kfp.pkg.dev/demo/potability-pipelines/water-potability-training/latest"
)


def _created_job(monkeypatch: pytest.MonkeyPatch, template: str, yaml_file: Path) -> dict[str, Any]:
    """Run ``submit`` with the real ``google.cloud.aiplatform``; Google's side is faked where
    the SDK would call it: the template download, the bucket check and ``create_pipeline_job``.
    Returns the PipelineJob as the REST API receives it (proto -> JSON, camelCase)."""
    import yaml
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform import pipeline_jobs
    from google.cloud.aiplatform.utils import gcs_utils, yaml_utils
    from google.protobuf import json_format

    downloads: list[str] = []

    def download(uri: str, credentials: Any = None) -> dict[str, Any]:
        downloads.append(uri)
        return yaml.safe_load(yaml_file.read_text())

    monkeypatch.setattr(yaml_utils, "_load_yaml_from_https_uri", download)
    monkeypatch.setattr(
        gcs_utils,
        "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda **kwargs: None,
    )
    created: list[dict[str, Any]] = []

    class FakeApi:
        def create_pipeline_job(
            self, parent: str, pipeline_job: Any, pipeline_job_id: str, timeout: Any = None
        ) -> Any:
            # What the REST transport sends: proto -> JSON without unset (default) fields.
            body = json_format.MessageToDict(type(pipeline_job).pb(pipeline_job))
            created.append({"parent": parent, "id": pipeline_job_id, "body": body})
            pipeline_job.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
            return pipeline_job

    real_build = submit.build_job

    def build(aip: Any, spec: submit.JobSpec, credentials: Any = None) -> Any:
        job = real_build(aip, spec, AnonymousCredentials())
        job.api_client = FakeApi()
        return job

    monkeypatch.setattr(submit, "build_job", build)
    settings = SETTINGS.with_(
        pipeline_network_attachment="potability-pipelines",
        cloud_sql_instance="demo:europe-west1:potability",
        db_user="pipelines@demo.iam",
        vertex_endpoint_id="123",
    )
    params = submit.vertex_parameters(settings)
    submit.submit(aiplatform, submit.job_spec(settings, template, params))
    assert created and created[0]["parent"] == "projects/demo/locations/europe-west1"
    assert pipeline_jobs._VALID_NAME_PATTERN.match(created[0]["id"])
    if template.startswith("https://"):
        assert downloads == [template]
    return created[0]["body"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(
        tmp_path_factory.mktemp("c") / "training_pipeline.yaml",
        image="europe-west1-docker.pkg.dev/demo/potability/potability:1",
    )


def test_submit_by_registry_uri_sends_a_pipeline_job_google_accepts(
    monkeypatch: pytest.MonkeyPatch, compiled: Path
) -> None:
    body = _created_job(monkeypatch, TEMPLATE_URI, compiled)
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.pipelineJobs.create", body
    )
    assert body["templateUri"] == TEMPLATE_URI
    assert body["serviceAccount"] == "pipelines@demo.iam.gserviceaccount.com"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://demo-bucket/pipeline-root"
    assert body["runtimeConfig"]["parameterValues"]["split_seed"] == 42
    assert body["runtimeConfig"]["parameterValues"]["database"] == {
        "url": "",
        "cloud_sql_instance": "demo:europe-west1:potability",
        "name": "potability",
        "user": "pipelines@demo.iam",
    }  # one STRUCT value: a JSON object in the request
    assert body["displayName"] == "water-potability-training"
    assert body["pscInterfaceConfig"] == {"networkAttachment": "potability-pipelines"}


def test_submit_of_a_local_yaml_sends_the_spec_inline_without_template_uri(
    monkeypatch: pytest.MonkeyPatch, compiled: Path
) -> None:
    body = _created_job(monkeypatch, str(compiled), compiled)
    gcp_discovery.validate_request(
        "aiplatform", "v1", "aiplatform.projects.locations.pipelineJobs.create", body
    )
    assert "templateUri" not in body
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "water-potability-training"


def test_submit_refuses_a_gs_template() -> None:
    with pytest.raises(ValueError, match="template registry"):
        submit.job_spec(SETTINGS, "gs://demo-bucket/pipelines/training_pipeline.yaml", {})
