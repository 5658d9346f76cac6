#!/usr/bin/env python3
"""Schema-only stand-in for a Terraform provider (hashicorp/google, hashicorp/archive).

Serves a schema file written by ``generate_schema.py`` over Terraform's plugin
protocol (v6, through the ``tf`` package from PyPI), so that ``terraform
validate`` and ``terraform test`` with ``mock_provider`` check the configuration
against the real provider's arguments: unknown arguments, missing required ones,
wrong block nesting, bad references and type errors are all reported by
Terraform itself.  It manages nothing: every create/read/apply is refused, so it
can only be used with ``validate`` and with mocked providers in ``terraform test``.

Run it with the ``.venv-tf`` interpreter (``tools/setup-tf-tools.sh``):
    standin_provider.py SCHEMA.json  (Terraform starts it; it prints the handshake)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.iface import Provider
from tf.utils import Diagnostics

NESTING = {
    "single": pb.Schema.NestedBlock.NestingMode.SINGLE,
    "list": pb.Schema.NestedBlock.NestingMode.LIST,
    "set": pb.Schema.NestedBlock.NestingMode.SET,
    "map": pb.Schema.NestedBlock.NestingMode.MAP,
    "group": pb.Schema.NestedBlock.NestingMode.GROUP,
}


def block_pb(block: dict) -> pb.Schema.Block:
    attrs = []
    for name, a in sorted(block.get("attributes", {}).items()):
        attrs.append(
            pb.Schema.Attribute(
                name=name,
                type=json.dumps(a["type"]).encode(),
                required=bool(a.get("required")),
                optional=bool(a.get("optional")),
                computed=bool(a.get("computed")),
                sensitive=bool(a.get("sensitive")),
            )
        )
    blocks = []
    for name, b in sorted(block.get("block_types", {}).items()):
        blocks.append(
            pb.Schema.NestedBlock(
                type_name=name,
                block=block_pb(b["block"]),
                nesting=NESTING[b["nesting_mode"]],
                min_items=b.get("min_items", 0),
                max_items=b.get("max_items", 0),
            )
        )
    return pb.Schema.Block(attributes=attrs, block_types=blocks)


class _Schema:
    """Duck-types tf.schema.Schema: only to_pb() is used by the servicer."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.attributes: list = []
        self.block_types: list = []

    def to_pb(self) -> pb.Schema:
        return pb.Schema(version=self.doc.get("version", 0), block=block_pb(self.doc["block"]))


def _kind(name: str, doc: dict, data: bool) -> type:
    def refuse(self, ctx, *args):
        ctx.diagnostics.add_error(
            f"{name}: schema-only stand-in provider",
            "This provider only serves the schema (for validate and mocked tests); "
            "it cannot manage real objects.",
        )

    methods = {
        "__init__": lambda self, provider: None,
        "get_name": classmethod(lambda cls: name),
        "get_schema": classmethod(lambda cls: _Schema(doc)),
        "validate": lambda self, diags, type_name, config: None,
        "read": refuse,
    }
    if not data:
        methods.update(create=refuse, update=refuse, delete=refuse)
    return type(name, (), methods)


class StandinProvider(Provider):
    def __init__(self, schema_file: Path):
        full = json.loads(schema_file.read_text())
        ((self.source, self.schema),) = full["provider_schemas"].items()

    def get_model_prefix(self) -> str:
        return ""

    def full_name(self) -> str:
        return self.source

    def get_provider_schema(self, diags: Diagnostics) -> _Schema:
        return _Schema(self.schema["provider"])

    def validate_config(self, diags: Diagnostics, config: dict) -> None:
        pass

    def configure_provider(self, diags: Diagnostics, config: dict) -> None:
        pass

    def get_data_sources(self) -> list:
        return [
            _kind(n, d, True) for n, d in sorted(self.schema.get("data_source_schemas", {}).items())
        ]

    def get_resources(self) -> list:
        return [
            _kind(n, d, False) for n, d in sorted(self.schema.get("resource_schemas", {}).items())
        ]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runner.run_provider(StandinProvider(Path(sys.argv[1])), sys.argv[2:])


if __name__ == "__main__":
    main()
