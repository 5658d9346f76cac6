"""The model endpoint behind the predict function, as one small adapter chosen by configuration.

* ``ENDPOINT_MODE=local``: HTTP/1.1 to our model server (``MODEL_SERVER_URL``), keep-alive
  connections pooled per function instance.
* ``ENDPOINT_MODE=vertex``: the Vertex AI endpoint ``projects/{p}/locations/{r}/endpoints/{id}``
  through ``google-cloud-aiplatform``'s ``PredictionServiceClient`` (imported only then; it is
  slow to import). Vertex passes only the ``predictions`` list through, which is why our model
  server repeats ``model_version`` inside each prediction.

Both send the same instances (the nine features, ``null`` for missing) and return the same
:class:`Prediction` list, checked for shape, so a misbehaving endpoint can never put garbage in
the inference log. Faults become :class:`EndpointUnavailable` (retry later, HTTP 503) or
:class:`EndpointRejected` (the endpoint refused or answered nonsense, HTTP 502).
"""

from __future__ import annotations

import contextlib
import math
import queue
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from potability.config import Settings
from potability.features import FEATURE_NAMES

Instance = dict[str, float | None]


class EndpointUnavailable(RuntimeError):
    """The endpoint could not answer (down, timeout, 5xx): retry later. Nothing was written."""


class EndpointRejected(RuntimeError):
    """The endpoint refused the request or answered something that is not a prediction."""


@dataclass(frozen=True)
class Prediction:
    potable: int
    probability: float
    model_version: str


class Endpoint(Protocol):
    name: str
    """What the inference log records in ``endpoint`` (e.g. ``local:http://127.0.0.1:8080``)."""

    def predict(self, instances: Sequence[Instance]) -> list[Prediction]: ...


_FEATURES = frozenset(FEATURE_NAMES)


def instances_for(readings: Sequence[Instance]) -> list[Instance]:
    """The request instances: exactly the nine features, null for missing. A validated reading
    has exactly them already and is sent as it is (the model server reads by name)."""
    return [
        reading
        if reading.keys() == _FEATURES
        else {name: reading.get(name) for name in FEATURE_NAMES}
        for reading in readings
    ]


def parse_predictions(raw: Any, expected: int, fallback_version: str = "") -> list[Prediction]:
    """Check an endpoint's ``predictions`` list and turn it into :class:`Prediction` values."""
    if not isinstance(raw, list) or len(raw) != expected:
        raise EndpointRejected(
            f"expected {expected} predictions, got "
            f"{len(raw) if isinstance(raw, list) else type(raw).__name__}"
        )
    result = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise EndpointRejected(f"prediction {i} is not an object")
        potable, probability = item.get("potable"), item.get("probability")
        version = item.get("model_version") or fallback_version
        if (
            isinstance(potable, bool)
            or not isinstance(potable, (int, float))
            or potable not in (0, 1)
        ):
            raise EndpointRejected(f"prediction {i}: potable must be 0 or 1, got {potable!r}")
        if (
            isinstance(probability, bool)
            or not isinstance(probability, (int, float))
            or not math.isfinite(probability)
            or not 0.0 <= probability <= 1.0
        ):
            raise EndpointRejected(f"prediction {i}: probability must be in [0, 1]")
        if not isinstance(version, (str, int)) or isinstance(version, bool) or str(version) == "":
            raise EndpointRejected(f"prediction {i}: no model_version")
        result.append(Prediction(int(potable), float(probability), str(version)))
    return result


class _Http11:
    """One keep-alive HTTP/1.1 connection to the model server, with just what we need.

    ``http.client`` (under urllib3) parses every response's headers with the ``email``
    package and urllib3 adds its pool, retry and response layers: together they were the
    largest CPU cost of a predict request (cProfile, see README Benchmarks). The model server
    is ours and speaks plain HTTP/1.1 (gunicorn: ``Content-Length`` bodies), so the request is
    one ``sendall`` and the response is a status line, headers scanned for the three that
    matter (``Content-Length``, ``Transfer-Encoding: chunked``, ``Connection: close``; RFC 9112
    section 6.3 for how a body's length is found) and the body.
    """

    def __init__(self, host: str, port: int, connect_timeout: float, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.reusable = True

    def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send one request; the status and the body. A closed socket raises ``_Closed``."""
        self.sock.sendall(head + body)
        line = self.reader.readline(65537)
        if not line:
            raise _Closed("the model server closed the connection")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Malformed(f"bad status line {line[:80]!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        for _ in range(100):
            header = self.reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection" and b"close" in value.lower():
                self.reusable = False
        else:
            raise _Malformed("too many response headers")
        if chunked:
            data = self._chunked()
        elif length is not None:
            data = self.reader.read(length)
            if len(data) != length:
                raise _Malformed("response body shorter than its Content-Length")
        else:  # no length: the body ends with the connection
            data = self.reader.read()
            self.reusable = False
        if parts[0] == b"HTTP/1.0":
            self.reusable = False
        return status, data

    def _chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.reader.readline(1024).split(b";", 1)[0], 16)
            if size == 0:
                while self.reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(chunks)
            chunks.append(self.reader.read(size))
            self.reader.readline(3)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()


class _Closed(ConnectionError):
    """The server had closed a kept-alive connection before we used it again."""


class _Malformed(ValueError):
    """Not an HTTP/1.1 answer we can read."""


class LocalEndpoint:
    """Our model server over HTTP: keep-alive connections shared by the serving threads.

    A small pool of :class:`_Http11` connections (one per thread in flight at most). A
    kept-alive connection the server has closed meanwhile (idle timeout, restart) fails on
    first use; the request is then sent once more on a new connection - safe, scoring has no
    side effects. A server that is down is :class:`EndpointUnavailable` (503) at once.
    """

    def __init__(self, url: str, timeout: float, pool_size: int = 8) -> None:
        if not url:
            raise EndpointUnavailable("no model server configured (MODEL_SERVER_URL)")
        base = url.rstrip("/")
        self.name = f"local:{base}"
        parsed = urlsplit(base)
        if parsed.scheme != "http" or not parsed.hostname:
            raise EndpointUnavailable(f"MODEL_SERVER_URL must be http://host:port, not {url!r}")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.path = (parsed.path or "") + "/predict"
        self.timeout = timeout
        self.connect_timeout = min(timeout, 3.0)
        self._head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            "Content-Length: "
        ).encode("ascii")
        self._idle: queue.LifoQueue[_Http11] = queue.LifoQueue(maxsize=pool_size)

    def _send(self, body: bytes) -> tuple[int, bytes]:
        head = self._head + str(len(body)).encode("ascii") + b"\r\n\r\n"
        for reused in (True, False):
            conn = None
            if reused:
                with contextlib.suppress(queue.Empty):
                    conn = self._idle.get_nowait()
            if conn is None:
                reused = False
                conn = _Http11(self.host, self.port, self.connect_timeout, self.timeout)
            try:
                status, data = conn.request(head, body)
            except (_Closed, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused:
                    continue  # a stale kept-alive connection: once more on a fresh one
                raise
            except BaseException:
                conn.close()
                raise
            if conn.reusable:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                conn.close()
            return status, data
        raise AssertionError("unreachable")

    def predict(self, instances: Sequence[Instance]) -> list[Prediction]:
        body = orjson.dumps({"instances": instances_for(instances)})  # finite: validated
        try:
            status, data = self._send(body)
        except (OSError, _Malformed, ValueError) as exc:
            raise EndpointUnavailable(f"model server unreachable: {type(exc).__name__}") from exc
        if status >= 500 or status == 429:
            raise EndpointUnavailable(f"model server answered {status}")
        if status != 200:
            raise EndpointRejected(f"model server refused the request ({status}): {data[:200]!r}")
        try:
            answer = orjson.loads(data)
        except ValueError as exc:  # orjson.JSONDecodeError is one
            raise EndpointRejected("model server answered non-JSON") from exc
        if not isinstance(answer, dict):
            raise EndpointRejected("model server answered a non-object")
        return parse_predictions(
            answer.get("predictions"), len(instances), str(answer.get("model_version") or "")
        )


def vertex_endpoint_path(project: str, region: str, endpoint_id: str) -> str:
    """The resource name Vertex AI's PredictionService expects."""
    return f"projects/{project}/locations/{region}/endpoints/{endpoint_id}"


class VertexEndpoint:
    """A Vertex AI endpoint through ``PredictionServiceClient.predict`` (regional API host).

    ``client`` is injectable: tests pass a recorder and assert the exact request, since Vertex
    cannot be reached from here.
    """

    def __init__(
        self, project: str, region: str, endpoint_id: str, timeout: float, client: Any = None
    ) -> None:
        if not (project and region and endpoint_id):
            raise EndpointUnavailable(
                "Vertex endpoint not configured (GOOGLE_CLOUD_PROJECT, GOOGLE_CLOUD_REGION, "
                "VERTEX_ENDPOINT_ID)"
            )
        self.endpoint = vertex_endpoint_path(project, region, endpoint_id)
        self.name = f"vertex:{self.endpoint}"
        self.timeout = timeout
        if client is None:
            from google.cloud import aiplatform_v1

            client = aiplatform_v1.PredictionServiceClient(
                client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"}
            )
        self.client = client

    def build_request(self, instances: Sequence[Instance]) -> Any:
        """The ``PredictRequest`` sent: the endpoint path and one struct Value per reading
        (what ``aiplatform.Endpoint.predict`` sends too)."""
        from google.cloud import aiplatform_v1

        request = aiplatform_v1.PredictRequest(endpoint=self.endpoint)
        # proto-plus marshals each dict into a struct Value; the protobuf stubs know only Value
        request.instances.extend(instances_for(instances))  # type: ignore[arg-type]
        return request

    def predict(self, instances: Sequence[Instance]) -> list[Prediction]:
        from google.api_core import exceptions as gexc
        from google.protobuf import json_format

        request = self.build_request(instances)
        try:
            response = self.client.predict(request=request, timeout=self.timeout)
        except (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.TooManyRequests,
            gexc.BadGateway,
            gexc.GatewayTimeout,
            gexc.RetryError,
        ) as exc:
            raise EndpointUnavailable(f"Vertex endpoint unavailable: {type(exc).__name__}") from exc
        except gexc.FailedPrecondition as exc:
            # Vertex answers FAILED_PRECONDITION while the endpoint has no deployed model (a
            # new project before the first pipeline run, or mid-redeploy): not the caller's
            # fault and over once a model is deployed, so sensors retry (503) and lose nothing.
            raise EndpointUnavailable(
                f"no model deployed on the Vertex endpoint yet: {exc.message}"
            ) from exc
        except gexc.GoogleAPIError as exc:
            raise EndpointRejected(f"Vertex endpoint refused: {exc}") from exc
        predictions = getattr(response, "predictions", None)
        if predictions is None:
            raise EndpointRejected("Vertex response without predictions")
        raw = [json_format.MessageToDict(item) for item in predictions.pb]
        return parse_predictions(
            raw, len(instances), str(getattr(response, "model_version_id", "") or "")
        )


def make_endpoint(settings: Settings) -> Endpoint:
    """The adapter ``ENDPOINT_MODE`` selects."""
    if settings.endpoint_mode == "local":
        return LocalEndpoint(
            settings.model_server_url,
            settings.endpoint_timeout_seconds,
            pool_size=settings.db_pool_size,
        )
    return VertexEndpoint(  # the only other mode: Settings refuses any other ENDPOINT_MODE
        settings.google_cloud_project,
        settings.google_cloud_region,
        settings.vertex_endpoint_id,
        settings.endpoint_timeout_seconds,
    )
