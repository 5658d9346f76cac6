"""Every class of bad input -> a 4xx JSON error naming the field, never a 500, nothing written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fn_support import count, matches_document, reading, sample

from functions.http import ApiError, problem
from functions.validation import ERRORS_MAX, parse_predict, parse_samples, parse_timestamp

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def raw(
    client: Any,
    path: str,
    data: bytes | str,
    auth: dict[str, str],
    content_type: str = "application/json",
    method: str = "POST",
) -> Any:
    return client.open(path, method=method, data=data, content_type=content_type, headers=auth)


def predict_body(**changes: Any) -> dict[str, Any]:
    return {"sensor_id": "plant-7", "readings": [reading(), reading()], **changes}


PREDICT_CASES: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"sensor_id": "a", "readings": [', 400, "body"),
    ("not UTF-8", b'{"sensor_id": "\xff"}', 400, "body"),
    ("empty body", b"", 400, "body"),
    ("JSON array", b"[]", 400, "body"),
    ("JSON string", b'"hello"', 400, "body"),
    ("NaN literal", b'{"sensor_id": "a", "reading": {"ph": NaN}}', 400, "body"),
    ("Infinity literal", b'{"sensor_id": "a", "reading": {"ph": -Infinity}}', 400, "body"),
    ("duplicate key", b'{"sensor_id": "a", "sensor_id": "b"}', 400, "sensor_id"),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, 400, "body"),
    ("NaN string", predict_body(readings=[reading(), reading(ph="NaN")]), 400, "readings[1].ph"),
    (
        "Infinity string",
        predict_body(reading=reading(Solids="Infinity"), readings=None),
        400,
        "reading.Solids",
    ),
    ("number as string", predict_body(readings=[reading(ph="7.1")]), 400, "readings[0].ph"),
    (
        "boolean value",
        predict_body(readings=[reading(Turbidity=True)]),
        400,
        "readings[0].Turbidity",
    ),
    (
        "out of range",
        predict_body(readings=[reading(), reading(), reading(ph=14.5)]),
        400,
        "readings[2].ph",
    ),
    ("negative", predict_body(readings=[reading(Hardness=-1)]), 400, "readings[0].Hardness"),
    (
        "huge number",
        json.dumps({"sensor_id": "a", "reading": reading(ph=12345.0)})
        .encode()
        .replace(b"12345.0", b"1e400"),
        400,
        "reading.ph",
    ),
    (
        "huge integer",
        json.dumps({"sensor_id": "a", "reading": reading(ph=12345.0)})
        .encode()
        .replace(b"12345.0", b"9" * 5000),
        400,
        "reading.ph",
    ),
    (
        "missing feature",
        predict_body(readings=[{k: v for k, v in reading().items() if k != "Sulfate"}]),
        400,
        "readings[0].Sulfate",
    ),
    ("unknown feature", predict_body(readings=[reading(colour=1.0)]), 400, "readings[0].colour"),
    ("unknown field", predict_body(extra=1), 400, "extra"),
    ("reading not object", predict_body(readings=[reading(), [1, 2]]), 400, "readings[1]"),
    ("readings not array", predict_body(readings={"ph": 1}), 400, "readings"),
    ("empty batch", predict_body(readings=[]), 400, "readings"),
    ("no readings", {"sensor_id": "a"}, 400, "readings"),
    ("both shapes", predict_body(reading=reading()), 400, "readings"),
    ("no sensor", {"readings": [reading()]}, 400, "sensor_id"),
    ("sensor not string", predict_body(sensor_id=7), 400, "sensor_id"),
    ("sensor empty", predict_body(sensor_id=""), 400, "sensor_id"),
    ("sensor too long", predict_body(sensor_id="s" * 129), 400, "sensor_id"),
    ("sensor control char", predict_body(sensor_id="a\u0000b"), 400, "sensor_id"),
    ("sensor lone surrogate", b'{"sensor_id": "a\\ud800", "reading": {}}', 400, "sensor_id"),
    ("sensor bidi override", predict_body(sensor_id="plant-\u202e7-a"), 400, "sensor_id"),
    ("sensor zero-width space", predict_body(sensor_id="plant\u200b-7"), 400, "sensor_id"),
    ("request id with spaces", predict_body(request_id="a b"), 400, "request_id"),
    ("request id not string", predict_body(request_id=12), 400, "request_id"),
]


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if v is not None or k != "readings"}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_bad_input(client, clean_db, fn_settings, body, status, field) -> None:
    data = _encode(body)
    if len(data) > fn_settings.max_body_bytes:
        status, field = 413, "body"
    response = raw(client, "/predict", data, {})
    assert response.status_code == status, response.json
    assert response.json["field"] == field
    assert response.json["error"]
    assert count(clean_db, "water_inferences") == 0


def test_a_megabyte_key_is_not_echoed_back(client, clean_db, fn_settings) -> None:
    """An unknown key is named in the error, cut to 64 characters: a 1 MB key once came
    back whole in the answer (and in the request log line)."""
    key = "k" * (fn_settings.max_body_bytes // 2)
    response = raw(client, "/predict", json.dumps(predict_body(**{key: 1})).encode(), {})
    assert response.status_code == 400
    assert response.json["field"].startswith("kkk") and len(response.json["field"]) <= 64
    assert len(response.data) < 1000
    assert count(clean_db, "water_inferences") == 0


SAMPLE_CASES: list[tuple[str, Any, int, str]] = [
    ("potability bool", sample("s1", potability=True), 400, "potability"),
    ("potability 2", sample("s1", potability=2), 400, "potability"),
    ("potability float", sample("s1", potability=1.0), 400, "potability"),
    ("potability string", sample("s1", potability="1"), 400, "potability"),
    (
        "potability missing",
        {k: v for k, v in sample("s1").items() if k != "potability"},
        400,
        "potability",
    ),
    (
        "sample id missing",
        {k: v for k, v in sample("s1").items() if k != "sample_id"},
        400,
        "sample_id",
    ),
    ("sample id bad", sample("bad id!"), 400, "sample_id"),
    (
        "sampled_at missing",
        {k: v for k, v in sample("s1").items() if k != "sampled_at"},
        400,
        "sampled_at",
    ),
    ("sampled_at no zone", sample("s1", sampled_at="2024-05-01T09:30:00"), 400, "sampled_at"),
    ("sampled_at not a date", sample("s1", sampled_at="yesterday"), 400, "sampled_at"),
    ("sampled_at number", sample("s1", sampled_at=1714555800), 400, "sampled_at"),
    ("sampled_at month 13", sample("s1", sampled_at="2024-13-01T00:00:00Z"), 400, "sampled_at"),
    ("sampled_at future", sample("s1", sampled_at="2999-01-01T00:00:00Z"), 400, "sampled_at"),
    ("feature out of range", sample("s1", Chloramines=51), 400, "Chloramines"),
    ("unknown field", sample("s1", lab="x"), 400, "lab"),
    ("sensor control char", sample("s1", sensor_id="\n"), 400, "sensor_id"),
    ("empty batch", {"samples": []}, 400, "samples"),
    ("batch not array", {"samples": "x"}, 400, "samples"),
    ("batch extra field", {"samples": [sample("s1")], "x": 1}, 400, "x"),
    ("batch item bad", {"samples": [sample("s1"), 5]}, 400, "samples[1]"),
    ("batch too large", {"samples": [sample(f"s{i}") for i in range(51)]}, 413, "samples"),
    ("NaN string", {"samples": [sample("s1", ph="NaN")]}, 400, "samples[0].ph"),
    ("malformed JSON", b"{", 400, "body"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in SAMPLE_CASES], ids=[c[0] for c in SAMPLE_CASES]
)
def test_add_sample_bad_input(client, clean_db, auth, body, status, field) -> None:
    response = raw(client, "/add_sample", _encode(body), auth)
    assert response.status_code == status, response.json
    assert response.json["field"] == field
    assert count(clean_db, "water_potability") == 0


@pytest.mark.parametrize("path", ["/predict", "/add_sample"])
def test_wrong_content_type_method_and_size(client, clean_db, auth, fn_settings, path) -> None:
    body = json.dumps(predict_body()).encode()
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
    ):
        response = raw(client, path, body, auth, content_type=content_type)
        assert response.status_code == 415
        assert response.json["field"] == "Content-Type"
    response = client.get(path, headers=auth)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    huge = b'{"sensor_id": "' + b"a" * (fn_settings.max_body_bytes + 10) + b'"}'
    response = raw(client, path, huge, auth)
    assert response.status_code == 413
    assert response.json["field"] == "body"
    assert count(clean_db, "water_inferences") == 0
    assert count(clean_db, "water_potability") == 0


def test_timestamps() -> None:
    assert parse_timestamp("2024-05-01T09:30:00Z", "t", NOW) == datetime(
        2024, 5, 1, 9, 30, tzinfo=UTC
    )
    assert parse_timestamp("2024-05-01t11:30:00.1234567+02:00", "t", NOW) == datetime(
        2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC
    )
    assert parse_timestamp((NOW + timedelta(minutes=4)).isoformat(), "t", NOW) > NOW
    for bad in (
        "2024-05-01",
        "2024-05-01T09:30Z",
        "2024-05-01T25:00:00Z",
        "1969-12-31T23:59:59Z",
        "2024-05-01T09:30:00+24:00",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        (NOW + timedelta(minutes=6)).isoformat(),
    ):
        with pytest.raises(ApiError) as err:
            parse_timestamp(bad, "t", NOW)
        assert err.value.field == "t" and err.value.status == 400


def test_an_error_is_problem_details_pointing_into_the_body(client, clean_db) -> None:
    """RFC 9457: type, title, status, detail, instance, and errors[] with an RFC 6901 pointer
    to the value at fault; the former members (error, field) stay for clients."""
    body = predict_body(readings=[reading(), reading(ph=14.5)])
    response = raw(client, "/predict", json.dumps(body).encode(), {})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert (problem["type"], problem["title"], problem["status"]) == (
        "about:blank",
        "Bad Request",
        400,
    )
    assert problem["instance"] == "/predict"
    assert problem["detail"] == problem["error"]
    assert problem["field"] == "readings[1].ph"
    assert problem["errors"] == [
        {"detail": problem["detail"], "field": "readings[1].ph", "pointer": "/readings/1/ph"}
    ]


@pytest.mark.parametrize(
    ("field", "pointer"),
    [
        ("body", ""),
        ("sensor_id", "/sensor_id"),
        ("readings[12].Solids", "/readings/12/Solids"),
        ("samples[0].sampled_at", "/samples/0/sampled_at"),
        ("a/b~c", "/a~1b~0c"),
        ("Authorization", None),
        ("database", None),
    ],
)
def test_fields_become_json_pointers(field: str, pointer: str | None) -> None:
    from functions.http import json_pointer

    assert json_pointer(field) == pointer


# --- every error at once (issue 30) ----------------------------------------------------------


def test_every_bad_field_is_listed_at_once(client, clean_db) -> None:
    """One answer names every field at fault, each with its pointer and its own message, in
    document order: the object's unknown fields, then missing ones, then wrong values; the
    first is still ``field`` / ``error``."""
    body = {
        "sensor_id": "plant-\u202e7",
        "colour": "blue",
        "readings": [
            reading(),
            {**{k: v for k, v in reading(ph=14.5).items() if k != "Sulfate"}, "x": 1},
            reading(Turbidity=True, Solids="NaN"),
            [1, 2],
        ],
    }
    response = raw(client, "/predict", json.dumps(body).encode(), {})
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    matches_document("Problem", response.json)
    errors = [(e["field"], e.get("pointer"), e["detail"]) for e in response.json["errors"]]
    assert errors == [
        ("colour", "/colour", "unknown field"),
        (
            "sensor_id",
            "/sensor_id",
            "must not contain control or format characters (bidi overrides, zero-width) "
            "or lone surrogates",
        ),
        ("readings[1].x", "/readings/1/x", "unknown field"),
        (
            "readings[1].Sulfate",
            "/readings/1/Sulfate",
            "is required (send null for a missing measurement)",
        ),
        ("readings[1].ph", "/readings/1/ph", "14.5 pH is outside the valid range [0, 14]"),
        ("readings[2].Solids", "/readings/2/Solids", "must be a number or null, got str"),
        ("readings[2].Turbidity", "/readings/2/Turbidity", "must be a number or null, got bool"),
        ("readings[3]", "/readings/3", "must be a JSON object"),
    ]
    assert (response.json["field"], response.json["error"]) == ("colour", "unknown field")
    assert response.json["detail"] == "unknown field"
    assert count(clean_db, "water_inferences") == 0


def test_every_bad_sample_is_listed_at_once(client, clean_db, auth) -> None:
    body = {
        "samples": [
            sample("s1"),
            sample("s1", potability=True),
            sample("bad id!", sampled_at="2999-01-01T00:00:00Z", Chloramines=51),
        ]
    }
    response = raw(client, "/add_sample", json.dumps(body).encode(), auth)
    assert response.status_code == 400
    assert [(e["field"], e["detail"]) for e in response.json["errors"]] == [
        ("samples[1].sample_id", "repeats samples[0].sample_id"),
        ("samples[1].potability", "must be the integer 0 or 1"),
        ("samples[2].sample_id", ID_RULE),
        ("samples[2].sampled_at", "is in the future"),
        ("samples[2].Chloramines", "51 ppm is outside the valid range [0, 50]"),
    ]
    assert count(clean_db, "water_potability") == 0


ID_RULE = (
    "must be 1 to 128 characters of letters, digits and . _ : - (starting with a letter or digit)"
)
TEXT_RULE = (
    "must not contain control or format characters (bidi overrides, zero-width) or lone surrogates"
)
NOT_OBJECT = "must be a JSON object"

PREDICT_RULES: list[tuple[str, Any, str | None, str, str]] = [
    ("not an object", [], None, "body", NOT_OBJECT),
    ("unknown field", {"sensor_id": "a", "reading": reading(), "x": 1}, None, "x", "unknown field"),
    (
        "empty key",
        {"sensor_id": "a", "reading": reading(), "": 1},
        None,
        "body",
        "unknown field ''",
    ),
    ("sensor missing", {"reading": reading()}, None, "sensor_id", "is required"),
    (
        "sensor not text",
        {"sensor_id": 7, "reading": reading()},
        None,
        "sensor_id",
        "must be a string",
    ),
    (
        "sensor too long",
        {"sensor_id": "s" * 129, "reading": reading()},
        None,
        "sensor_id",
        "must be 1 to 128 characters",
    ),
    ("sensor Cc", {"sensor_id": "a\x07", "reading": reading()}, None, "sensor_id", TEXT_RULE),
    ("sensor Cf", {"sensor_id": "a\u200bb", "reading": reading()}, None, "sensor_id", TEXT_RULE),
    ("sensor Cs", {"sensor_id": "a\ud800", "reading": reading()}, None, "sensor_id", TEXT_RULE),
    (
        "request id",
        {"sensor_id": "a", "reading": reading(), "request_id": "a b"},
        None,
        "request_id",
        ID_RULE,
    ),
    ("header", {"sensor_id": "a", "reading": reading()}, "a b", "Idempotency-Key", ID_RULE),
    (
        "header and field differ",
        {"sensor_id": "a", "reading": reading(), "request_id": "k1"},
        "k2",
        "request_id",
        "differs from the Idempotency-Key header",
    ),
    (
        "neither shape",
        {"sensor_id": "a"},
        None,
        "readings",
        "send exactly one of 'reading' or 'readings'",
    ),
    (
        "both shapes",
        {"sensor_id": "a", "reading": reading(), "readings": [reading()]},
        None,
        "readings",
        "send exactly one of 'reading' or 'readings'",
    ),
    (
        "readings not a list",
        {"sensor_id": "a", "readings": {}},
        None,
        "readings",
        "must be a JSON array",
    ),
    ("readings empty", {"sensor_id": "a", "readings": []}, None, "readings", "must not be empty"),
    ("reading not an object", {"sensor_id": "a", "reading": 3}, None, "reading", NOT_OBJECT),
    (
        "measurement missing",
        {"sensor_id": "a", "reading": {k: v for k, v in reading().items() if k != "ph"}},
        None,
        "reading.ph",
        "is required (send null for a missing measurement)",
    ),
    (
        "measurement text",
        {"sensor_id": "a", "reading": reading(ph="7")},
        None,
        "reading.ph",
        "must be a number or null, got str",
    ),
    (
        "measurement infinite",
        {"sensor_id": "a", "reading": reading(ph=float("inf"))},
        None,
        "reading.ph",
        "must be finite (use null for a missing value)",
    ),
    (
        "measurement below",
        {"sensor_id": "a", "reading": reading(Hardness=-0.5)},
        None,
        "reading.Hardness",
        "-0.5 mg/L is outside the valid range [0, 2000]",
    ),
    (
        "measurement above",
        {"sensor_id": "a", "reading": reading(Solids=100001)},
        None,
        "reading.Solids",
        "100001 ppm is outside the valid range [0, 100000]",
    ),
    (
        "measured_at not text",
        {"sensor_id": "a", "reading": reading(measured_at=5)},
        None,
        "reading.measured_at",
        "must be an RFC 3339 date-time string",
    ),
    (
        "measured_at no zone",
        {"sensor_id": "a", "reading": reading(measured_at="2024-05-01T09:30:00")},
        None,
        "reading.measured_at",
        "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T09:30:00Z",
    ),
    (
        "measured_at impossible",
        {"sensor_id": "a", "reading": reading(measured_at="2024-02-30T09:30:00Z")},
        None,
        "reading.measured_at",
        "is not a valid date-time",
    ),
    (
        "measured_at before 1970",
        {"sensor_id": "a", "reading": reading(measured_at="1969-12-31T23:59:59Z")},
        None,
        "reading.measured_at",
        "must not be before 1970-01-01",
    ),
    (
        "measured_at future",
        {"sensor_id": "a", "reading": reading(measured_at="2025-01-01T00:06:00Z")},
        None,
        "reading.measured_at",
        "is in the future",
    ),
]


@pytest.mark.parametrize(
    ("body", "key", "field", "message"),
    [c[1:] for c in PREDICT_RULES],
    ids=[c[0] for c in PREDICT_RULES],
)
def test_each_predict_rule_says_what_is_wrong(body, key, field, message) -> None:
    with pytest.raises(ApiError) as refused:
        parse_predict(body, key, 100, NOW)
    assert (refused.value.status, refused.value.field, refused.value.message) == (
        400,
        field,
        message,
    )
    assert refused.value.errors == [(field, message)]


def test_header_and_field_that_differ_are_named_first_even_beside_a_bad_reading() -> None:
    """The fuzz test's case: Idempotency-Key and request_id differ, and the reading's time is
    refused too - both are listed, the ids first (the old validator's only error)."""
    body = {"sensor_id": "a", "request_id": "k1", "reading": reading(measured_at="1900-01-01")}
    with pytest.raises(ApiError) as refused:
        parse_predict(body, "k2", 100, NOW)
    assert [f for f, _ in refused.value.errors] == ["request_id", "reading.measured_at"]


def test_subnormals_negative_zero_and_range_edges_are_readings() -> None:
    """What potability/features.py accepts, deliberately (issue 29), the model accepts."""
    odd = reading(ph=5e-324, Hardness=-0.0, Solids=100000, Turbidity=None, Sulfate=0)
    parsed = parse_predict({"sensor_id": "a", "readings": [odd, reading()]}, None, 100, NOW)
    assert parsed.readings[0] == {**odd, "Solids": 100000.0, "Sulfate": 0.0}
    assert parsed.measured_at == ()


def test_a_batch_over_the_limit_is_413_before_its_readings_are_read() -> None:
    body = {"sensor_id": 7, "readings": [reading(ph="bad")] * 101}
    with pytest.raises(ApiError) as refused:
        parse_predict(body, None, 100, NOW)
    assert (refused.value.status, refused.value.field) == (413, "readings")
    assert refused.value.message == "at most 100 items per request"
    # the size first, the rest still listed: no reading's errors (none was validated)
    assert [f for f, _ in refused.value.errors] == ["readings", "sensor_id"]


def test_a_long_list_of_errors_is_cut_and_counted() -> None:
    body = {"sensor_id": "a", "readings": [dict.fromkeys(reading(), "x")] * 100}
    with pytest.raises(ApiError) as refused:
        parse_predict(body, None, 100, NOW)
    assert len(refused.value.errors) == ERRORS_MAX
    assert refused.value.omitted == 9 * 100 - ERRORS_MAX
    answer = problem(400, "f", "m", errors=refused.value.errors, omitted=refused.value.omitted)
    assert len(answer["errors"]) == ERRORS_MAX and answer["errors_omitted"] == 800
    assert len(json.dumps(answer)) < 20_000


def test_every_error_echo_is_bounded() -> None:
    key = "k" * 10_000
    with pytest.raises(ApiError) as refused:
        parse_predict({"sensor_id": "a", "reading": reading(), key: 1, key + "2": 2}, None, 10, NOW)
    assert all(len(f) <= 64 and len(m) <= 300 for f, m in refused.value.errors)
    assert len(refused.value.errors) == 2


SAMPLE_RULES: list[tuple[str, Any, str, str]] = [
    ("label bool", sample("s1", potability=True), "potability", "must be the integer 0 or 1"),
    ("label float", sample("s1", potability=1.0), "potability", "must be the integer 0 or 1"),
    ("label 2", sample("s1", potability=2), "potability", "must be the integer 0 or 1"),
    ("id", sample("-s1"), "sample_id", ID_RULE),
    ("id not text", sample(17), "sample_id", ID_RULE),
    ("sensor", sample("s1", sensor_id="\u202e"), "sensor_id", TEXT_RULE),
    (
        "sampled_at",
        sample("s1", sampled_at="2024-05-01"),
        "sampled_at",
        "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T09:30:00Z",
    ),
    ("batch not list", {"samples": 1}, "samples", "must be a JSON array"),
    ("batch empty", {"samples": []}, "samples", "must not be empty"),
    ("batch item", {"samples": [1]}, "samples[0]", NOT_OBJECT),
    ("batch unknown", {"samples": [sample("s1")], "y": 0}, "y", "unknown field"),
]


@pytest.mark.parametrize(
    ("body", "field", "message"), [c[1:] for c in SAMPLE_RULES], ids=[c[0] for c in SAMPLE_RULES]
)
def test_each_sample_rule_says_what_is_wrong(body, field, message) -> None:
    with pytest.raises(ApiError) as refused:
        parse_samples(body, 50, NOW)
    assert (refused.value.status, refused.value.field, refused.value.message) == (
        400,
        field,
        message,
    )


def test_a_sample_without_sensor_or_with_null_sensor_is_one() -> None:
    bare = {k: v for k, v in sample("s1").items() if k != "sensor_id"}
    for body in (bare, sample("s1", sensor_id=None)):
        (parsed,) = parse_samples(body, 50, NOW)
        assert parsed.sensor_id is None and parsed.potability == 1


def test_an_answer_and_a_refusal_fit_the_document(client, clean_db) -> None:
    ok = client.post("/predict", json={"sensor_id": "plant-7", "readings": [reading(), reading()]})
    assert ok.status_code == 200
    matches_document("PredictResponse", ok.json)
    refused = raw(client, "/predict", b"[]", {})
    matches_document("Problem", refused.json)
