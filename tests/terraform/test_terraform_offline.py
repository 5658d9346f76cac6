"""terraform fmt, validate and test against the schema of hashicorp/google 8.7.0.

This is schema-level checking (arguments, nesting, types, references) with
mocked providers, not a plan against Google: see terraform/README.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import TF_DIR


def _out(res: subprocess.CompletedProcess) -> str:
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def test_fmt(terraform_bin: str, offline) -> None:
    res = subprocess.run(
        [terraform_bin, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True,
        text=True,
        env=offline.clean_env(None),
    )
    assert res.returncode == 0, (
        "terraform fmt -check failed (run `terraform fmt -recursive terraform`):\n" + _out(res)
    )


def test_init_uses_only_the_stand_in_providers(initialised) -> None:
    lock = (initialised.dir / ".terraform.lock.hcl").read_text()
    assert re.search(
        r'provider "registry.terraform.io/hashicorp/google" \{\s*version\s*=\s*"8\.7\.0"', lock
    )
    assert re.search(
        r'provider "registry.terraform.io/hashicorp/archive" \{\s*version\s*=\s*"2\.8\.1"', lock
    )
    assert re.search(
        r'provider "registry.terraform.io/hashicorp/time" \{\s*version\s*=\s*"0\.14\.2"', lock
    )
    # init ran in the scratch copy: no lock file or .terraform/ appears in the repository.
    assert initialised.dir != TF_DIR
    assert not (TF_DIR / ".terraform.lock.hcl").exists()


def test_validate(initialised) -> None:
    res = initialised.run("validate", "-no-color")
    assert res.returncode == 0, _out(res)
    assert "The configuration is valid" in res.stdout


BREAKAGES = {
    # unknown argument inside a nested block
    "unknown-argument": (
        "sql.tf",
        'ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"',
        'ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"\n'
        "      require_ssl_typo = true",
        r'An argument named "require_ssl_typo" is not expected here',
    ),
    # missing required argument
    "missing-required": (
        "mlflow.tf",
        "  machine_type = var.mlflow_machine_type\n",
        "",
        r'The argument "machine_type" is required',
    ),
    # a block where the schema has an attribute
    "block-for-attribute": (
        "scheduler.tf",
        '    headers     = { "Content-Type" = "application/json" }',
        '    headers {\n      Content-Type = "application/json"\n    }',
        r"Unsupported block type",
    ),
    # reference to an attribute the resource does not have
    "bad-reference": (
        "pipeline.tf",
        "google_vertex_ai_endpoint.main.name",
        "google_vertex_ai_endpoint.main.endpoint_id_typo",
        r'no argument, nested block, or exported attribute named\s+"endpoint_id_typo"',
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_validate_catches_a_broken_configuration(
    case: str, offline, terraform_bin: str, stand_ins: str, tmp_path: Path
) -> None:
    fname, old, new, expected = BREAKAGES[case]
    src = tmp_path / "src" / "terraform"
    shutil.copytree(
        TF_DIR, src, ignore=shutil.ignore_patterns(".terraform*", ".build", "*.tfstate*")
    )
    text = (src / fname).read_text()
    assert old in text, f"{fname} no longer contains the line this test breaks: {old!r}"
    (src / fname).write_text(text.replace(old, new, 1))
    tf = offline.OfflineTerraform(tmp_path / "work", src)
    try:
        tf.init()
        res = tf.run("validate", "-no-color")
    finally:
        tf.close()
    assert res.returncode != 0, f"validate accepted a broken configuration ({case}):\n" + _out(res)
    assert re.search(expected, res.stdout + res.stderr), _out(res)


def test_terraform_test(offline, terraform_bin: str, stand_ins: str, tmp_path: Path) -> None:
    """terraform/tests/*.tftest.hcl: security wiring asserted with mock_provider; every run
    block of every file passes.

    Runs against long-lived stand-ins (TF_REATTACH_PROVIDERS): Terraform would
    otherwise start each provider again for every step of every run block. Runs in a copy of
    its own whose function sources are empty files at the same paths (offline.empty_copy:
    their contents were two thirds of the CPU time; ``test_validate`` reads them in full).
    """
    runs = sum(
        len(re.findall(r'^run "', f.read_text(), re.M))
        for f in (TF_DIR / "tests").glob("*.tftest.hcl")
    )
    tf = offline.OfflineTerraform(tmp_path / "work", TF_DIR, copy_sibling=offline.empty_copy)
    try:
        tf.init()
        with offline.DevServers() as servers:
            res = tf.run("test", "-no-color", timeout=600, servers=servers)
    finally:
        tf.close()
    assert res.returncode == 0, _out(res)
    m = re.search(r"Success! (\d+) passed, 0 failed", res.stdout)
    assert m and int(m.group(1)) == runs >= 10, _out(res)
