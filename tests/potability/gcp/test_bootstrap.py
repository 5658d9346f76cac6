"""``make gcp-bootstrap``: the one command enabling the APIs Terraform needs before its first
apply, the project from the flag or terraform.tfvars, and a clear stop without one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from potability.gcp import bootstrap
from potability.gcp.deploy import DeployError, Runner

ROOT = Path(__file__).resolve().parents[3]


def test_it_enables_serviceusage_cloudresourcemanager_and_iam() -> None:
    lines: list[str] = []
    run = Runner(dry_run=True, out=lines.append)
    bootstrap.bootstrap(run, "demo")
    assert (
        "(dry run) + gcloud services enable serviceusage.googleapis.com "
        "cloudresourcemanager.googleapis.com iam.googleapis.com --project=demo"
    ) in lines


def test_terraform_keeps_the_bootstrapped_apis_enabled() -> None:
    """main.tf lists them too, so no later apply disables what the bootstrap enabled."""
    main_tf = (ROOT / "terraform" / "main.tf").read_text()
    for api in bootstrap.BOOTSTRAP_APIS:
        assert f'"{api}"' in main_tf


def test_the_project_comes_from_terraform_tfvars(tmp_path: Path) -> None:
    tfvars = tmp_path / "terraform.tfvars"
    tfvars.write_text('region     = "europe-west1"\nproject_id = "water-prod"\n')
    assert bootstrap.project_from_tfvars(tfvars) == "water-prod"
    assert bootstrap.project_from_tfvars(tmp_path / "absent.tfvars") == ""


def test_without_a_project_it_stops_and_says_how_to_give_one() -> None:
    with pytest.raises(DeployError, match="--project"):
        bootstrap.bootstrap(Runner(dry_run=True, out=lambda _: None), "")


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
def test_make_gcp_bootstrap_passes_the_project() -> None:
    res = subprocess.run(
        ["make", "-n", "gcp-bootstrap", "PROJECT=water-prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv/bin/potability gcp bootstrap --project=water-prod" in res.stdout
