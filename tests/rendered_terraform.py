"""terraform/ rendered offline: `terraform test` with a mocked google provider (the schema
stand-ins, tools/terraform_schema) applies the configuration, and extra outputs in a scratch
copy expose the values a test needs - what Terraform would send to Google.

Schema-only stand-ins cannot plan (they serve the schema, nothing else), and only `terraform
test` can mock a provider, so this is how the tests read Terraform's own rendering: values
the configuration computes from its variables are exactly Terraform's; values Google would
compute (ids, a project number) are the mock's, overridden where a test needs them fixed.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TF_DIR = ROOT / "terraform"
PROJECT, REGION, PROJECT_NUMBER = "test-project", "europe-west1", "123456789012"

VARIABLES = {
    "project_id": PROJECT,
    "region": REGION,
    "zone": f"{REGION}-b",
    "regulator_group": "regulator@example.com",
    "sensor_service_accounts": ["sensor-a@sensors.iam.gserviceaccount.com"],
    "engineers": ["group:ml-eng@example.com"],
    "db_admins": ["alice@example.com"],
    "image_tag": "v1",
    "image_digest": "sha256:" + "0123456789abcdef" * 4,
    "alert_emails": ["ops@example.com"],
}


def offline_tools() -> ModuleType:
    """tools/terraform_schema/offline_terraform.py (not a package: loaded by path)."""
    name = "tf_tools_offline_terraform"
    if name not in sys.modules:
        path = ROOT / "tools" / "terraform_schema" / "offline_terraform.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _hcl(value: Any) -> str:
    return json.dumps(value)  # JSON literals are valid HCL expressions


def render(
    workdir: Path, outputs: dict[str, str], variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply terraform/ with mocked providers; return each named output expression's value.

    ``outputs``: name -> an HCL expression (evaluated in the configuration). Each is passed
    through ``base64encode(jsonencode(...))`` so any value comes back intact.
    """
    offline = offline_tools()
    src = workdir / "src" / "terraform"
    shutil.copytree(
        TF_DIR, src, ignore=shutil.ignore_patterns(".terraform*", ".build", "*.tfstate*")
    )
    for old in (src / "tests").glob("*.tftest.hcl"):
        old.unlink()
    values = {**VARIABLES, **(variables or {})}
    (src / "tests" / "render.tftest.hcl").write_text(
        'mock_provider "google" {\n'
        "  override_data {\n"
        "    target = data.google_project.this\n"
        f'    values = {{ number = "{PROJECT_NUMBER}" }}\n'
        "  }\n"
        "  override_resource {\n"
        "    target = google_service_account.sa\n"
        f'    values = {{ email = "svc@{PROJECT}.iam.gserviceaccount.com",'
        f' member = "serviceAccount:svc@{PROJECT}.iam.gserviceaccount.com" }}\n'
        "  }\n"
        "}\n"
        'mock_provider "archive" {}\n'
        'mock_provider "time" {}\n'
        "variables {\n" + "".join(f"  {k} = {_hcl(v)}\n" for k, v in values.items()) + "}\n"
        'run "render" {\n  command = apply\n}\n'
    )
    (src / "zz_render_outputs.tf").write_text(
        "".join(
            f'output "zz_{name}" {{\n  value = nonsensitive(base64encode(jsonencode({expr})))\n}}\n'
            for name, expr in outputs.items()
        )
    )
    # the function sources as empty files (offline.empty_copy): no output here reads a
    # source's contents, and carrying them made every apply several times slower
    tf = offline.OfflineTerraform(workdir / "tf", src, copy_sibling=offline.empty_copy)
    try:
        tf.init()
        with offline.DevServers() as servers:
            res = tf.run("test", "-verbose", "-no-color", timeout=600, servers=servers)
    finally:
        tf.close()
    if res.returncode != 0:
        raise RuntimeError(f"terraform test failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    found = {}
    for name in outputs:
        match = re.search(rf'^zz_{name} = "([A-Za-z0-9+/=]+)"$', res.stdout, re.M)
        if not match:
            raise RuntimeError(f"output zz_{name} not in terraform's output:\n{res.stdout[-3000:]}")
        found[name] = json.loads(base64.b64decode(match[1]))
    return found
