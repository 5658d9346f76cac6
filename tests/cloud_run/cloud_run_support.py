"""The three functions as Google runs them, behind an emulated Cloud Run front end.

What ships is what runs: the function zip is built from the file list Terraform zips
(``local.function_source_files`` plus function_source/main.py and requirements.txt, as
``data.archive_file.function_source`` does), installed into a fresh virtual environment
from its requirements.txt alone (hash-checked, as the Python buildpack's pip step does),
byte-compiled (the buildpack's ``python3 -m compileall -f -q .``) and started the way the
buildpack starts it: the ``functions-framework`` web process in the source root with
``FUNCTION_TARGET`` and ``PORT`` (GoogleCloudPlatform/buildpacks,
cmd/python/functions_framework). Each function gets the environment variables Terraform sets
on it, rendered from terraform/ (tests/rendered_terraform.py).

Overridden, because they name Google services these tests do not emulate: the database
(``CLOUD_SQL_INSTANCE`` -> the session's PostgreSQL as ``DATABASE_URL``), the model endpoint
(``ENDPOINT_MODE=vertex`` -> the session's model server) and the listening host (loopback
instead of all interfaces). Everything about identity - audiences, sensor bindings, the
platform-verified switch - is Terraform's, unchanged.

In front: tools/cloud_run_frontend.py with the invoker bindings Terraform renders
(``google_cloud_run_service_iam_member.invoker``) and a test issuer standing in for Google's.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv-uv" / "bin" / "uv"

SENSOR = "sensor-a@sensors.iam.gserviceaccount.com"
UNBOUND_SENSOR = "sensor-b@sensors.iam.gserviceaccount.com"
REGULATOR = "lab-1@regulator-lab.iam.gserviceaccount.com"
HUMAN_REGULATOR = "ana@regulator.example"
STRANGER = "someone@elsewhere.iam.gserviceaccount.com"
SENSOR_IDS = ["plant-1-a", "plant-1-b"]
VARIABLES = {
    "sensor_service_accounts": [UNBOUND_SENSOR],
    "sensor_bindings": {SENSOR: SENSOR_IDS},
}
OUTPUTS = {
    "functions": "{ for k, f in google_cloudfunctions2_function.fn : k => {"
    " name = f.name, entry_point = f.build_config[0].entry_point,"
    " env = f.service_config[0].environment_variables } }",
    "invokers": "[ for m in google_cloud_run_service_iam_member.invoker : {"
    " service = m.service, role = m.role, member = m.member } ]",
    "source_files": "local.function_source_files",
    "smoke_account": 'google_service_account.sa["smoke"].email',
}


def frontend_module() -> ModuleType:
    name = "cloud_run_frontend"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def build_function_zip(source_files: list[str], out: Path) -> Path:
    """The zip ``data.archive_file.function_source`` builds (terraform/functions.tf)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(ROOT / "terraform" / "function_source" / "main.py", "main.py")
        zf.write(ROOT / "terraform" / "function_source" / "requirements.txt", "requirements.txt")
        for name in source_files:
            zf.write(ROOT / name, name)
    return out


@dataclass
class CloudRun:
    """The functions behind the front end: their local URLs, the URLs (audiences) they have
    on Google, the issuer that signs callers' ID tokens, and the front end's log."""

    urls: dict[str, str]
    """Function key (predict, samples, status) -> the front end's local URL for it."""
    audiences: dict[str, tuple[str, ...]]
    issuer: Any
    front: Any
    env: dict[str, dict[str, str]]
    functions: dict[str, dict[str, Any]]
    """Terraform's rendering of each function (name, entry point, env)."""
    invokers: dict[str, frozenset[str]]
    logs: Path
    """Each function's output (its request log lines): ``<logs>/<key>.log``."""
    smoke_account: str
    """The deploy smoke test's service account, as Terraform creates it."""

    def token(self, email: str, fn: str, **claims: Any) -> str:
        """An ID token for ``fn``'s run.app URL, as ``gcloud auth print-identity-token
        --impersonate-service-account=EMAIL --audiences=URL --include-email`` prints it."""
        return self.issuer.id_token(email, self.audiences[fn][0], **claims)


def start_function(
    source: Path, fn: dict[str, Any], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start one function from ``source`` (its venv beside it) as the buildpack's web process
    does: ``functions-framework`` in the source root, with ``FUNCTION_TARGET`` and what Cloud
    Run sets (``PORT``, ``K_SERVICE``, ...; https://cloud.google.com/run/docs/container-contract).
    Returns the process and its local URL (not yet answering: see ``services.wait_http``)."""
    from potability.local import services

    port = services.free_port()
    bin_dir = source.parent / "venv" / "bin"
    process_env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(log.parent),
        **env,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "K_SERVICE": fn["name"],
        "K_REVISION": f"{fn['name']}-00001-abc",
        "K_CONFIGURATION": fn["name"],
        "FUNCTION_TARGET": fn["entry_point"],
        "FUNCTION_SIGNATURE_TYPE": "http",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "functions-framework")],
            cwd=source,
            env=process_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"
