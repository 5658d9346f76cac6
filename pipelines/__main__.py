"""``python -m pipelines compile | run --local | publish | submit`` - the training pipeline's CLI.

compile [--output PATH] [--image IMAGE]   write the pipeline YAML (image: PIPELINE_IMAGE)
run --local [--param k=v ...] [--verbose] run it under kfp.local against the local stack
publish [--host URL] [--image IMAGE]      compile and upload it to the KFP template registry
                                          (host: PIPELINE_TEMPLATE_URI), tags: hash, latest
submit [--template URI|PATH] [--param k=v]
                                          create a Vertex AI PipelineJob (template:
                                          PIPELINE_TEMPLATE_URI, else the local YAML inline)
"""

import argparse
import json
import signal
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
    from pipelines.local_run import PipelineBusy, run_local
    from pipelines.summary import summary_lines
    from potability.config import load_settings

    # `potability down` (SIGTERM to the group) during a run: unwind, so the run is recorded
    # as failed in water.pipeline_runs instead of staying "running".
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = load_settings()
    print(
        f"pipeline: running, {'kfp output follows' if args.verbose else 'one line per step'} "
        f"(state in {settings.home})",
        flush=True,
    )
    try:
        result = run_local(
            settings, _params(args.param), progress=None if args.verbose else sys.stdout
        )
    except PipelineBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(settings, result.run_id, result.log_path):
        print(line)
    return 0


def _publish(args: argparse.Namespace) -> int:
    import tempfile

    from pipelines.publish import publish, registry_client, registry_host
    from pipelines.training_pipeline import compile_pipeline
    from potability.config import load_settings

    settings = load_settings()
    image = args.image or settings.pipeline_image
    if not image:
        print(
            "publish needs the project image (--image or PIPELINE_IMAGE): the components "
            "run in it on Vertex AI",
            file=sys.stderr,
        )
        return 2
    source = args.host or settings.pipeline_template_uri
    if not source:
        print(
            "publish needs the registry (--host or PIPELINE_TEMPLATE_URI, "
            "`terraform output pipeline_template_uri`)",
            file=sys.stderr,
        )
        return 2
    host = registry_host(source)
    with tempfile.TemporaryDirectory() as tmp:
        template = compile_pipeline(Path(tmp) / "training_pipeline.yaml", image=image)
        published = publish(registry_client(host), host, template)
    print(f"published {published.package} {published.version}")
    print(f"  latest: {published.latest_uri}")
    print(f"  this version: {published.pinned_uri}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from google.cloud import aiplatform

    from pipelines.submit import job_spec, submit, vertex_parameters
    from pipelines.training_pipeline import YAML_PATH
    from potability.config import load_settings

    settings = load_settings()
    params = vertex_parameters(settings, _params(args.param))
    template = args.template or settings.pipeline_template_uri or str(YAML_PATH)
    job = submit(aiplatform, job_spec(settings, template, params))
    print(f"submitted {job.resource_name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pipelines.training_pipeline import YAML_PATH

    parser = argparse.ArgumentParser(
        prog="potability pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="write the pipeline YAML")
    c.add_argument("--output", default=str(YAML_PATH))
    c.add_argument("--image", default="", help="component image (default: PIPELINE_IMAGE)")
    c.set_defaults(func=_compile)
    r = sub.add_parser("run", help="run the pipeline")
    r.add_argument("--local", action="store_true", help="under kfp.local, on the local stack")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument(
        "--verbose",
        action="store_true",
        help="print kfp's full output instead of one line per step",
    )
    r.set_defaults(func=_run)
    p = sub.add_parser("publish", help="upload the pipeline to the KFP template registry")
    p.add_argument(
        "--host",
        default="",
        help="https://REGION-kfp.pkg.dev/PROJECT/REPO (default: PIPELINE_TEMPLATE_URI)",
    )
    p.add_argument("--image", default="", help="component image (default: PIPELINE_IMAGE)")
    p.set_defaults(func=_publish)
    s = sub.add_parser("submit", help="create a Vertex AI PipelineJob")
    s.add_argument(
        "--template",
        default="",
        help="registry URL or local YAML (default: "
        "PIPELINE_TEMPLATE_URI, else the compiled YAML, sent inline)",
    )
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
