#!/usr/bin/env python3
"""Generate `terraform providers schema -json`-shaped files for hashicorp/google (archive, time).

The real provider binary cannot be downloaded in this workplace, but its schema
is published on PyPI inside ``cdktn-provider-google`` (21.1.0 is generated from
hashicorp/google 8.7.0).  The wheel carries a jsii tarball whose ``package/lib``
holds the generated JavaScript bindings; for every argument and nested block
they record the Terraform name and the provider's own flags in a comment::

    // ssl_mode - computed: true, optional: true, required: false
    get sslMode() { return this.getStringAttribute('ssl_mode'); }
    // authorized_networks - computed: false, optional: true, required: false
    _authorizedNetworks = new ...AuthorizedNetworksList(this, "authorized_networks", true);

(the last argument says the list wraps a set).  Together with the
``*ToHclTerraform`` serialisers (which say whether a nested object is a block
and whether it is a list, a set or a single "struct" block) this is enough to
rebuild the block/attribute tree Terraform validates configurations against.

Only the resource and data-source types the configuration uses are emitted
(scanned from ``terraform/*.tf`` unless ``--types`` is given), which keeps the
committed JSON small.  Descriptions, sensitivity and write-only flags are not
reproduced: this is schema-level checking, not a plan against Google.

Usage::

    python tools/terraform_schema/generate_schema.py [--provider google|archive] \
        [--wheel cdktn_provider_google-21.1.0-py3-none-any.whl] \
        [--tf-dir terraform] [--out tools/terraform_schema/google-8.7.0.schema.json]

Without ``--wheel`` the wheel is fetched with ``pip download`` (PyPI).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# provider name -> (PyPI package, its version, the Terraform provider version it was built from)
PROVIDERS = {
    "google": ("cdktn-provider-google", "21.1.0", "8.7.0"),
    "archive": ("cdktn-provider-archive", "14.0.1", "2.8.1"),
    # time_sleep: the IAM propagation waits Google's own examples use (terraform/iam.tf).
    "time": ("cdktn-provider-time", "14.0.2", "0.14.2"),
}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

FLAGS_RE = re.compile(
    r"^\s*// (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\s*$"
)
NEW_RE = re.compile(r'^\s*_\w+ = new ([\w.]+)\(this, "(\w+)"(?:, (true|false))?\);')
CDKTN_CLASSES = {
    "cdktn.StringMap": ["map", "string"],
    "cdktn.StringMapList": ["list", ["map", "string"]],
}
GETTER_RE = re.compile(r"^\s*return (.*)this\.(get\w+Attribute)\('(\w+)'\)\)?;")
CLASS_RE = re.compile(r"^class (\w+) extends ([\w.]+) \{", re.M)
HCL_FN_RE = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{", re.M)
HCL_ENTRY_RE = re.compile(
    r'^\s*(\w+): \{\n\s*value: .*\n\s*isBlock: (true|false),\n\s*type: "(\w+)",\n'
    r'\s*storageClassType: "(\w+)",',
    re.M,
)
TYPE_RE = re.compile(r'static tfResourceType = "(\w+)";')
USED_RE = r'^\s*(resource|data)\s+"({name}_\w+)"'

SIMPLE_GETTERS = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
}
STORAGE_TYPES = {
    ("simple", "string"): "string",
    ("simple", "number"): "number",
    ("simple", "boolean"): "bool",
    ("list", "stringList"): ["list", "string"],
    ("set", "stringList"): ["set", "string"],
    ("list", "numberList"): ["list", "number"],
    ("set", "numberList"): ["set", "number"],
    ("map", "stringMap"): ["map", "string"],
}


class SchemaError(RuntimeError):
    pass


def lcfirst(s: str) -> str:
    return s[:1].lower() + s[1:]


class JsModule:
    """One generated ``lib/<name>/index.js``: its classes and HCL serialisers."""

    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.classes: dict[str, tuple[str, list[str]]] = {}
        matches = list(CLASS_RE.finditer(text))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            self.classes[m.group(1)] = (m.group(2), text[m.start() : end].splitlines())
        self.hcl: dict[str, dict[str, tuple[bool, str, str]]] = {}
        fns = list(HCL_FN_RE.finditer(text))
        for i, m in enumerate(fns):
            end = fns[i + 1].start() if i + 1 < len(fns) else len(text)
            self.hcl[m.group(1)] = self._hcl_entries(text[m.start() : end])
        for cname, (_, lines) in self.classes.items():
            body = "\n".join(lines)
            at = body.find("synthesizeHclAttributes() {")
            if at >= 0:
                self.hcl["class:" + cname] = self._hcl_entries(body[at:])

    @staticmethod
    def _hcl_entries(chunk: str) -> dict[str, tuple[bool, str, str]]:
        return {
            m.group(1): (m.group(2) == "true", m.group(3), m.group(4))
            for m in HCL_ENTRY_RE.finditer(chunk)
        }

    def hcl_for_class(self, cname: str) -> dict[str, tuple[bool, str, str]]:
        if "class:" + cname in self.hcl:
            return self.hcl["class:" + cname]
        for suffix in ("OutputReference",):
            if cname.endswith(suffix):
                return self.hcl.get(lcfirst(cname[: -len(suffix)]), {})
        return {}

    def element_class(self, list_class: str) -> str:
        _, lines = self.classes[list_class]
        for line in lines:
            m = re.search(r"new (\w+OutputReference)\(", line)
            if m:
                return m.group(1)
        raise SchemaError(f"{self.name}: no element class for {list_class}")

    def block(self, cname: str, where: str) -> dict:
        """The schema block described by class ``cname`` (resource or OutputReference)."""
        _, lines = self.classes[cname]
        hcl = self.hcl_for_class(cname)
        attributes: dict[str, dict] = {}
        block_types: dict[str, dict] = {}
        i = 0
        while i < len(lines):
            m = FLAGS_RE.match(lines[i])
            if not m:
                i += 1
                continue
            name, computed, optional, required = (
                m.group(1),
                m.group(2) == "true",
                m.group(3) == "true",
                m.group(4) == "true",
            )
            flags = {
                k: True
                for k, v in (("required", required), ("optional", optional), ("computed", computed))
                if v
            }
            window = lines[i + 1 : i + 8]
            i += 1
            complex_new = next(
                (NEW_RE.match(line) for line in window[:2] if NEW_RE.match(line)), None
            )
            if complex_new:
                klass, tfname, wraps_set = complex_new.groups()
                if tfname != name:
                    raise SchemaError(f"{where}.{name}: name mismatch {tfname}")
                configurable = optional or required
                if klass in CDKTN_CLASSES:
                    attributes[name] = {"type": CDKTN_CLASSES[klass], **flags}
                elif klass.endswith("OutputReference"):
                    inner = self.block(klass, f"{where}.{name}")
                    if configurable:
                        kind = hcl.get(name, (True, "list", ""))[1]
                        if kind == "struct":
                            bt = {"nesting_mode": "single", "block": inner}
                        else:
                            bt = {"nesting_mode": "list", "block": inner, "max_items": 1}
                        if required:
                            bt["min_items"] = 1
                        block_types[name] = bt
                    else:
                        attributes[name] = {"type": ["list", object_type(inner)], **flags}
                elif klass.endswith("List"):
                    inner = self.block(self.element_class(klass), f"{where}.{name}")
                    mode = "set" if wraps_set == "true" else "list"
                    if configurable:
                        bt = {"nesting_mode": mode, "block": inner}
                        if required:
                            bt["min_items"] = 1
                        block_types[name] = bt
                    else:
                        attributes[name] = {"type": [mode, object_type(inner)], **flags}
                elif klass.endswith("Map"):
                    inner = self.block(klass[: -len("Map")] + "OutputReference", f"{where}.{name}")
                    attributes[name] = {"type": ["map", object_type(inner)], **flags}
                else:
                    raise SchemaError(f"{where}.{name}: unknown complex class {klass}")
                continue
            ty = None
            if any("Write-only:" in line for line in window):
                flags["write_only"] = True
            for line in window:
                g = GETTER_RE.match(line)
                if g:
                    prefix, getter, tfname = g.groups()
                    if tfname != name:
                        raise SchemaError(f"{where}.{name}: getter names {tfname}")
                    ty = SIMPLE_GETTERS.get(getter)
                    if ty is None:
                        raise SchemaError(f"{where}.{name}: unknown getter {getter}")
                    if "tolist(" in prefix:
                        ty = ["set", ty[1]]
                    break
                if FLAGS_RE.match(line):
                    break
            if ty is None and name in hcl:
                is_block, kind, storage = hcl[name]
                ty = STORAGE_TYPES.get((kind, storage))
            if ty is None:
                raise SchemaError(f"{where}.{name}: cannot tell the type")
            attributes[name] = {"type": ty, **flags}
        out: dict = {"attributes": attributes}
        if block_types:
            out["block_types"] = block_types
        return out


def object_type(block: dict) -> list:
    """A computed nested block seen as a value: object of its attributes and sub-blocks."""
    fields = {k: v["type"] for k, v in block.get("attributes", {}).items()}
    for k, bt in block.get("block_types", {}).items():
        inner = object_type(bt["block"])
        fields[k] = inner if bt["nesting_mode"] == "single" else [bt["nesting_mode"], inner]
    return ["object", fields]


def provider_block(mod: JsModule) -> dict:
    cname = next(c for c, (base, _) in mod.classes.items() if base == "cdktn.TerraformProvider")
    hcl = mod.hcl["class:" + cname]
    attributes = {}
    block_types = {}
    for name, (is_block, kind, storage) in sorted(hcl.items()):
        if is_block:
            inner = mod.hcl.get(lcfirst(storage), {})
            block_types[name] = {
                "nesting_mode": "list",
                "max_items": 1,
                "block": {
                    "attributes": {
                        k: {"type": STORAGE_TYPES[(t, s)], "optional": True}
                        for k, (_, t, s) in inner.items()
                    }
                },
            }
        else:
            attributes[name] = {"type": STORAGE_TYPES[(kind, storage)], "optional": True}
    return {"attributes": attributes, "block_types": block_types}


def load_lib(wheel: Path) -> dict[str, str]:
    """index.js texts of the wheel's jsii tarball, keyed by lib folder name."""
    with zipfile.ZipFile(wheel) as zf:
        tgz = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        data = zf.read(tgz)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf:
            parts = member.name.split("/")
            if len(parts) == 4 and parts[1] == "lib" and parts[3] == "index.js":
                out[parts[2]] = tf.extractfile(member).read().decode()
    return out


def used_types(tf_dir: Path, provider: str) -> tuple[set[str], set[str]]:
    res, ds = set(), set()
    used = re.compile(USED_RE.format(name=provider), re.M)
    for f in sorted(tf_dir.glob("*.tf")):
        for kind, name in used.findall(f.read_text()):
            (res if kind == "resource" else ds).add(name)
    return res, ds


def generate(
    provider: str, lib: dict[str, str], resources: set[str], data_sources: set[str]
) -> dict:
    package, package_version, provider_version = PROVIDERS[provider]
    wanted = resources | data_sources
    found: dict[tuple[str, str], tuple[JsModule, str]] = {}
    for folder, text in lib.items():
        if folder == "provider":
            continue
        m = TYPE_RE.search(text)
        if not m or m.group(1) not in wanted:
            continue
        mod = JsModule(folder, text)
        for cname, (base, _) in mod.classes.items():
            if base in ("cdktn.TerraformResource", "cdktn.TerraformDataSource"):
                kind = "resource" if base.endswith("Resource") else "data"
                found[(kind, m.group(1))] = (mod, cname)
    missing = sorted(
        [f"resource {r}" for r in resources if ("resource", r) not in found]
        + [f"data {d}" for d in data_sources if ("data", d) not in found]
    )
    if missing:
        raise SchemaError(f"not in {package}: " + ", ".join(missing))
    schema = {
        "provider": {"version": 0, "block": provider_block(JsModule("provider", lib["provider"]))},
        "resource_schemas": {},
        "data_source_schemas": {},
    }
    for (kind, name), (mod, cname) in sorted(found.items()):
        key = "resource_schemas" if kind == "resource" else "data_source_schemas"
        if (kind == "resource" and name in resources) or (kind == "data" and name in data_sources):
            schema[key][name] = {"version": 0, "block": mod.block(cname, name)}
    return {
        "format_version": "1.0",
        "generated_from": f"{package}=={package_version} (hashicorp/{provider} {provider_version})",
        "provider_version": provider_version,
        "provider_schemas": {f"registry.terraform.io/hashicorp/{provider}": schema},
    }


def fetch_wheel(provider: str, dest: Path) -> Path:
    package, version, _ = PROVIDERS[provider]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    subprocess.run(cmd, check=True)
    return next(dest.glob(package.replace("-", "_") + "-*.whl"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--provider", choices=sorted(PROVIDERS), default="google")
    ap.add_argument("--wheel", type=Path, help="the provider's cdktn wheel (default: pip download)")
    ap.add_argument("--tf-dir", type=Path, default=ROOT / "terraform")
    ap.add_argument("--types", nargs="*", help="extra resource types (data sources as data.NAME)")
    ap.add_argument(
        "--out", type=Path, help="default: tools/terraform_schema/<provider>-<version>.schema.json"
    )
    args = ap.parse_args(argv)
    out = args.out or HERE / f"{args.provider}-{PROVIDERS[args.provider][2]}.schema.json"
    resources, data_sources = used_types(args.tf_dir, args.provider)
    for t in args.types or []:
        (data_sources.add(t[5:]) if t.startswith("data.") else resources.add(t))
    with tempfile.TemporaryDirectory() as td:
        wheel = args.wheel or fetch_wheel(args.provider, Path(td))
        lib = load_lib(wheel)
    doc = generate(args.provider, lib, resources, data_sources)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    s = doc["provider_schemas"][f"registry.terraform.io/hashicorp/{args.provider}"]
    print(
        f"wrote {out}: {len(s['resource_schemas'])} resources, "
        f"{len(s['data_source_schemas'])} data sources"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
