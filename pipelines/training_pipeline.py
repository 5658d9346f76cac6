"""The daily training pipeline (KFP v2): export -> train -> evaluate -> promote -> deploy,
then quality control of the served model against the lab samples.

One definition for both places: compiled to YAML for Vertex AI Pipelines (the Cloud Scheduler
job of ``terraform/pipeline.tf`` starts it with the same parameter names), and run as is by
``kfp.local`` against the local stack. Components run in the project image (``PIPELINE_IMAGE``
at compile time); locally the SubprocessRunner runs them in the current venv.

Every task has caching off: an export must read today's table, never a cached yesterday.
The pipeline job name (``{{$.pipeline_job_name}}``) is the run's id in ``water.pipeline_runs``
and the name of its MLflow parent run.

The parameters are declared once, in the pipeline function's signature
(:func:`default_parameters` reads them from it). The database travels as one ``database``
parameter - a KFP ``dict`` (STRUCT) with the keys of :data:`components.runtime.DATABASE_KEYS` -
through every component that touches it.
"""

import copy
import inspect
from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components import (
    deploy_step,
    evaluate_step,
    export_step,
    promote_step,
    quality_control,
    runtime,
    train_step,
)

PIPELINE_NAME = "water-potability-training"
"""The pipeline's name: its ``pipelineInfo.name``, the display name of the jobs ``submit``
creates, and its package in the template registry (``publish``)."""
YAML_PATH = Path(__file__).resolve().parent / "training_pipeline.yaml"


def build(image: str) -> Any:
    """The pipeline with its components running in ``image``."""
    export_op = runtime.as_component(export_step.export_component, image)
    train_op = runtime.as_component(train_step.train_component, image)
    evaluate_op = runtime.as_component(evaluate_step.evaluate_component, image)
    promote_op = runtime.as_component(promote_step.promote_component, image)
    deploy_op = runtime.as_component(deploy_step.deploy_component, image)
    quality_control_op = runtime.as_component(quality_control.quality_control_component, image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Daily training of the water potability classifier: six "
        "calibrated families and a soft vote, chosen by cross-"
        "validation, promoted over the champion on bootstrap "
        "evidence, deployed.",
    )
    def training_pipeline(  # the parameters: names, types and defaults, declared only here
        recall_floor: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 42,
        cv_folds: int = 5,
        grids: str = "default",
        promotion_false_rate: float = 0.05,
        promotion_look_days: int = 7,
        promotion_approval: str = "auto",
        candidate_expiry_days: float = 7.0,
        model_name: str = "water-potability",
        mlflow_tracking_uri: str = "",
        mlflow_credentials_secret: str = "",
        database: dict = {  # noqa: B006 - KFP compiles the default into the pipeline spec; never mutated
            "url": "",
            "cloud_sql_instance": "",
            "name": "potability",
            "user": "",
        },
        deploy_target: str = "local",
        project: str = "",
        region: str = "",
        endpoint_id: str = "",
        serving_image: str = "",
        endpoint_machine_type: str = "n1-standard-2",
        endpoint_min_replicas: int = 1,
        endpoint_max_replicas: int = 3,
        endpoint_cpu_target: int = 60,
    ) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        mlflow = {
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "mlflow_credentials_secret": mlflow_credentials_secret,
        }
        db = {"database": database}

        exported = export_op(run_id=run_id, **db).set_display_name("export")
        trained = train_op(
            run_id=run_id,
            dataset=exported.outputs["dataset"],
            recall_floor=recall_floor,
            test_fraction=test_fraction,
            split_seed=split_seed,
            cv_folds=cv_folds,
            grids=grids,
            model_name=model_name,
            **mlflow,
            **db,
        ).set_display_name("train")
        evaluated = evaluate_op(
            run_id=run_id,
            test_set=trained.outputs["test_set"],
            candidates=trained.outputs["candidates"],
            parent_run_id=trained.outputs["parent_run_id"],
            recall_floor=recall_floor,
            **mlflow,
            **db,
        ).set_display_name("evaluate")
        promoted = promote_op(
            run_id=run_id,
            scored_candidates=evaluated.outputs["scored_candidates"],
            test_set=trained.outputs["test_set"],
            parent_run_id=trained.outputs["parent_run_id"],
            training_rows=trained.outputs["training_rows"],
            recall_floor=recall_floor,
            split_seed=split_seed,
            test_fraction=test_fraction,
            promotion_false_rate=promotion_false_rate,
            promotion_look_days=promotion_look_days,
            promotion_approval=promotion_approval,
            candidate_expiry_days=candidate_expiry_days,
            model_name=model_name,
            **mlflow,
            **db,
        ).set_display_name("promote")
        deployed = deploy_op(
            run_id=run_id,
            champion_version=promoted.outputs["champion_version"],
            champion_changed=promoted.outputs["champion_changed"],
            deploy_target=deploy_target,
            model_name=model_name,
            project=project,
            region=region,
            endpoint_id=endpoint_id,
            serving_image=serving_image,
            pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
            endpoint_machine_type=endpoint_machine_type,
            endpoint_min_replicas=endpoint_min_replicas,
            endpoint_max_replicas=endpoint_max_replicas,
            endpoint_cpu_target=endpoint_cpu_target,
            **mlflow,
            **db,
        ).set_display_name("deploy")
        checked = quality_control_op(
            run_id=run_id,
            deploy_summary=deployed.output,
            **db,
        ).set_display_name("quality-control")
        for task in (exported, trained, evaluated, promoted, deployed, checked):
            task.set_caching_options(False)
        trained.set_cpu_limit("4").set_memory_limit("8G")

    return training_pipeline


training_pipeline = build(runtime.image())
"""The pipeline in the configured image (``PIPELINE_IMAGE``)."""


def default_parameters() -> dict[str, Any]:
    """The pipeline's parameters and their defaults, read from its signature (the one place
    they are declared): the names Terraform's schedule passes. A fresh copy each call, as the
    ``database`` default is a dict."""
    signature = inspect.signature(training_pipeline.pipeline_func)
    return copy.deepcopy({name: p.default for name, p in signature.parameters.items()})


def compile_pipeline(path: Path = YAML_PATH, image: str | None = None) -> Path:
    """Write the pipeline YAML (the file Vertex and the scheduler run) to ``path``."""
    pipeline = training_pipeline if image is None else build(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(path))
    return path
