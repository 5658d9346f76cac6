"""``python -m pipelines compile | run --local | submit`` - the training pipeline's CLI.

    compile [--output PATH] [--image IMAGE]   write the pipeline YAML (image: PIPELINE_IMAGE)
    run --local [--param k=v ...]             run it under kfp.local against the local stack
    submit [--template PATH] [--param k=v]    create a Vertex AI PipelineJob from the YAML
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    """``--param`` values: JSON when it parses (numbers, true/false), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(pairs: list[str]) -> dict[str, Any]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param needs key=value, got {pair!r}")
        result[key.strip()] = _value(value)
    return result


def _compile(args: argparse.Namespace) -> int:
    from pipelines.training_pipeline import compile_pipeline

    path = compile_pipeline(Path(args.output), image=args.image or None)
    print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        print("only `run --local` runs here; use `submit` for Vertex AI", file=sys.stderr)
        return 2
    from components.run_record import read_run
    from pipelines.local_run import run_local
    from potability.config import load_settings

    settings = load_settings()
    result = run_local(settings, _params(args.param))
    row = read_run(settings, result.run_id) or {}
    print(f"run {result.run_id}: {row.get('status')} - {row.get('decision')}; champion "
          f"{row.get('model_name')} v{row.get('champion_version')} ({row.get('champion_family')}, "
          f"held-out precision {row.get('champion_precision')}, recall {row.get('champion_recall')})")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from google.cloud import aiplatform

    from pipelines.submit import job_spec, submit
    from pipelines.training_pipeline import DEFAULT_PARAMETERS
    from potability.config import load_settings

    settings = load_settings()
    params = {
        **DEFAULT_PARAMETERS, "deploy_target": "vertex", "model_name": settings.model_name,
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "cloud_sql_instance": settings.cloud_sql_instance, "database_name": settings.db_name,
        "database_user": settings.db_user, "project": settings.google_cloud_project,
        "region": settings.google_cloud_region, "endpoint_id": settings.vertex_endpoint_id,
        "serving_image": settings.pipeline_image, **_params(args.param),
    }
    job = submit(aiplatform, job_spec(settings, Path(args.template), params))
    print(f"submitted {job.resource_name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pipelines.training_pipeline import YAML_PATH

    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="write the pipeline YAML")
    c.add_argument("--output", default=str(YAML_PATH))
    c.add_argument("--image", default="", help="component image (default: PIPELINE_IMAGE)")
    c.set_defaults(func=_compile)
    r = sub.add_parser("run", help="run the pipeline")
    r.add_argument("--local", action="store_true", help="under kfp.local, on the local stack")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    r.set_defaults(func=_run)
    s = sub.add_parser("submit", help="create a Vertex AI PipelineJob")
    s.add_argument("--template", default=str(YAML_PATH))
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
