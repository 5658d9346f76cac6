#!/usr/bin/env python3
"""Run Terraform offline against the schema-only stand-in providers.

Builds a provider filesystem mirror (hashicorp/google 8.7.0, hashicorp/archive 2.8.1 and
hashicorp/time 0.14.2, each a small launcher of ``standin_provider.py`` with its generated
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
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TF_VENV_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
STANDIN = HERE / "standin_provider.py"

# provider -> version served from the mirror (matches the committed schema files)
STANDINS = {"google": "8.7.0", "archive": "2.8.1", "time": "0.14.2"}
# Repository folders the configuration reads through ${path.module}/..
SIBLINGS = ("potability", "functions", "sql", "notebooks")


class OfflineError(RuntimeError):
    pass


def schema_file(provider: str) -> Path:
    return HERE / f"{provider}-{STANDINS[provider]}.schema.json"


def terraform_bin() -> str:
    tf = shutil.which("terraform")
    if not tf:
        raise OfflineError(
            "terraform is not on PATH: install Terraform >= 1.11 "
            "(tests/terraform needs it; terraform/versions.tf)"
        )
    return tf


def platform(tf: str) -> str:
    out = subprocess.run(
        [tf, "version", "-json"], capture_output=True, text=True, check=True, env=clean_env(None)
    ).stdout
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


def build_mirror(workdir: Path, ptmp: Path, python: Path = TF_VENV_PYTHON) -> Path:
    """Create <workdir>/mirror and <workdir>/terraformrc; return the CLI config path.

    The providers put their plugin socket in a temporary directory that is not
    removed when Terraform kills them: ``ptmp`` (short, a unix socket path is at
    most 107 bytes) holds those; the caller removes it.
    """
    if not python.exists():
        raise OfflineError(
            f"{python} is missing: run `bash tools/setup-tf-tools.sh` first "
            "(it creates .venv-tf with the `tf` package the stand-in providers need)"
        )
    tf = terraform_bin()
    plat = platform(tf)
    mirror = workdir / "mirror"
    workdir.mkdir(parents=True, exist_ok=True)
    for provider, version in STANDINS.items():
        schema = schema_file(provider)
        if not schema.exists():
            raise OfflineError(
                f"{schema} is missing: run "
                f"tools/terraform_schema/generate_schema.py --provider {provider}"
            )
        d = mirror / "registry.terraform.io" / "hashicorp" / provider / version / plat
        d.mkdir(parents=True, exist_ok=True)
        exe = d / f"terraform-provider-{provider}_v{version}"
        exe.write_text(
            f'#!/bin/sh\nexport TMPDIR="{ptmp}"\nexec "{python}" "{STANDIN}" "{schema}" "$@"\n'
        )
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
    ignore = shutil.ignore_patterns(
        ".terraform", ".terraform.lock.hcl", "*.tfstate*", ".build", "terraform.tfvars"
    )
    shutil.copytree(src, dest, ignore=ignore)
    return dest


def empty_copy(src: str, dst: str) -> str:
    """``copy_function`` for a copy of the sibling folders that keeps every path and no content.

    ``terraform test`` plans the configuration once per run block, and every plan carries the
    function sources' contents (~730 KB in ``data.archive_file.function_source``'s source
    blocks): two thirds of its CPU time, measured (docs/testing.md). Its assertions are about
    the wiring, not the sources, so it runs on empty files at the same paths: ``fileset``, its
    filter and the dynamic blocks are planned as for real. The contents are checked by
    ``terraform validate`` on a full copy (a file ``file()`` cannot read fails there) and by
    tests/cloud_run, which builds the zip, installs it and serves the functions from it.
    """
    Path(dst).touch()
    return dst


class DevServers:
    """The stand-in providers started once, in the plugin SDK's debug ("reattach") mode.

    ``terraform test`` starts every provider again for each plan, apply and
    teardown step of each run block (mocked providers still need the schema);
    with TF_REATTACH_PROVIDERS Terraform talks to these long-lived processes
    instead, which makes the test run several times faster. Installation is
    still checked through the filesystem mirror by ``init``.
    """

    def __init__(self, python: Path = TF_VENV_PYTHON, timeout: float = 30):
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tfp-"))
        self.procs: list[subprocess.Popen] = []
        self.reattach: dict = {}
        try:
            for provider in STANDINS:
                self._start(python, provider, timeout)
        except Exception:
            self.close()
            raise

    def _start(self, python: Path, provider: str, timeout: float) -> None:
        proc = subprocess.Popen(
            [str(python), "-u", str(STANDIN), str(schema_file(provider)), "--dev"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**clean_env(None), "TMPDIR": str(self.tmpdir)},
        )
        self.procs.append(proc)
        found: dict = {}

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                m = re.search(r"TF_REATTACH_PROVIDERS='(.*)'", line)
                if m:
                    found.update(json.loads(m.group(1)))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            raise OfflineError(
                f"stand-in provider {provider} did not start in debug mode within {timeout}s"
            )
        self.reattach.update(found)

    def env(self) -> dict[str, str]:
        return {"TF_REATTACH_PROVIDERS": json.dumps(self.reattach)}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> DevServers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OfflineTerraform:
    """A scratch copy of a configuration, initialised against the stand-in providers.

    The copy sits at ``<workdir>/repo/<name of src>``; the sibling folders named in
    ``siblings`` are copied next to it so that ``${path.module}/..`` references
    (the function source, the notebook) keep working. ``copy_sibling`` copies each of
    their files (``shutil.copytree``'s ``copy_function``): :func:`empty_copy` keeps the
    paths and drops the contents.
    """

    def __init__(
        self,
        workdir: Path,
        src: Path = ROOT / "terraform",
        siblings: tuple[str, ...] = SIBLINGS,
        copy_sibling: Callable[[str, str], object] = shutil.copy2,
    ):
        self.workdir = workdir
        self.ptmp = Path(tempfile.mkdtemp(prefix="tfp-"))
        self.cli_config = build_mirror(workdir, self.ptmp)
        self.dir = copy_config(src, workdir / "repo" / src.name)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
        for sib in siblings:
            if (ROOT / sib).is_dir():
                shutil.copytree(
                    ROOT / sib, workdir / "repo" / sib, ignore=skip, copy_function=copy_sibling
                )
        self.tf = terraform_bin()

    def run(
        self, *args: str, check: bool = False, timeout: int = 300, servers: DevServers | None = None
    ) -> subprocess.CompletedProcess:
        """Run terraform in the scratch copy; with ``servers``, against the long-lived stand-ins."""
        env = clean_env(self.cli_config)
        if servers is not None:
            env.update(servers.env())
        return subprocess.run(
            [self.tf, *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def close(self) -> None:
        """Remove the providers' socket directories (the scratch copy is the caller's)."""
        shutil.rmtree(self.ptmp, ignore_errors=True)

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
    off = None
    try:
        testing = ns.args[:1] == ["test"]  # as tests/terraform runs it: empty function sources
        off = OfflineTerraform(
            td, ns.src.resolve(), copy_sibling=empty_copy if testing else shutil.copy2
        )
        off.init()
        with DevServers() as servers:
            res = off.run(*ns.args, "-no-color", servers=servers if testing else None)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        return res.returncode
    finally:
        if off is not None:
            off.close()
        if ns.keep:
            print(f"scratch directory kept: {td}", file=sys.stderr)
        else:
            shutil.rmtree(td, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
