"""The endpoint adapters: HTTP to our real model server, and the exact Vertex AI request."""

from __future__ import annotations

from typing import Any

import pytest
from fn_support import reading

from functions.endpoint import (
    EndpointRejected,
    EndpointUnavailable,
    LocalEndpoint,
    Prediction,
    VertexEndpoint,
    make_endpoint,
    parse_predictions,
    vertex_endpoint_path,
)
from potability.config import Settings
from potability.features import FEATURE_NAMES


def test_local_endpoint_against_the_real_model_server(model_server_url) -> None:
    endpoint = LocalEndpoint(model_server_url, timeout=5)
    readings = [reading(), reading(ph=None, Sulfate=None), reading(ph=2.0)]
    predictions = endpoint.predict(readings)
    assert len(predictions) == 3
    assert all(p.model_version == "test-1" and p.potable in (0, 1) for p in predictions)
    assert all(0 <= p.probability <= 1 for p in predictions)
    assert endpoint.name == f"local:{model_server_url}"
    # Same input, same answer: the session is reused and the model is deterministic.
    assert endpoint.predict(readings) == predictions


def test_local_endpoint_reuses_its_connections_under_load(model_server_url, monkeypatch) -> None:
    """Issue 34: 8 threads sending 400 requests open at most 8 connections (one per thread in
    flight), each kept alive and reused - counted where they are created, and as the kernel
    sees them (established sockets of this process to the model server)."""
    import concurrent.futures

    import psutil

    from functions import endpoint as endpoint_module

    opened: list[Any] = []

    class Counted(endpoint_module._Http11):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            opened.append(self)

    monkeypatch.setattr(endpoint_module, "_Http11", Counted)
    endpoint = LocalEndpoint(model_server_url, timeout=5, pool_size=8)
    port = int(model_server_url.rsplit(":", 1)[1])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: endpoint.predict([reading(ph=i % 14)]), range(400)))
    assert len(answers) == 400 and 1 <= len(opened) <= 8
    established = {
        c.laddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }
    # all still open, idle in the pool for the next request (none was closed and replaced)
    assert {conn.sock.getsockname()[1] for conn in opened} <= established


def test_local_endpoint_down_or_failing(dead_port, model_server_url) -> None:
    with pytest.raises(EndpointUnavailable):
        LocalEndpoint(f"http://127.0.0.1:{dead_port}", timeout=2).predict([reading()])
    with pytest.raises(EndpointUnavailable):
        LocalEndpoint("", timeout=2)
    # A 4xx from the server (here: a wrong route) means we sent something it refuses.
    wrong = LocalEndpoint(model_server_url + "/nowhere", timeout=2)
    with pytest.raises(EndpointRejected):
        wrong.predict([reading()])


class RecordingClient:
    """Stands in for aiplatform_v1.PredictionServiceClient: records, answers like Vertex."""

    def __init__(
        self, predictions: list[dict[str, Any]] | None = None, error: Exception | None = None
    ) -> None:
        self.requests: list[Any] = []
        self.kwargs: list[dict[str, Any]] = []
        self.predictions = predictions
        self.error = error

    def predict(self, *, request: Any, **kwargs: Any) -> Any:
        from google.cloud import aiplatform_v1

        self.requests.append(request)
        self.kwargs.append(kwargs)
        if self.error:
            raise self.error
        response = aiplatform_v1.PredictResponse(deployed_model_id="123", model_version_id="7")
        response.predictions.extend(self.predictions or [])
        return response


def vertex(client: RecordingClient) -> VertexEndpoint:
    return VertexEndpoint("my-project", "europe-west1", "4455", timeout=9.0, client=client)


def test_vertex_request_is_exactly_what_vertex_expects() -> None:
    from google.cloud import aiplatform_v1

    client = RecordingClient(
        [
            {"potable": 1, "probability": 0.8, "model_version": "7"},
            {"potable": 0, "probability": 0.1, "model_version": "7"},
        ]
    )
    endpoint = vertex(client)
    readings = [reading(), {**reading(), "ph": None}]
    predictions = endpoint.predict(readings)
    assert predictions == [Prediction(1, 0.8, "7"), Prediction(0, 0.1, "7")]
    [request] = client.requests
    assert isinstance(request, aiplatform_v1.PredictRequest)
    assert aiplatform_v1.PredictRequest.to_dict(request) == {
        "endpoint": "projects/my-project/locations/europe-west1/endpoints/4455",
        "instances": [reading(), {**reading(), "ph": None}],
        "labels": {},
    }
    assert [sorted(i.keys()) for i in request.instances] == [sorted(FEATURE_NAMES)] * 2
    assert client.kwargs == [{"timeout": 9.0}]
    assert endpoint.name == "vertex:projects/my-project/locations/europe-west1/endpoints/4455"


def test_vertex_version_falls_back_to_the_deployed_model_version() -> None:
    client = RecordingClient([{"potable": 1, "probability": 0.8}])
    assert vertex(client).predict([reading()]) == [Prediction(1, 0.8, "7")]


def test_vertex_faults_map_to_retryable_or_rejected() -> None:
    from google.api_core import exceptions as gexc

    for error in (
        gexc.ServiceUnavailable("down"),
        gexc.DeadlineExceeded("slow"),
        gexc.InternalServerError("boom"),
        gexc.TooManyRequests("quota"),
    ):
        with pytest.raises(EndpointUnavailable):
            vertex(RecordingClient(error=error)).predict([reading()])
    # Before the first pipeline run deploys a model (issue 19): retryable, not a 502.
    with pytest.raises(EndpointUnavailable, match="no model deployed"):
        vertex(
            RecordingClient(
                error=gexc.FailedPrecondition(
                    "Endpoint `projects/1/locations/europe-west1/endpoints/4455` does not have any "
                    "deployed models."
                )
            )
        ).predict([reading()])
    for error in (gexc.InvalidArgument("bad"), gexc.PermissionDenied("no")):
        with pytest.raises(EndpointRejected):
            vertex(RecordingClient(error=error)).predict([reading()])
    with pytest.raises(EndpointRejected):  # wrong number of predictions
        vertex(RecordingClient([])).predict([reading()])


def test_vertex_client_is_regional() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    built: dict[str, Any] = {}

    class Spy(aiplatform_v1.PredictionServiceClient):
        def __init__(self, **kwargs: Any) -> None:
            built.update(kwargs)
            super().__init__(credentials=AnonymousCredentials(), **kwargs)

    import google.cloud.aiplatform_v1 as module

    original = module.PredictionServiceClient
    module.PredictionServiceClient = Spy
    try:
        endpoint = VertexEndpoint("p", "us-central1", "1", timeout=1.0)
    finally:
        module.PredictionServiceClient = original
    assert built == {"client_options": {"api_endpoint": "us-central1-aiplatform.googleapis.com"}}
    assert endpoint.endpoint == vertex_endpoint_path("p", "us-central1", "1")


def test_configuration_selects_the_adapter(model_server_url) -> None:
    local = make_endpoint(Settings(endpoint_mode="local", model_server_url=model_server_url))
    assert isinstance(local, LocalEndpoint)
    with pytest.raises(EndpointUnavailable):  # vertex mode without an endpoint id
        make_endpoint(Settings(endpoint_mode="vertex", google_cloud_project="p"))
    with pytest.raises(ValueError, match="'local' or 'vertex'"):  # refused before any adapter
        Settings(endpoint_mode="elsewhere")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        [{"potable": 1, "probability": 0.5}, {"potable": 0, "probability": 0.5}],
        [{"potable": 2, "probability": 0.5, "model_version": "1"}],
        [{"potable": True, "probability": 0.5, "model_version": "1"}],
        [{"potable": 1, "probability": 1.5, "model_version": "1"}],
        [{"potable": 1, "probability": float("nan"), "model_version": "1"}],
        [{"potable": 1, "probability": 0.5}],
        ["x"],
    ],
)
def test_nonsense_from_the_endpoint_is_rejected(raw) -> None:
    with pytest.raises(EndpointRejected):
        parse_predictions(raw, expected=1)


def _scripted_server(answers: list[bytes]) -> tuple[int, list[bytes], Any]:
    """A loopback HTTP server that sends ``answers[i]`` to the i-th request, each on a NEW
    connection it closes right after answering (as a server whose keep-alive timed out)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    seen: list[bytes] = []

    def serve() -> None:
        with listener:
            for answer in answers:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(body) < length:
                        body += conn.recv(65536)
                    seen.append(head + b"\r\n\r\n" + body)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], seen, thread


def _answer(body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:]))
            + b"0\r\n\r\n"
        )
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.mark.integration
def test_local_endpoint_retries_a_stale_keepalive_connection_once_and_reads_chunked() -> None:
    body = b'{"predictions":[{"potable":1,"probability":0.75,"model_version":"9"}]}'
    port, seen, thread = _scripted_server([_answer(body), _answer(body, chunked=True)])
    endpoint = LocalEndpoint(f"http://127.0.0.1:{port}/base", timeout=5)
    first = endpoint.predict([reading()])
    # The server closed that connection after answering: the pooled one is stale now, and
    # the second call goes through on a fresh connection (chunked answer this time).
    second = endpoint.predict([reading(ph=None)])
    thread.join(10)
    assert first == second == [Prediction(1, 0.75, "9")]
    assert len(seen) == 2
    head, _, sent = seen[1].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /base/predict HTTP/1.1\r\n")
    assert b"\r\ncontent-type: application/json" in head.lower()
    import json

    assert json.loads(sent) == {"instances": [{**reading(ph=None)}]}


@pytest.mark.integration
def test_local_endpoint_garbage_answer_is_unavailable() -> None:
    port, _, thread = _scripted_server([b"SSH-2.0-OpenSSH\r\n"])
    with pytest.raises(EndpointUnavailable):
        LocalEndpoint(f"http://127.0.0.1:{port}", timeout=5).predict([reading()])
    thread.join(10)
