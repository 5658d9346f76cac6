#!/usr/bin/env python3
"""Run Terraform offline against the schema-only stand-in providers.

Builds a provider filesystem mirror (hashicorp/google 8.7.0 and hashicorp/archive
2.8.1, each a small launcher of ``standin_provider.py`` with its generated
schema) and a CLI configuration that installs providers from that mirror only,
then copies a Terraform configuration to a scratch directory and runs
``terraform init`` there.  Nothing touches the network or the source directory
(no ``.terraform/``, no lock file there).

    python tools/terraform_schema/offline_terraform.py [--src terraform] [--keep] -- validate
    python tools/terraform_schema/offline_terraform.py -- test

Needs ``terraform`` on PATH and ``.venv-tf`` (``bash tools/setup-tf-tools.sh``).
The tests in tests/terraform import this module.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TF_VENV_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
STANDIN = HERE / "standin_provider.py"

# provider -> version served from the mirror (matches the committed schema files)
STANDINS = {"google": "8.7.0", "archive": "2.8.1"}


class OfflineError(RuntimeError):
    pass


def schema_file(provider: str) -> Path:
    return HERE / f"{provider}-{STANDINS[provider]}.schema.json"


def terraform_bin() -> str:
    tf = shutil.which("terraform")
    if not tf:
        raise OfflineError("terraform is not on PATH: install Terraform >= 1.9 (tests/terraform needs it)")
    return tf


def platform(tf: str) -> str:
    out = subprocess.run([tf, "version", "-json"], capture_output=True, text=True, check=True,
                         env=clean_env(None)).stdout
    return json.loads(out)["platform"]


def clean_env(cli_config: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["CHECKPOINT_DISABLE"] = "1"
    env["TF_IN_AUTOMATION"] = "1"
    if cli_config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(cli_config)
    else:
        env["TF_CLI_CONFIG_FILE"] = os.devnull
    return env


def build_mirror(workdir: Path, python: Path = TF_VENV_PYTHON) -> Path:
    """Create <workdir>/mirror and <workdir>/terraformrc; return the CLI config path."""
    if not python.exists():
        raise OfflineError(
            f"{python} is missing: run `bash tools/setup-tf-tools.sh` first "
            "(it creates .venv-tf with the `tf` package the stand-in providers need)"
        )
    tf = terraform_bin()
    plat = platform(tf)
    mirror = workdir / "mirror"
    for provider, version in STANDINS.items():
        schema = schema_file(provider)
        if not schema.exists():
            raise OfflineError(f"{schema} is missing: run tools/terraform_schema/generate_schema.py --provider {provider}")
        d = mirror / "registry.terraform.io" / "hashicorp" / provider / version / plat
        d.mkdir(parents=True, exist_ok=True)
        exe = d / f"terraform-provider-{provider}_v{version}"
        exe.write_text(f'#!/bin/sh\nexec "{python}" "{STANDIN}" "{schema}" "$@"\n')
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    rc = workdir / "terraformrc"
    includes = ", ".join(f'"registry.terraform.io/hashicorp/{p}"' for p in STANDINS)
    rc.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f"    include = [{includes}]\n"
        "  }\n"
        "}\n"
    )
    return rc


def copy_config(src: Path, dest: Path) -> Path:
    """Copy the configuration (not its .terraform/, lock file, state or build output)."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", ".build", "terraform.tfvars")
    shutil.copytree(src, dest, ignore=ignore)
    return dest


class OfflineTerraform:
    """A scratch copy of a configuration, initialised against the stand-in providers.

    The copy sits at ``<workdir>/<name of src>`` so that ``${path.module}/..``
    references keep working when ``link_siblings`` names the sibling folders to link.
    """

    def __init__(self, workdir: Path, src: Path = ROOT / "terraform", link_siblings: tuple[str, ...] = ()):
        self.workdir = workdir
        self.cli_config = build_mirror(workdir)
        self.dir = copy_config(src, workdir / "repo" / src.name)
        for sib in link_siblings:
            target = src.parent / sib
            if target.exists():
                (workdir / "repo" / sib).symlink_to(target, target_is_directory=target.is_dir())
        self.tf = terraform_bin()

    def run(self, *args: str, check: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.tf, *args], cwd=self.dir, env=clean_env(self.cli_config),
            capture_output=True, text=True, check=check, timeout=timeout,
        )

    def init(self) -> subprocess.CompletedProcess:
        res = self.run("init", "-backend=false", "-input=false", "-no-color")
        if res.returncode != 0:
            raise OfflineError(f"terraform init failed:\n{res.stdout}\n{res.stderr}")
        return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=ROOT / "terraform")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("args", nargs="*", default=["validate"], help="terraform subcommand and flags")
    ns = ap.parse_args(argv)
    td = Path(tempfile.mkdtemp(prefix="tf-offline-"))
    try:
        off = OfflineTerraform(td, ns.src.resolve(), link_siblings=("potability", "functions", "sql", "notebooks"))
        off.init()
        res = off.run(*ns.args, "-no-color")
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        return res.returncode
    finally:
        if ns.keep:
            print(f"scratch directory kept: {td}", file=sys.stderr)
        else:
            shutil.rmtree(td, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
