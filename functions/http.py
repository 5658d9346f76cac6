"""HTTP edges shared by the functions: strict JSON bodies, JSON answers, one error type.

Every refusal is an :class:`ApiError` carrying the HTTP status and the *field* at fault, so a
client always learns what to fix - answered as RFC 9457 problem details (:func:`problem`:
``application/problem+json`` with ``title``, ``status``, ``detail``, ``errors[]`` pointing
into the body, and the former ``error`` / ``field`` members kept) - and a handler never needs
its own error formatting. Parsing is strict on purpose: NaN/Infinity
literals, duplicate keys, non-JSON content types and oversized bodies are refused before any
value reaches validation, so nothing unexpected can ever reach the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import flask
import orjson

RETRY_AFTER_SECONDS = 5
"""What a 503 asks the client to wait: dependencies restart in seconds locally and on GCP."""


FIELD_ECHO_MAX = 64
"""Most characters of a client's field name an error echoes (a JSON key may be a megabyte)."""
MESSAGE_MAX = 300
"""Most characters of an error message (ours, but it may quote what the client sent)."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class ApiError(Exception):
    """A request we refuse: HTTP ``status``, the ``field`` at fault, a human ``message``, and,
    when several fields are at fault, ``errors``: every ``(field, message)``, the first being
    ``field`` / ``message`` (request validation lists them all at once: functions/validation.py;
    ``omitted`` counts those left out of a long list).

    Fields and messages are cut to a bounded length here, once, because they can carry what
    the client sent (an unknown key's name, a bad value): a 1 MB key must not come back as a
    1 MB answer and a 1 MB log line."""

    def __init__(
        self,
        status: int,
        field: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[tuple[str, str]] = (),
        omitted: int = 0,
    ) -> None:
        field, message = _cut(field, FIELD_ECHO_MAX), _cut(message, MESSAGE_MAX)
        super().__init__(f"{status} {field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        self.headers = dict(headers or {})
        self.errors = [(_cut(f, FIELD_ECHO_MAX), _cut(m, MESSAGE_MAX)) for f, m in errors] or [
            (field, message)
        ]
        self.omitted = omitted


def unavailable(field: str, message: str) -> ApiError:
    """A retryable 503 (a dependency is down): the client should retry after a pause."""
    return ApiError(503, field, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> flask.Response:
    """A JSON answer: compact UTF-8, control characters escaped (so no client string breaks a
    line), encoded by orjson - a batch's answer in a tenth of json's time (issue 34). A
    non-finite float, which json refused, would be ``null``: every number answered is checked
    finite before it gets here."""
    response = flask.Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        mimetype="application/json",
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


PROBLEM_JSON = "application/problem+json"
"""Errors are RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457)."""

NOT_IN_BODY = frozenset(
    {
        "Authorization",
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Expect",
        "Idempotency-Key",
        "X-Serverless-Authorization",
        "method",
        "format",
        "headers",
        "trailers",
        "url",
        "request",
        "request line",
        "server",
        "database",
        "endpoint",
    }
)
"""Fields that name a header, the request itself or a dependency rather than a place in the
JSON body: their ``errors[]`` entry has no ``pointer``."""


def json_pointer(field: str) -> str | None:
    """The RFC 6901 pointer into the request body of a field as our errors name it
    (``readings[1].ph`` -> ``/readings/1/ph``; ``body`` -> ``""``, the whole document);
    ``None`` for a field outside the body (a header, a dependency)."""
    if field in NOT_IN_BODY:
        return None
    if field == "body":
        return ""
    steps: list[str] = []
    for part in field.split("."):
        name, _, rest = part.partition("[")
        if name:
            steps.append(name)
        steps.extend(index.rstrip("]") for index in rest.split("[") if index)
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in steps)


def problem(
    status: int,
    field: str,
    message: str,
    request_id: str | None = None,
    instance: str = "",
    errors: Sequence[tuple[str, str]] = (),
    omitted: int = 0,
) -> dict[str, Any]:
    """The problem details of a refusal: RFC 9457's members (``type`` ``about:blank``: the
    status says what kind of problem it is; ``title`` its phrase; ``detail``; ``instance`` the
    request's path) and ``errors[]``, one entry per ``(field, message)`` of ``errors`` (default:
    the one ``field``) with a JSON pointer for each place in the body at fault (RFC 9457
    section 3.2's extension members: https://www.rfc-editor.org/rfc/rfc9457#section-3.2), plus
    the members clients of the former format read: ``error`` (= ``detail``) and ``field``, the
    first error, and ``request_id``; ``errors_omitted`` when the list was cut."""
    from http import HTTPStatus

    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    entries: list[dict[str, Any]] = []
    for name, detail in errors or [(field, message)]:
        entry: dict[str, Any] = {"detail": detail, "field": name}
        where = json_pointer(name)
        if where is not None:
            entry["pointer"] = where
        entries.append(entry)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": message,
        "errors": entries,
        "error": message,
        "field": field,
    }
    if omitted:
        body["errors_omitted"] = omitted
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    return body


def error_response(error: ApiError, request_id: str | None, instance: str = "") -> flask.Response:
    """A refusal as ``application/problem+json``, with the error's headers (``Retry-After``,
    ``Allow``, ``WWW-Authenticate``)."""
    response = json_response(
        problem(
            error.status,
            error.field,
            error.message,
            request_id,
            instance,
            error.errors,
            error.omitted,
        ),
        error.status,
        error.headers,
    )
    response.mimetype = PROBLEM_JSON
    return response


def require_method(request: flask.Request, method: str) -> None:
    if request.method != method:
        raise ApiError(405, "method", f"use {method}", {"Allow": method})


def _reject_constant(name: str) -> Any:
    raise ApiError(400, "body", f"{name} is not valid JSON (use null for a missing value)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, key, "duplicate key in JSON object")
        result[key] = value
    return result


def _parse_int(text: str) -> int | float:
    # Huge integers become floats (then inf, refused as non-finite) instead of overflowing
    # float() later or tripping Python's 4300-digit int limit.
    return int(text) if len(text) <= 18 else float(text)


_INT_LOW, _INT_HIGH = -(10**17), 10**18
"""The integers :func:`_parse_int` keeps as ints: at most 18 characters of text."""


def parse_json(data: bytes) -> Any:
    """Decode a request body as strict JSON (UTF-8, no NaN/Infinity, no duplicate keys).

    orjson decodes first: a batch of 100 readings in ~0.35 ms with the check below, against
    ~0.75 ms for ``json`` with its per-object hook (issue 34; bench/README.md, "The guard").
    orjson keeps the last of two equal keys silently, so its answer is taken only when
    :func:`_plainly_decoded` proves every key unique; any other body - one orjson refuses,
    a duplicate, an escaped colon, an integer ``json`` would read as a float - is decoded
    again by :func:`parse_json_checked`, which names the problem. The result is the same
    either way (tests/functions/test_http.py compares the two on generated bodies).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return parse_json_checked(data)
    if b"\\u003a" in data or b"\\u003A" in data or not _plainly_decoded(value, data.count(b":")):
        return parse_json_checked(data)
    return value


def _plainly_decoded(value: Any, colons: int) -> bool:
    """Whether ``value``, decoded from a text with ``colons`` colon bytes and no escaped
    colon, had no duplicate key and no integer outside :func:`_parse_int`'s int range.

    Every colon of the text is in a string or ends a key, so the keys written are the colons
    less those the strings hold; equal to the keys decoded only when none was dropped."""
    keys = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            keys += len(item)
            for key, member in item.items():
                colons -= key.count(":")
                kind = type(member)
                if kind is float or member is None:
                    continue  # the readings' values: the bulk of a batch
                if kind is str:
                    colons -= member.count(":")
                elif kind is int:
                    if not _INT_LOW < member < _INT_HIGH:
                        return False
                else:
                    stack.append(member)
        elif kind is list:
            stack.extend(item)
        elif kind is str:
            colons -= item.count(":")
        elif kind is int and not _INT_LOW < item < _INT_HIGH:
            return False
    return keys == colons


def parse_json_checked(data: bytes) -> Any:
    """:func:`parse_json` by ``json``, each rule checked as it decodes, naming what it refuses."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body", "body is not valid UTF-8") from None
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
            parse_int=_parse_int,
        )
    except ApiError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "body", f"malformed JSON: {str(exc)[:200]}") from None


def read_json_body(request: flask.Request, max_bytes: int) -> Any:
    """The request's JSON body, refusing wrong content types and bodies over ``max_bytes``."""
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json":
        raise ApiError(415, "Content-Type", "must be application/json")
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise ApiError(415, "Content-Type", "charset must be utf-8")
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "body", f"body larger than {max_bytes} bytes")
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, "body", f"body larger than {max_bytes} bytes")
    if not data.strip():
        raise ApiError(400, "body", "empty body: send a JSON object")
    return parse_json(data)
