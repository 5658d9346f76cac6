"""Google's own API description as the offline oracle for every request body we send.

The ``google-api-python-client`` package (dev group) ships Google's discovery documents
(``googleapiclient/discovery_cache/documents/<api>.<version>.json``). :func:`validate` checks a
JSON request body against the schema a method takes, the way the server would read it:

- unknown fields (a renamed field is an unknown one) and fields the API marks output-only
  (``readOnly``: Google ignores them, so sending one means we misread the API);
- JSON types: string / integer / number / boolean / object / array / any, ``$ref``s, maps
  (``additionalProperties``), with the JSON mapping of ``format`` (``int64``/``uint64`` travel
  as strings, ``int32`` as numbers, ``google-datetime`` / ``google-duration`` / ``byte`` as
  strings);
- ``enum`` values;
- fields whose description says "Required." (checked where their parent object is sent);
- constraints written only in prose that matter to us (:data:`DESCRIPTION_RULES`):
  ``PipelineJob.templateUri`` "only uri from Vertex Template Registry & Gallery is supported",
  i.e. an Artifact Registry KFP URL ``https://REGION-kfp.pkg.dev/...``.

It is a test helper (tests/ only): the code we ship never needs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

KFP_TEMPLATE_URI = re.compile(
    r"^https://[a-z0-9-]+-kfp\.pkg\.dev/[a-z0-9-]+/[a-z0-9-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.:=-]+$"
)


def _template_uri(value: Any) -> str | None:
    if not KFP_TEMPLATE_URI.match(str(value)):
        return (
            "templateUri must come from the Vertex Template Registry (an Artifact Registry "
            f"KFP URL https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG), got {value!r}"
        )
    return None


DESCRIPTION_RULES: dict[tuple[str, str], tuple[str, Callable[[Any], str | None]]] = {
    # (schema id, field) -> (text that must still be in Google's description, check)
    ("GoogleCloudAiplatformV1PipelineJob", "templateUri"): (
        "only uri from Vertex Template Registry & Gallery is supported",
        _template_uri,
    ),
}
"""Prose constraints; the quoted text is asserted to be present, so a change of Google's
wording makes the rule's test fail rather than the rule silently drift."""


class RequestInvalid(AssertionError):
    """The body does not match Google's description; ``errors`` lists every finding."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@cache
def document(api: str, version: str) -> dict[str, Any]:
    """The discovery document of ``api`` ``version`` (e.g. ``aiplatform``, ``v1``)."""
    return json.loads((DOCUMENTS / f"{api}.{version}.json").read_text())


def method(api: str, version: str, method_id: str) -> dict[str, Any]:
    """A method by its id, e.g. ``aiplatform.projects.locations.pipelineJobs.create``."""

    def walk(resources: dict[str, Any]) -> dict[str, Any] | None:
        for resource in resources.values():
            for m in resource.get("methods", {}).values():
                if m["id"] == method_id:
                    return m
            found = walk(resource.get("resources", {}))
            if found:
                return found
        return None

    found = walk(document(api, version).get("resources", {}))
    if not found:
        raise KeyError(f"{api}.{version} has no method {method_id}")
    return found


def request_schema(api: str, version: str, method_id: str) -> str:
    """The schema id of the body ``method_id`` takes."""
    return method(api, version, method_id)["request"]["$ref"]


def _required(description: str) -> bool:
    return description.lstrip().startswith("Required.")


_INT_FORMATS = {"int32", "uint32"}
_STRING_INT_FORMATS = {"int64", "uint64"}


def _check(
    doc: dict[str, Any], spec: dict[str, Any], value: Any, path: str, errors: list[str]
) -> None:
    if "$ref" in spec:
        _check_object(doc, spec["$ref"], value, path, errors)
        return
    kind, fmt = spec.get("type"), spec.get("format")
    if kind == "any":
        return
    if kind == "string":
        if not isinstance(value, str):
            errors.append(
                f"{path}: expected a string{f' ({fmt})' if fmt else ''}, "
                f"got {type(value).__name__} {value!r}"
            )
            return
        if fmt in _STRING_INT_FORMATS and not re.fullmatch(r"-?\d+", value):
            errors.append(f"{path}: {fmt} travels as a decimal string, got {value!r}")
        if "enum" in spec and value not in spec["enum"]:
            errors.append(f"{path}: {value!r} is not one of {spec['enum']}")
    elif kind == "integer":
        if fmt in _STRING_INT_FORMATS and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(
                f"{path}: expected an integer ({fmt}), got {type(value).__name__} {value!r}"
            )
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number, got {type(value).__name__} {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {type(value).__name__} {value!r}")
    elif kind == "array":
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(doc, spec["items"], item, f"{path}[{i}]", errors)
    elif kind == "object":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        if "additionalProperties" in spec:
            for key, item in value.items():
                _check(doc, spec["additionalProperties"], item, f"{path}[{key!r}]", errors)
        elif "properties" in spec:
            _check_properties(doc, spec, value, path, errors, spec.get("id", path))
    else:
        errors.append(f"{path}: the document gives no type I know ({kind!r})")


def _check_object(
    doc: dict[str, Any], schema_id: str, value: Any, path: str, errors: list[str]
) -> None:
    schema = doc["schemas"][schema_id]
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {schema_id} object, got {type(value).__name__}")
        return
    _check_properties(doc, schema, value, path, errors, schema_id)


def _check_properties(
    doc: dict[str, Any],
    schema: dict[str, Any],
    value: dict[str, Any],
    path: str,
    errors: list[str],
    schema_id: str,
) -> None:
    properties = schema.get("properties", {})
    for key, item in value.items():
        here = f"{path}.{key}" if path else key
        if key not in properties:
            errors.append(
                f"{here}: unknown field of {schema_id} (known: {', '.join(sorted(properties))})"
            )
            continue
        spec = properties[key]
        if spec.get("readOnly"):
            errors.append(f"{here}: output-only field of {schema_id} (the server ignores it)")
            continue
        _check(doc, spec, item, here, errors)
        rule = DESCRIPTION_RULES.get((schema_id, key))
        if rule:
            quoted, check = rule
            if quoted not in spec.get("description", ""):
                errors.append(
                    f"{here}: Google's description no longer says {quoted!r}: "
                    "review the rule in tests/gcp_discovery.py"
                )
            problem = check(item)
            if problem:
                errors.append(f"{here}: {problem}")
    for key, spec in properties.items():
        if _required(spec.get("description", "")) and key not in value and not spec.get("readOnly"):
            here = f"{path}.{key}" if path else key
            errors.append(f'{here}: required by {schema_id} ("Required.") but missing')


def validate(api: str, version: str, schema_id: str, body: Any) -> None:
    """Raise :class:`RequestInvalid` listing every way ``body`` departs from ``schema_id``."""
    doc = document(api, version)
    if schema_id not in doc["schemas"]:
        raise KeyError(f"{api}.{version} has no schema {schema_id}")
    errors: list[str] = []
    _check_object(doc, schema_id, body, "", errors)
    if errors:
        raise RequestInvalid(errors)


def validate_request(api: str, version: str, method_id: str, body: Any) -> None:
    """Validate ``body`` as the request of ``method_id`` (its ``request.$ref`` schema)."""
    validate(api, version, request_schema(api, version, method_id), body)
