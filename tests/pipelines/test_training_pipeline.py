"""The compiled pipeline: the fixed parameter interface, caching off, the project image, and
the closest check to Vertex we can run offline - ``aiplatform.PipelineJob`` loading the YAML
with anonymous credentials and our parameters."""

import re
from pathlib import Path

import pytest
import yaml

from pipelines.training_pipeline import PIPELINE_NAME, compile_pipeline, default_parameters

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "europe-west1-docker.pkg.dev/demo-project/potability/potability:test"

INTERFACE = {  # the names and types Terraform's scheduler passes (do not rename)
    "recall_floor": "NUMBER_DOUBLE",
    "test_fraction": "NUMBER_DOUBLE",
    "split_seed": "NUMBER_INTEGER",
    "cv_folds": "NUMBER_INTEGER",
    "grids": "STRING",
    "promotion_false_rate": "NUMBER_DOUBLE",
    "promotion_look_days": "NUMBER_INTEGER",
    "promotion_approval": "STRING",
    "candidate_expiry_days": "NUMBER_DOUBLE",
    "model_name": "STRING",
    "mlflow_tracking_uri": "STRING",
    "mlflow_credentials_secret": "STRING",
    "database": "STRUCT",
    "deploy_target": "STRING",
    "project": "STRING",
    "region": "STRING",
    "endpoint_id": "STRING",
    "serving_image": "STRING",
    "endpoint_machine_type": "STRING",
    "endpoint_min_replicas": "NUMBER_INTEGER",
    "endpoint_max_replicas": "NUMBER_INTEGER",
    "endpoint_cpu_target": "NUMBER_INTEGER",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("yaml") / "training_pipeline.yaml", IMAGE)


@pytest.fixture(scope="module")
def spec(compiled: Path) -> dict:
    return yaml.safe_load(compiled.read_text())


def test_parameters_are_exactly_the_fixed_interface(spec: dict) -> None:
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in params.items()} == INTERFACE
    assert {k: v.get("defaultValue", "") for k, v in params.items()} == default_parameters()
    assert params["database"]["defaultValue"] == {
        "url": "",
        "cloud_sql_instance": "",
        "name": "potability",
        "user": "",
    }


def test_every_component_takes_the_database_as_one_parameter(spec: dict) -> None:
    from components.runtime import DATABASE_KEYS

    for name, component in spec["components"].items():
        inputs = component["inputDefinitions"]["parameters"]
        assert not {"database_url", "cloud_sql_instance", "database_name", "database_user"} & set(
            inputs
        ), name
        assert inputs["database"]["parameterType"] == "STRUCT", name
    tasks = spec["root"]["dag"]["tasks"]
    assert all(
        t["inputs"]["parameters"]["database"] == {"componentInputParameter": "database"}
        for t in tasks.values()
    )
    assert set(default_parameters()["database"]) == set(DATABASE_KEYS)


def test_terraform_schedule_passes_exactly_these_parameters() -> None:
    tf = ROOT / "terraform" / "pipeline.tf"
    block = re.search(r"pipeline_parameters\s*=\s*\{(.*?)\n  \}", tf.read_text(), re.S)
    assert block, "pipeline_parameters block not found in terraform/pipeline.tf"
    names = set(re.findall(r"^    (\w+)\s*=", block.group(1), re.M))  # its own keys only
    assert names == set(INTERFACE)
    database = re.search(r"^    database = \{(.*?)\n    \}", block.group(1), re.S | re.M)
    assert database, "the database parameter is not an object in terraform/pipeline.tf"
    assert set(re.findall(r"^\s*(\w+)\s*=", database.group(1), re.M)) == set(
        default_parameters()["database"]
    )


def test_every_task_runs_the_project_image_with_caching_off(spec: dict) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {
        "export-component",
        "train-component",
        "evaluate-component",
        "promote-component",
        "deploy-component",
        "quality-control-component",
    }
    # KFP writes ``cachingOptions: {}`` for a task with caching off (enableCache: true if on)
    assert all(not t["cachingOptions"].get("enableCache", False) for t in tasks.values())
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    # no pip install at run time: the image already holds the pinned kfp and our code
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())


def test_compiled_yaml_loads_into_a_vertex_pipeline_job_offline(compiled: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    params = {
        **default_parameters(),
        "deploy_target": "vertex",
        "project": "demo-project",
        "region": "europe-west1",
        "endpoint_id": "1234567890",
        "database": {
            "url": "",
            "cloud_sql_instance": "demo-project:europe-west1:potability",
            "name": "potability",
            "user": "pipelines@demo-project.iam",
        },
        "serving_image": IMAGE,
        "mlflow_tracking_uri": "http://10.0.0.5:5000",
        "split_seed": 7,
    }
    job = aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
        template_path=str(compiled),
        parameter_values=params,
        pipeline_root="gs://demo-bucket/pipeline-root",
        project="demo-project",
        location="europe-west1",
        enable_caching=False,
        credentials=AnonymousCredentials(),
    )
    runtime = job._gca_resource.runtime_config
    assert runtime.gcs_output_directory == "gs://demo-bucket/pipeline-root"
    values = dict(runtime.parameter_values.items())
    assert set(values) == set(INTERFACE)
    for key, value in params.items():
        assert values[key] == value, key
    assert job._gca_resource.pipeline_spec["pipelineInfo"]["name"] == "water-potability-training"


def test_unknown_parameters_are_refused_by_the_job(compiled: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    with pytest.raises(ValueError, match="recall_flor"):
        aiplatform.PipelineJob(
            display_name="x",
            template_path=str(compiled),
            parameter_values={"recall_flor": 0.3},
            pipeline_root="gs://b/r",
            project="p",
            location="europe-west1",
            credentials=AnonymousCredentials(),
        )
