"""The committed provider schemas, their generator, and the version pins agree."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import SCHEMA_TOOLS, TF_DIR

# Files read and parsed, no tool run: the unit tier, although the folder is end to end.
pytestmark = pytest.mark.unit

FAKE_JS = """
class DemoThing extends cdktn.TerraformResource {
    static tfResourceType = "demo_thing";
    // name - computed: false, optional: false, required: true
    _name;
    get name() {
        return this.getStringAttribute('name');
    }
    // tags - computed: true, optional: true, required: false
    _tags;
    get tags() {
        return cdktn.Fn.tolist(this.getListAttribute('tags'));
    }
    // labels - computed: true, optional: false, required: false
    _labels = new cdktn.StringMap(this, "labels");
    // uri - computed: true, optional: false, required: false
    get uri() {
        return this.getStringAttribute('uri');
    }
    // endpoints - computed: true, optional: false, required: false
    _endpoints = new DemoThingEndpointsList(this, "endpoints", false);
    // rule - computed: false, optional: true, required: false
    _rule = new DemoThingRuleList(this, "rule", true);
    // settings - computed: false, optional: false, required: true
    _settings = new DemoThingSettingsOutputReference(this, "settings");
    // timeouts - computed: false, optional: true, required: false
    _timeouts = new DemoThingTimeoutsOutputReference(this, "timeouts");
    synthesizeHclAttributes() {
        const attrs = {
            settings: {
                value: demoThingSettingsToHclTerraform(this._settings.internalValue),
                isBlock: true,
                type: "list",
                storageClassType: "DemoThingSettingsList",
            },
            timeouts: {
                value: demoThingTimeoutsToHclTerraform(this._timeouts.internalValue),
                isBlock: true,
                type: "struct",
                storageClassType: "DemoThingTimeouts",
            },
        };
    }
}
class DemoThingEndpointsOutputReference extends cdktn.ComplexObject {
    // port - computed: true, optional: false, required: false
    get port() {
        return this.getNumberAttribute('port');
    }
}
class DemoThingEndpointsList extends cdktn.ComplexList {
    get(index) {
        return new DemoThingEndpointsOutputReference(this.terraformResource, this.terraformAttribute, index, this.wrapsSet);
    }
}
class DemoThingRuleOutputReference extends cdktn.ComplexObject {
    // enabled - computed: false, optional: true, required: false
    get enabled() {
        return this.getBooleanAttribute('enabled');
    }
}
class DemoThingRuleList extends cdktn.ComplexList {
    get(index) {
        return new DemoThingRuleOutputReference(this.terraformResource, this.terraformAttribute, index, this.wrapsSet);
    }
}
class DemoThingSettingsOutputReference extends cdktn.ComplexObject {
    // tier - computed: false, optional: false, required: true
    get tier() {
        return this.getStringAttribute('tier');
    }
}
class DemoThingTimeoutsOutputReference extends cdktn.ComplexObject {
    // create - computed: false, optional: true, required: false
    get create() {
        return this.getStringAttribute('create');
    }
}
"""  # noqa: E501 - cdktn's output as generated: the parser reads each `new ...(...)` on one line


def test_generator_reads_cdktn_bindings(generator) -> None:
    block = generator.JsModule("demo", FAKE_JS).block("DemoThing", "demo_thing")
    a, b = block["attributes"], block["block_types"]
    assert a["name"] == {"type": "string", "required": True}
    assert a["tags"] == {"type": ["set", "string"], "optional": True, "computed": True}
    assert a["labels"] == {"type": ["map", "string"], "computed": True}
    assert a["uri"] == {"type": "string", "computed": True}
    assert a["endpoints"] == {"type": ["list", ["object", {"port": "number"}]], "computed": True}
    assert b["rule"]["nesting_mode"] == "set" and "max_items" not in b["rule"]
    assert b["rule"]["block"]["attributes"]["enabled"] == {"type": "bool", "optional": True}
    assert b["settings"] == {
        "nesting_mode": "list",
        "max_items": 1,
        "min_items": 1,
        "block": {"attributes": {"tier": {"type": "string", "required": True}}},
    }
    assert b["timeouts"]["nesting_mode"] == "single"


def _schema(provider: str) -> dict:
    path = (
        SCHEMA_TOOLS
        / f"{provider}-{ {'google': '8.7.0', 'archive': '2.8.1', 'time': '0.14.2'}[provider] }"
        ".schema.json"
    )
    ((src, s),) = json.loads(path.read_text())["provider_schemas"].items()
    assert src == f"registry.terraform.io/hashicorp/{provider}"
    return s


def test_committed_schemas_cover_every_type_the_configuration_uses(generator) -> None:
    for provider in ("google", "archive", "time"):
        resources, data_sources = generator.used_types(TF_DIR, provider)
        s = _schema(provider)
        assert resources <= set(s["resource_schemas"]), resources - set(s["resource_schemas"])
        assert data_sources <= set(s["data_source_schemas"]), data_sources - set(
            s["data_source_schemas"]
        )
    google = _schema("google")["resource_schemas"]
    ipc = google["google_sql_database_instance"]["block"]["block_types"]["settings"]["block"][
        "block_types"
    ]["ip_configuration"]
    assert "ssl_mode" in ipc["block"]["attributes"]


def test_version_pins_match_the_schemas(generator, offline) -> None:
    versions = (TF_DIR / "versions.tf").read_text()
    assert re.search(
        r'google\s*=\s*\{\s*source\s*=\s*"hashicorp/google"\s*version\s*=\s*"~> 8\.7\.0"', versions
    )
    assert re.search(
        r'archive\s*=\s*\{\s*source\s*=\s*"hashicorp/archive"\s*version\s*=\s*"~> 2\.8\.0"',
        versions,
    )
    assert generator.PROVIDERS["google"][2] == offline.STANDINS["google"] == "8.7.0"
    assert generator.PROVIDERS["archive"][2] == offline.STANDINS["archive"] == "2.8.1"
    assert re.search(
        r'time\s*=\s*\{\s*source\s*=\s*"hashicorp/time"\s*version\s*=\s*"~> 0\.14\.0"', versions
    )
    assert generator.PROVIDERS["time"][2] == offline.STANDINS["time"] == "0.14.2"


def test_readme_says_schema_level_not_a_plan() -> None:
    readme = (TF_DIR / "README.md").read_text()
    assert "schema-level" in readme and "not a plan" in readme


def test_readme_gcp_section_lists_manual_steps_cites_the_network_path_and_says_what_never_ran() -> (
    None
):
    readme = (TF_DIR / "README.md").read_text()
    assert "Manual steps that remain, all of them:" in readme
    assert "## What has never been run against Google" in readme
    # the network path is Google's documented one, cited
    assert (
        "https://cloud.google.com/vertex-ai/docs/pipelines/configure-private-service-connect"
        in readme
    )
    assert "https://cloud.google.com/vertex-ai/docs/general/psc-interfaces" in readme
    # every smaller item of issue 9 point 7 is fixed or explained
    for item in (
        "Direct VPC egress",
        "Noncurrent versions",
        "Artifact Registry cleanup",
        "Image by digest",
        "secret_data_wo",
        "Cloud SQL Auth Proxy checksum",
        "IAM propagation",
    ):
        assert item in readme, item
