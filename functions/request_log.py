"""One structured JSON log line per request, in the format Cloud Logging understands.

Cloud Run / Cloud Functions turn each JSON line on stdout into a log entry: ``severity``,
``message`` and ``httpRequest`` become first-class fields, and
``logging.googleapis.com/trace`` links the entry to the request's trace. Locally the same lines
land in ``<home>/logs/fn-*.log``, so both places read alike.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

_lock = threading.Lock()


def trace_field(trace_header: str | None, project: str) -> str | None:
    """``projects/<p>/traces/<id>`` from ``X-Cloud-Trace-Context: <id>/<span>;o=1``."""
    if not trace_header:
        return None
    trace_id = trace_header.split("/", 1)[0].split(";", 1)[0].strip()
    if not trace_id or len(trace_id) > 64 or not trace_id.isalnum():
        return None
    return f"projects/{project}/traces/{trace_id}" if project else trace_id


def severity_for(status: int) -> str:
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARNING"
    return "INFO"


def entry(
    *,
    function: str,
    method: str,
    url: str,
    status: int,
    latency_s: float,
    request_id: str | None,
    trace: str | None,
    message: str,
    extra: Mapping[str, Any] | None = None,
    user_agent: str | None = None,
    remote_ip: str | None = None,
) -> dict[str, Any]:
    """The log entry of one request (pure: tests check it without capturing stdout)."""
    http_request: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": url,
        "status": status,
        "latency": f"{latency_s:.6f}s",
    }
    if user_agent:
        http_request["userAgent"] = user_agent
    if remote_ip:
        http_request["remoteIp"] = remote_ip
    record: dict[str, Any] = {
        "severity": severity_for(status),
        "message": message,
        "function": function,
        "httpRequest": http_request,
        "request_id": request_id,
        "latency_ms": round(latency_s * 1000.0, 3),
    }
    if trace:
        record["logging.googleapis.com/trace"] = trace
    if extra:
        record.update(extra)
    return record


def emit(record: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """Write one entry as a single line (locked: threads never interleave lines)."""
    line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
    out = stream or sys.stdout
    with _lock:
        out.write(line)
        out.flush()
