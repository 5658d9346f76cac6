"""``make gcp-model ARGS="rollback --reason ..."``: ``potability model ...`` on Google Cloud
without a VPN, as the operators' Cloud Run job (terraform/model_job.tf).

    potability gcp model [--dry-run] rollback --reason "live precision fell"

The command needs Cloud SQL's private IP and MLflow's private address, which an operator's
machine does not reach; the job runs in the VPC (Direct VPC egress into the jobs subnet the
MLflow firewall admits) as its own service account with exactly the operators' grants. This
module builds the one command that runs it with the operator's arguments and waits for the
outcome::

    gcloud run jobs execute <prefix>-model --project=P --region=R \\
        --args=potability,model,rollback,--reason,<reason> --wait

``--args`` replaces the container's arguments for this execution only (an override: the
operators group holds ``roles/run.jobsExecutorWithOverrides`` on the job, which carries
``run.jobs.runWithOverrides`` - https://cloud.google.com/run/docs/reference/rest/v2/
projects.locations.jobs/run). gcloud splits a list flag on commas; a reason may contain
commas, so the list is then written with gcloud's alternative delimiter syntax
``^D^a D b`` (``gcloud topic escaping``) with a delimiter that occurs in no argument.

The job's exit status is the command's (docs/operating-the-model.md: 0 done, 2 refused, 1 the
switch failed); gcloud reports a non-zero one as a failed execution, and this exits 1 with the
command to read the job's output from Cloud Logging.
"""

from __future__ import annotations

from collections.abc import Sequence

from potability.gcp.deploy import DeployError, Runner, _need, terraform_outputs

DELIMITERS = ("|", "~", "@", "#", ";", ":", "+", "=", "%", "!")
"""Candidates for gcloud's alternative list delimiter, tried in order."""


def gcloud_list(values: Sequence[str]) -> str:
    """``values`` as one gcloud list-flag value that splits back into exactly ``values``:
    comma-joined when no value has a comma, else ``^D^`` + D-joined (``gcloud topic
    escaping``) with the first delimiter D found in no value."""
    if not any("," in v for v in values):
        return ",".join(values)
    for delim in DELIMITERS:
        if not any(delim in v for v in values):
            return f"^{delim}^" + delim.join(values)
    raise DeployError(
        "every delimiter gcloud could split the job's arguments on occurs in them: "
        "write the reason without one of " + " ".join(DELIMITERS)
    )


def execute_command(project: str, region: str, job: str, model_args: Sequence[str]) -> list[str]:
    """The ``gcloud run jobs execute`` command running ``potability model <model_args>``."""
    if not model_args:
        raise DeployError('say what to do, e.g. ARGS="status" or ARGS="rollback --reason ..."')
    return [
        "gcloud",
        "run",
        "jobs",
        "execute",
        job,
        f"--project={project}",
        f"--region={region}",
        "--args=" + gcloud_list(["potability", "model", *model_args]),
        "--wait",
    ]


def logs_command(project: str, job: str) -> str:
    """Where the job's output is: its Cloud Logging entries of the last hour."""
    return (
        "gcloud logging read "
        f'\'resource.type="cloud_run_job" AND resource.labels.job_name="{job}"\' '
        f"--project={project} --freshness=1h --order=asc --format='value(textPayload)'"
    )


def run_model(run: Runner, model_args: Sequence[str]) -> None:
    """Execute the model job with ``model_args`` and wait for it (terraform outputs say
    where it is)."""
    outputs = terraform_outputs(run)
    project, region = (str(v) for v in _need(outputs, "project_id", "region"))
    job = str(outputs.get("model_job") or "")
    if not job:
        raise DeployError(
            "terraform output model_job is empty: the job exists once `operators` is set in "
            "terraform.tfvars and `make gcp-deploy` has pinned the image (terraform/model_job.tf)"
        )
    try:
        run(execute_command(project, region, job, model_args))
    finally:
        run.out(f"the command's output: {logs_command(project, job)}")
