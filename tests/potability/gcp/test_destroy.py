"""``make gcp-destroy`` with fake ``gcloud`` and ``terraform`` first on PATH (as the gcp-deploy
tests): the exact sequence around what stops a plain ``terraform destroy`` on Google Cloud, the
dry run printing everything and running only the read-only commands, a clear stop on failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gcp_fakes
import pytest

from potability import cli

# Every test runs the module's commands against fake gcloud and terraform executables.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = {
    "project_id": "demo",
    "region": "europe-west1",
    "endpoint_id": "4455",
    "network": "potability-vpc",
}

FAKE = r"""#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([name, *args]) + "\n")
fail_on = [t for t in os.environ.get("FAKE_FAIL_ON", "").split(",") if t]
if name == os.environ.get("FAKE_FAIL") and any(t in args for t in fail_on):
    sys.exit(3)
if name == "terraform" and "output" in args:
    outputs = json.load(open(os.environ["FAKE_OUTPUTS"]))
    print(json.dumps({{k: {{"value": v, "sensitive": False}} for k, v in outputs.items()}}))
elif name == "gcloud" and args[:3] == ["ai", "endpoints", "describe"]:
    print("111;222")
"""


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return gcp_fakes.install(tmp_path, monkeypatch, FAKE.format(python=sys.executable), OUTPUTS)


WHERE = ["--project=demo", "--region=europe-west1"]
EXPECTED = [
    ["terraform", "-chdir=terraform", "output", "-json"],
    [
        "gcloud",
        "ai",
        "endpoints",
        "describe",
        "4455",
        *WHERE,
        "--format=value(deployedModels[].id)",
    ],
    # an endpoint with deployed models cannot be deleted
    ["gcloud", "ai", "endpoints", "undeploy-model", "4455", *WHERE, "--deployed-model-id=111"],
    ["gcloud", "ai", "endpoints", "undeploy-model", "4455", *WHERE, "--deployed-model-id=222"],
    # Cloud SQL's deletion protection lifted, then the instance (and what needs it) destroyed
    [
        "terraform",
        "-chdir=terraform",
        "apply",
        "-input=false",
        "-var=db_deletion_protection=false",
        "-target=google_sql_database_instance.main",
        "-auto-approve",
    ],
    [
        "terraform",
        "-chdir=terraform",
        "destroy",
        "-input=false",
        "-var=db_deletion_protection=false",
        "-target=google_sql_database_instance.main",
        "-auto-approve",
    ],
    # the peering Terraform abandons (deletion_policy = "ABANDON") would block the network
    [
        "gcloud",
        "services",
        "vpc-peerings",
        "delete",
        "--network=potability-vpc",
        "--service=servicenetworking.googleapis.com",
        "--project=demo",
        "--quiet",
    ],
    [
        "terraform",
        "-chdir=terraform",
        "destroy",
        "-input=false",
        "-var=db_deletion_protection=false",
        "-auto-approve",
    ],
]


def test_destroy_runs_around_what_stops_terraform_destroy(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gcp", "destroy", "--auto-approve"]) == 0
    assert gcp_fakes.calls(fakes) == EXPECTED
    out = capsys.readouterr().out
    assert "run `make gcp-destroy` again" in out and "another name_prefix" in out


def test_dry_run_prints_every_command_and_runs_only_the_read_only_ones(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gcp", "destroy", "--dry-run", "--auto-approve"]) == 0
    assert gcp_fakes.calls(fakes) == EXPECTED[:2]  # terraform output, endpoint describe
    out = capsys.readouterr().out
    dry = [line.split("+ ", 1)[1] for line in out.splitlines() if line.startswith("(dry run) + ")]
    assert dry == [" ".join(c) for c in EXPECTED[2:]]


def test_make_gcp_destroy_dry_run_uses_the_module() -> None:
    res = subprocess.run(
        ["make", "-n", "gcp-destroy", "DRY_RUN=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv/bin/potability gcp destroy --dry-run" in res.stdout


FALLBACK = [
    "gcloud",
    "compute",
    "networks",
    "peerings",
    "delete",
    "servicenetworking-googleapis-com",
    "--network=potability-vpc",
    "--project=demo",
    "--quiet",
]


def test_a_refused_peering_deletion_falls_back_to_the_networks_end(
    fakes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Service Networking refuses while the producer network holds the connection (provider
    #19908, #18834): the VPC's end of the peering is deleted instead, and teardown goes on."""
    monkeypatch.setenv("FAKE_FAIL", "gcloud")
    monkeypatch.setenv("FAKE_FAIL_ON", "vpc-peerings")
    assert cli.main(["gcp", "destroy", "--auto-approve"]) == 0
    assert gcp_fakes.calls(fakes) == [*EXPECTED[:7], FALLBACK, EXPECTED[7]]
    assert "servicenetworking-googleapis-com" in capsys.readouterr().out


def test_a_failing_step_stops_there(
    fakes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "gcloud")
    monkeypatch.setenv("FAKE_FAIL_ON", "vpc-peerings,peerings")
    assert cli.main(["gcp", "destroy", "--auto-approve"]) == 1
    # both ways of deleting the peering failed: nothing after them
    assert gcp_fakes.calls(fakes) == [*EXPECTED[:7], FALLBACK]
    assert "`gcloud compute networks peerings delete" in capsys.readouterr().err
