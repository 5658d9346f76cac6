"""``make gcp-bootstrap``: what a fresh project needs before the first ``terraform apply``.

    potability gcp bootstrap [--project PROJECT] [--dry-run]

Terraform enables the project's APIs itself (``google_project_service.apis``, terraform/main.tf),
but it cannot enable the ones it needs to do that, or to read the project at all:

* ``serviceusage.googleapis.com`` - the API ``google_project_service`` calls;
* ``cloudresourcemanager.googleapis.com`` - every ``google_project_iam_member`` and
  ``data.google_project`` (the project number) call it; on a project where it is off the first
  plan fails ("Cloud Resource Manager API has not been used in project ... or it is disabled")
  and Terraform cannot enable it while it needs it (terraform-google-modules/
  terraform-google-project-factory #717, hashicorp/terraform-provider-google #11435);
* ``iam.googleapis.com`` - service accounts and custom roles are created in the same apply that
  would enable it; enabling it first removes the race (the custom roles also wait for it,
  ``depends_on`` in terraform/iam.tf).

So this enables exactly those three with the caller's own gcloud credentials (which need
``serviceusage.services.enable`` on the project, e.g. Service Usage Admin or Owner), once;
enabling an enabled API is a no-op, so it is safe to repeat. The project comes from
``--project`` or else ``project_id`` in terraform/terraform.tfvars. tests/potability/gcp/
test_bootstrap.py runs it with a fake ``gcloud``.
"""

from __future__ import annotations

import re
from pathlib import Path

from potability.gcp.deploy import ROOT, TERRAFORM_DIR, DeployError, Runner

BOOTSTRAP_APIS = (
    "serviceusage.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "iam.googleapis.com",
)
"""The APIs Terraform needs before it can enable the rest (module docstring)."""


def project_from_tfvars(path: Path = ROOT / TERRAFORM_DIR / "terraform.tfvars") -> str:
    """``project_id`` of a terraform.tfvars (the one the first apply will use), or ``""``."""
    if not path.exists():
        return ""
    match = re.search(r'^\s*project_id\s*=\s*"([^"]+)"', path.read_text(), re.M)
    return match[1] if match else ""


def bootstrap(run: Runner, project: str) -> None:
    """Enable :data:`BOOTSTRAP_APIS` on ``project`` and say what comes next."""
    if not project:
        raise DeployError(
            "no project: pass --project (make gcp-bootstrap PROJECT=...) or set project_id "
            f"in {TERRAFORM_DIR}/terraform.tfvars"
        )
    run.out(f"== enable the APIs Terraform needs before its first apply, in {project}")
    run(["gcloud", "services", "enable", *BOOTSTRAP_APIS, f"--project={project}"])
    run.out(
        "done: now `terraform -chdir=terraform init && terraform -chdir=terraform apply`, "
        "then `make gcp-deploy` (terraform/README.md, First apply)"
    )
