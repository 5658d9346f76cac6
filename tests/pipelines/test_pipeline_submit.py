"""``submit``: the exact PipelineJob we would create on Vertex AI (fake ``aiplatform``)."""

from pathlib import Path
from typing import Any

import pytest

from pipelines import submit
from pipelines.training_pipeline import DEFAULT_PARAMETERS
from potability.config import Settings

SETTINGS = Settings(google_cloud_project="demo", google_cloud_region="europe-west1",
                    pipeline_root="gs://demo-bucket/pipeline-root",
                    pipeline_service_account="pipelines@demo.iam.gserviceaccount.com")


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
    params = {**DEFAULT_PARAMETERS, "deploy_target": "vertex"}
    spec = submit.job_spec(SETTINGS, Path("/x/training_pipeline.yaml"), params)
    job = submit.submit(fake, spec)
    assert job.resource_name.endswith("/pipelineJobs/j1")
    assert fake.calls == [
        ("PipelineJob", {
            "display_name": "water-potability-training",
            "template_path": "/x/training_pipeline.yaml",
            "pipeline_root": "gs://demo-bucket/pipeline-root", "parameter_values": params,
            "project": "demo", "location": "europe-west1", "enable_caching": False,
            "credentials": None}),
        ("submit", {"service_account": "pipelines@demo.iam.gserviceaccount.com"}),
    ]


def test_submit_refuses_missing_configuration_naming_it() -> None:
    with pytest.raises(ValueError, match="PIPELINE_ROOT, PIPELINE_SERVICE_ACCOUNT"):
        submit.job_spec(SETTINGS.with_(pipeline_root="", pipeline_service_account=""),
                        Path("p.yaml"), {})


def test_submit_settings_come_from_the_environment_names() -> None:
    settings = Settings.from_env({
        "GOOGLE_CLOUD_PROJECT": "demo", "GOOGLE_CLOUD_REGION": "europe-west1",
        "PIPELINE_ROOT": "gs://b/pipeline-root", "PIPELINE_SERVICE_ACCOUNT": "sa@demo",
        "PIPELINE_IMAGE": "img:1"})
    spec = submit.job_spec(settings, Path("p.yaml"), {})
    assert (spec.project, spec.location, spec.pipeline_root, spec.service_account) == (
        "demo", "europe-west1", "gs://b/pipeline-root", "sa@demo")
    assert settings.pipeline_image == "img:1"
