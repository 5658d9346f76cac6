"""The structured log line (Cloud Logging's JSON format), checked as data."""

from __future__ import annotations

import io
import json

from functions import request_log


def test_entry_has_the_cloud_logging_fields() -> None:
    record = request_log.entry(
        function="predict",
        method="POST",
        url="http://127.0.0.1:8081/",
        status=200,
        latency_s=0.0123456,
        request_id="r-1",
        message="predict: ok",
        trace=request_log.trace_field("abc123/456;o=1", "my-project"),
        extra={"readings": 3},
        user_agent="curl/8",
        remote_ip="127.0.0.1",
    )
    assert record["severity"] == "INFO"
    assert record["httpRequest"] == {
        "requestMethod": "POST",
        "requestUrl": "http://127.0.0.1:8081/",
        "status": 200,
        "latency": "0.012346s",
        "userAgent": "curl/8",
        "remoteIp": "127.0.0.1",
    }
    assert record["logging.googleapis.com/trace"] == "projects/my-project/traces/abc123"
    assert record["request_id"] == "r-1" and record["readings"] == 3
    assert record["latency_ms"] == 12.346


def test_severity_follows_the_status() -> None:
    assert [request_log.severity_for(s) for s in (200, 201, 400, 409, 503, 500)] == [
        "INFO",
        "INFO",
        "WARNING",
        "WARNING",
        "ERROR",
        "ERROR",
    ]


def test_trace_header_is_parsed_defensively() -> None:
    assert request_log.trace_field(None, "p") is None
    assert request_log.trace_field("", "p") is None
    assert request_log.trace_field("not a trace!/1", "p") is None
    assert (
        request_log.trace_field("0af7651916cd43dd8448eb211c80319c", "")
        == "0af7651916cd43dd8448eb211c80319c"
    )


def test_emit_writes_exactly_one_json_line() -> None:
    stream = io.StringIO()
    request_log.emit({"message": "line\nbreak", "severity": "INFO"}, stream)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert json.loads(text)["message"] == "line\nbreak"
