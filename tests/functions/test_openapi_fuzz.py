"""The published OpenAPI document is current, and drives fuzzing of both functions.

The functions run as real functions-framework processes (``local_functions``) on the session's
PostgreSQL and model server. Schema-valid requests must be answered (never 5xx) with exactly
their rows logged; schema-violating requests must be refused with a 4xx JSON error naming a
field, and must write nothing (the row counts prove it).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings

from functions.openapi import DOCUMENT_PATH, build_document, render
from potability.features import FEATURE_NAMES, FEATURES
from potability.local import function_servers as local

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import APIOperation

FUZZ = hyp_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@functools.cache
def _operation(path: str) -> APIOperation:
    """The document's POST ``path``, read when a fuzz test first asks: schemathesis is
    imported then, not when the unit tier collects this module (seconds of imports)."""
    import schemathesis

    return schemathesis.openapi.from_path(DOCUMENT_PATH)[path]["POST"]


def _cases(path: str, positive: bool) -> Any:
    from schemathesis import GenerationMode

    mode = GenerationMode.POSITIVE if positive else GenerationMode.NEGATIVE
    return _operation(path).as_strategy(mode)


def test_published_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text() == render(), (
        "functions/openapi.yaml is stale: python -m functions.openapi > functions/openapi.yaml"
    )


def test_the_published_document_is_valid_openapi_without_yaml_anchors() -> None:
    from openapi_spec_validator import validate

    text = DOCUMENT_PATH.read_text()
    assert "&id0" not in text and "*id0" not in text  # PyYAML anchors: plain objects instead
    validate(yaml.safe_load(text))  # raises with the first violation of the OpenAPI schema


def test_errors_are_documented_as_problem_details() -> None:
    document = build_document()
    answers = [
        (path, status, answer)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for status, answer in operation.get("responses", {}).items()
        if status.startswith(("4", "5"))
    ]
    assert answers
    for path, status, answer in answers:
        # the status page's outage is also a readable page for a browser (functions/status.py)
        html = ["text/html"] if (path, status) == ("/status", "503") else []
        assert list(answer["content"]) == ["application/problem+json", *html]
    schema = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors", "error", "field"} <= set(
        schema["required"]
    )
    entry = document["components"]["schemas"]["ProblemEntry"]
    assert set(entry["properties"]) == {"detail", "field", "pointer"}


def test_document_feature_schema_is_the_one_feature_schema() -> None:
    """The readings and samples of the document are generated from potability/features.py:
    each measurement a number in its range or null, all nine required, nothing else allowed
    (but when a reading was measured)."""
    published = yaml.safe_load(DOCUMENT_PATH.read_text())["components"]["schemas"]
    reading, sample = published["Reading"], published["Sample"]
    assert reading["additionalProperties"] is False and sample["additionalProperties"] is False
    assert reading["required"] == list(FEATURE_NAMES)
    assert set(sample["required"]) == {*FEATURE_NAMES, "potability", "sample_id", "sampled_at"}
    assert list(reading["properties"]) == [*FEATURE_NAMES, "measured_at"]
    assert reading["properties"]["measured_at"]["type"] == ["string", "null"]
    assert reading["properties"]["measured_at"]["format"] == "date-time"
    for feature in FEATURES:
        for model in (reading, sample):
            assert model["properties"][feature.name] == {
                "type": ["number", "null"],
                "minimum": feature.minimum,
                "maximum": feature.maximum,
                "description": f"{feature.description} ({feature.unit})",
            }
    assert build_document()["openapi"].startswith("3.")


def test_the_status_function_is_in_the_document() -> None:
    status = build_document()["paths"]["/status"]["get"]
    assert [(p["name"], p["in"], p["schema"]["enum"]) for p in status["parameters"]] == [
        ("format", "query", ["html", "json"])
    ]
    page = status["responses"]["200"]["content"]
    assert set(page) == {"text/html", "application/json"}
    assert page["application/json"]["schema"] == {"$ref": "#/components/schemas/Status"}
    assert set(status["responses"]) == {"200", "400", "405", "503"}


def _counts(conn: Any) -> tuple[int, int]:
    conn.rollback()
    cur = conn.cursor()
    cur.execute(
        "SELECT (SELECT count(*) FROM water.water_inferences), "
        "(SELECT count(*) FROM water.water_potability)"
    )
    result = tuple(cur.fetchone())
    conn.rollback()
    return result  # type: ignore[return-value]


def _rows_for(conn: Any, request_id: str) -> int:
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM water.water_inferences WHERE request_id = %s", (request_id,))
    value = cur.fetchone()[0]
    conn.rollback()
    return value


def _refused(case: Any, response: Any, before: tuple[int, int], conn: Any) -> None:
    assert 400 <= response.status_code < 500, (
        response.status_code,
        response.text,
        case.headers,
        case.media_type,
        case.body,
    )
    body = response.json()
    assert body["field"] and body["error"]
    assert _counts(conn) == before, "a refused request wrote something"


def test_fuzz_predict_valid_requests_are_answered_and_logged(local_functions, clean_db) -> None:
    _, env = local_functions

    @FUZZ
    @given(case=_cases("/predict", positive=True))
    def run(case: Any) -> None:
        before = _counts(clean_db)
        response = case.call(base_url=env["PREDICT_URL"])
        assert response.status_code < 500, response.text
        key = (case.headers or {}).get("Idempotency-Key")
        if key is not None and case.body.get("request_id", key) != key:
            # What the schema cannot say: header and field, when both sent, must agree.
            assert response.status_code == 400 and response.json()["field"] == "request_id"
            assert _counts(clean_db) == before
            return
        if response.status_code == 409:  # a generated request id reused for other readings
            assert _counts(clean_db) == before
            return
        if response.status_code == 400:
            # What the schema cannot say: measured_at in the future or before 1970.
            assert response.json()["field"].endswith("measured_at"), response.text
            assert _counts(clean_db) == before
            return
        assert response.status_code == 200, response.text
        body = response.json()
        readings = case.body.get("readings") or [case.body["reading"]]
        assert len(body["predictions"]) == len(readings)
        assert _rows_for(clean_db, body["request_id"]) == len(readings)

    run()


def test_fuzz_predict_invalid_requests_are_refused_and_write_nothing(
    local_functions, clean_db
) -> None:
    _, env = local_functions

    @FUZZ
    @given(case=_cases("/predict", positive=False))
    def run(case: Any) -> None:
        before = _counts(clean_db)
        _refused(case, case.call(base_url=env["PREDICT_URL"]), before, clean_db)

    run()


def _auth(home: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {(home / local.TOKEN_FILE).read_text().strip()}"}


def test_fuzz_add_sample_valid_requests(local_functions, clean_db) -> None:
    home, env = local_functions
    auth = _auth(home)

    @FUZZ
    @given(case=_cases("/add_sample", positive=True))
    def run(case: Any) -> None:
        before = _counts(clean_db)
        response = case.call(base_url=env["ADD_SAMPLE_URL"], headers=auth)
        assert response.status_code < 500, response.text
        if response.status_code in (200, 201):
            body = response.json()
            assert _counts(clean_db)[1] == before[1] + body["recorded"]
            return
        # What the schema cannot say: ids already used with other values (409), and
        # sampled_at in the future or before 1970 (400 naming sampled_at).
        assert response.status_code in (400, 409), response.text
        if response.status_code == 400:
            assert response.json()["field"].endswith("sampled_at"), response.text
        assert _counts(clean_db) == before

    run()


def test_fuzz_add_sample_invalid_requests_are_refused(local_functions, clean_db) -> None:
    home, env = local_functions
    auth = _auth(home)

    @FUZZ
    @given(case=_cases("/add_sample", positive=False))
    def run(case: Any) -> None:
        before = _counts(clean_db)
        response = case.call(base_url=env["ADD_SAMPLE_URL"], headers=auth)
        from schemathesis.core.parameters import ParameterLocation

        if not case.meta.is_negative_at(ParameterLocation.BODY):
            # Only the (generated) Authorization header was broken, and we send a valid one.
            assert response.status_code < 500, response.text
            return
        _refused(case, response, before, clean_db)

    run()


def test_fuzz_add_sample_without_credentials_writes_nothing(local_functions, clean_db) -> None:
    _, env = local_functions

    @hyp_settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_cases("/add_sample", positive=True))
    def run(case: Any) -> None:
        before = _counts(clean_db)
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        response = case.call(base_url=env["ADD_SAMPLE_URL"])
        assert response.status_code == 401
        assert _counts(clean_db) == before

    run()
