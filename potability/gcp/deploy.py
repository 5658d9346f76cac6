"""``make gcp-deploy``: everything after ``terraform apply``, one command.

    potability gcp deploy [--dry-run] [--tag TAG] [--auto-approve] [--pipeline] [--no-smoke]

1. read ``terraform output -json`` (project, region, repositories, migration job, URLs);
2. build and push the project image with Cloud Build (``gcloud builds submit`` with
   cloudbuild.yaml, as the dedicated build account Terraform creates - not the project's default
   build account, which on new projects is the Compute Engine default account, often roleless);
3. look up the pushed image's digest (``gcloud artifacts docker images describe``);
4. wait until Cloud Monitoring knows the log-based metrics (their alert policies come with the
   next apply), make sure Vertex AI's service agent exists
   (``gcloud beta services identity create``; Google creates it lazily, the GA provider cannot)
   and ``terraform apply -var image_digest=...``:
   the agent's grant on the network attachment, the functions' serving image, the Vertex
   serving image and the migration job then run that exact build (a tag can move, a digest
   cannot; the migration job exists once the digest is known, terraform/migrate.tf);
5. compile the pipeline for that image and publish it to the KFP template registry
   (``potability pipeline publish``), which moves the tag ``latest`` the schedule runs;
6. run the migration job and wait for it (``gcloud run jobs execute NAME --wait``):
   ``potability migrate`` - migrations, pgAudit, roles and grants;
7. print each function's URL and run the smoke test (:mod:`potability.gcp.smoke`): predict,
   add_sample and the status page called as a dedicated smoke-test account through Google's
   front end, their rows read back; ``--pipeline`` also runs the pipeline once. A failed check
   fails the deploy.

``--dry-run`` (``make gcp-deploy DRY_RUN=1``) prints every command and runs only the read-only ones
(``terraform output``, ``git rev-parse``); values a skipped step would produce are shown as
``<...>``. Each command is printed before it runs, so a failure shows exactly where it stopped;
re-running is safe (every step is idempotent).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = "terraform"
IMAGE_NAME = "potability"


class DeployError(RuntimeError):
    """A step failed or a value it needs is missing; the message says which and what to do."""


@dataclass
class Runner:
    """Runs (or, dry, only prints) commands; ``read_only`` ones run even when dry."""

    dry_run: bool = False
    out: Callable[[str], None] = print
    cwd: Path = ROOT
    env: dict[str, str] | None = None
    executed: list[list[str]] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        capture: bool = False,
        read_only: bool = False,
        placeholder: str = "",
    ) -> str:
        argv = [str(a) for a in argv]
        self.out(("(dry run) " if self.dry_run and not read_only else "") + "+ " + shlex.join(argv))
        if self.dry_run and not read_only:
            return placeholder
        self.executed.append(argv)
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                env=self.env,
                text=True,
                check=False,
                stdout=subprocess.PIPE if capture else None,
            )
        except FileNotFoundError as exc:
            raise DeployError(f"{argv[0]} is not installed or not on PATH") from exc
        if done.returncode != 0:
            raise DeployError(
                f"`{shlex.join(argv)}` failed (exit {done.returncode}); fix the "
                "cause and run `make gcp-deploy` again (every step is idempotent)"
            )
        return (done.stdout or "").strip() if capture else ""


def terraform_outputs(run: Runner) -> dict[str, object]:
    text = run(
        ["terraform", f"-chdir={TERRAFORM_DIR}", "output", "-json"], capture=True, read_only=True
    )
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise DeployError(
            "`terraform output -json` did not print JSON: has `terraform apply` run in terraform/?"
        ) from exc
    return {name: item.get("value") for name, item in raw.items()}


def _need(outputs: dict[str, object], *names: str) -> list[object]:
    missing = [n for n in names if outputs.get(n) in (None, "", {})]
    if missing:
        raise DeployError(
            f"terraform output lacks {', '.join(missing)}: run `terraform apply` "
            "in terraform/ first (with this checkout's configuration)"
        )
    return [outputs[n] for n in names]


MONITORING_API = "https://monitoring.googleapis.com/v3/"


def metric_descriptor_url(project: str, metric_type: str) -> str:
    """Monitoring's ``projects.metricDescriptors.get`` (monitoring v3 discovery document:
    ``v3/{+name}``, name ``projects/P/metricDescriptors/TYPE``, slashes kept)."""
    return f"{MONITORING_API}projects/{project}/metricDescriptors/{metric_type}"


def wait_for_metrics(
    project: str,
    metric_types: Sequence[str],
    session: Any = None,
    timeout: float = 1200,
    interval: float = 15,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: Callable[[str], None] = print,
) -> None:
    """Return once Cloud Monitoring knows every log-based metric in ``metric_types``.

    Monitoring learns a log-based metric minutes after Logging creates it; an alert policy on
    it created before then is refused (404 "Cannot find metric(s)", a known provider issue),
    so the policies are created by the apply after this wait (terraform/monitoring.tf).
    """
    if session is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/monitoring.read"]
        )
        session = AuthorizedSession(credentials)
    pending = list(metric_types)
    deadline = clock() + timeout
    while True:
        still = []
        for metric_type in pending:
            answer = session.get(metric_descriptor_url(project, metric_type), timeout=30)
            if answer.status_code == 404:
                still.append(metric_type)
            elif answer.status_code != 200:
                raise DeployError(
                    f"Cloud Monitoring answered {answer.status_code} for "
                    f"{metric_type}: {answer.text[:300]}"
                )
        pending = still
        if not pending:
            return
        if clock() >= deadline:
            raise DeployError(
                f"Cloud Monitoring does not know {', '.join(pending)} after "
                f"{timeout:.0f} s; run `make gcp-deploy` again later"
            )
        out(f"waiting for Cloud Monitoring to know {len(pending)} log-based metric(s)")
        sleep(interval)


def source_tag(run: Runner) -> str:
    """The image tag: the commit being deployed."""
    return run(["git", "rev-parse", "--short=12", "HEAD"], capture=True, read_only=True)


def deploy(
    run: Runner,
    tag: str = "",
    auto_approve: bool = False,
    python: str = sys.executable,
    monitoring_session: Any = None,
    smoke: bool = True,
    pipeline: bool = False,
    http: Any = None,
) -> dict[str, str]:
    """The whole path; returns the function URLs (``monitoring_session``: an authorized HTTP
    session for Cloud Monitoring, ``http``: the smoke test's session; tests inject both).
    ``pipeline``: the smoke test also runs the pipeline once and waits for its outcome."""
    out = run.out
    outputs = terraform_outputs(run)
    project, region, repository, template_uri, build_account, staging = _need(
        outputs,
        "project_id",
        "region",
        "image_repository",
        "pipeline_template_uri",
        "image_build_service_account",
        "build_source_staging_dir",
    )
    tag = tag or source_tag(run)
    image = f"{repository}/{IMAGE_NAME}:{tag}"

    out(f"\n== 1/5 build {image} with Cloud Build")
    run(
        [
            "gcloud",
            "builds",
            "submit",
            f"--project={project}",
            f"--region={region}",
            "--config=cloudbuild.yaml",
            f"--substitutions=_IMAGE={image}",
            f"--service-account={build_account}",
            f"--gcs-source-staging-dir={staging}",
            ".",
        ]
    )
    digest = run(
        [
            "gcloud",
            "artifacts",
            "docker",
            "images",
            "describe",
            image,
            f"--project={project}",
            "--format=value(image_summary.digest)",
        ],
        capture=True,
        placeholder="<digest of the pushed image>",
    )
    if not run.dry_run and not digest.startswith("sha256:"):
        raise DeployError(f"no digest for {image} (got {digest!r})")
    pinned = f"{repository}/{IMAGE_NAME}@{digest}"

    out(f"\n== 2/5 pin {pinned} (functions, Vertex serving, migration job, Vertex AI's agent)")
    # The alert policies on log-based metrics are created by this apply (monitoring.tf).
    listed = outputs.get("alert_metric_types")  # a JSON list, or absent before the apply
    metric_types = [str(t) for t in listed] if isinstance(listed, list) else []
    if run.dry_run:
        out(
            f"(dry run) would wait until Cloud Monitoring knows {len(metric_types)} log-based "
            "metric(s) (monitoring v3 metricDescriptors.get)"
        )
    else:
        wait_for_metrics(str(project), metric_types, monitoring_session, out=out)
    # terraform/service_agents.tf grants the agent on the network attachment in this apply.
    run(
        [
            "gcloud",
            "beta",
            "services",
            "identity",
            "create",
            "--service=aiplatform.googleapis.com",
            f"--project={project}",
        ]
    )
    run(
        [
            "terraform",
            f"-chdir={TERRAFORM_DIR}",
            "apply",
            "-input=false",
            f"-var=image_digest={digest}",
            *(["-auto-approve"] if auto_approve else []),
        ]
    )
    if not run.dry_run:
        outputs = terraform_outputs(run)

    out("\n== 3/5 publish the pipeline to the template registry (the schedule runs `latest`)")
    potability = [python, "-m", "potability.cli"]  # the command line, in this environment
    run([*potability, "pipeline", "publish", f"--host={template_uri}", f"--image={pinned}"])

    out("\n== 4/5 migrate the database (Cloud Run job: potability migrate)")
    job = outputs.get("migration_job") or ("<migration_job output>" if run.dry_run else "")
    if not job:
        raise DeployError(
            "terraform output migration_job is empty: the migration job is "
            "created by `terraform apply -var image_digest=...` (step 2)"
        )
    run(
        [
            "gcloud",
            "run",
            "jobs",
            "execute",
            str(job),
            f"--project={project}",
            f"--region={region}",
            "--wait",
        ]
    )

    out("\n== 5/5 functions, and the smoke test (potability/gcp/smoke.py)")
    by_name = outputs.get("function_urls")  # a JSON object, or absent
    urls = {str(k): str(v) for k, v in by_name.items()} if isinstance(by_name, dict) else {}
    for name, url in sorted(urls.items()):
        out(f"{name:12} {url}")
    if smoke:
        from potability.gcp import smoke as smoke_test  # it uses this module's Runner

        checks = smoke_test.run_smoke(run, pipeline=pipeline, http=http, outputs=outputs)
        failed = [c.name for c in checks if not c.ok]
        if failed:
            raise DeployError(
                f"smoke test failed: {', '.join(failed)} (see the FAIL lines above); "
                "re-run it alone with `potability gcp smoke`"
            )
    for name, who in (("predict", "a sensor account"), ("samples", "the regulator group")):
        if name in urls:
            token = (
                '"Authorization: Bearer $(gcloud auth print-identity-token '
                f'--impersonate-service-account=ACCOUNT --audiences={urls[name]} --include-email)"'
            )
            out(
                f"try {name} (as {who}): curl -H {token} -H 'Content-Type: application/json' "
                f"-d @body.json {urls[name]}"
            )
    return urls
