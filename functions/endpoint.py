"""The model endpoint behind the predict function, as one small adapter chosen by configuration.

* ``ENDPOINT_MODE=local``: HTTP to our model server (``MODEL_SERVER_URL``), one keep-alive
  session per function instance.
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

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import urllib3

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


def instances_for(readings: Sequence[Instance]) -> list[Instance]:
    """The request instances: exactly the nine features in schema order, null for missing."""
    return [{name: reading.get(name) for name in FEATURE_NAMES} for reading in readings]


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
        if isinstance(potable, bool) or not isinstance(potable, (int, float)) or potable not in (0, 1):
            raise EndpointRejected(f"prediction {i}: potable must be 0 or 1, got {potable!r}")
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
                or not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
            raise EndpointRejected(f"prediction {i}: probability must be in [0, 1]")
        if not isinstance(version, (str, int)) or isinstance(version, bool) or str(version) == "":
            raise EndpointRejected(f"prediction {i}: no model_version")
        result.append(Prediction(int(potable), float(probability), str(version)))
    return result


class LocalEndpoint:
    """Our model server over HTTP: one keep-alive connection pool shared by the serving threads.

    urllib3 directly (what ``requests`` wraps): a request costs a fraction of ``requests``'
    per-call overhead (environment proxy scans, hooks), which matters at hundreds of requests/s.
    """

    def __init__(self, url: str, timeout: float, pool_size: int = 8) -> None:
        if not url:
            raise EndpointUnavailable("no model server configured (MODEL_SERVER_URL)")
        base = url.rstrip("/")
        self.name = f"local:{base}"
        self.path = (urllib3.util.parse_url(base).path or "") + "/predict"
        self.pool = urllib3.connection_from_url(
            base, maxsize=pool_size, block=False, retries=False,
            timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    def predict(self, instances: Sequence[Instance]) -> list[Prediction]:
        body = json.dumps({"instances": instances_for(instances)}).encode()
        try:
            response = self.pool.urlopen("POST", self.path, body=body, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise EndpointUnavailable(f"model server unreachable: {type(exc).__name__}") from exc
        if response.status >= 500 or response.status == 429:
            raise EndpointUnavailable(f"model server answered {response.status}")
        if response.status != 200:
            raise EndpointRejected(
                f"model server refused the request ({response.status}): {response.data[:200]!r}"
            )
        try:
            answer = json.loads(response.data)
        except ValueError as exc:
            raise EndpointRejected("model server answered non-JSON") from exc
        if not isinstance(answer, dict):
            raise EndpointRejected("model server answered a non-object")
        return parse_predictions(answer.get("predictions"), len(instances),
                                 str(answer.get("model_version") or ""))


def vertex_endpoint_path(project: str, region: str, endpoint_id: str) -> str:
    """The resource name Vertex AI's PredictionService expects."""
    return f"projects/{project}/locations/{region}/endpoints/{endpoint_id}"


class VertexEndpoint:
    """A Vertex AI endpoint through ``PredictionServiceClient.predict`` (regional API host).

    ``client`` is injectable: tests pass a recorder and assert the exact request, since Vertex
    cannot be reached from here.
    """

    def __init__(self, project: str, region: str, endpoint_id: str, timeout: float,
                 client: Any = None) -> None:
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
        request.instances.extend(instances_for(instances))
        return request

    def predict(self, instances: Sequence[Instance]) -> list[Prediction]:
        from google.api_core import exceptions as gexc
        from google.protobuf import json_format

        request = self.build_request(instances)
        try:
            response = self.client.predict(request=request, timeout=self.timeout)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
                gexc.TooManyRequests, gexc.BadGateway, gexc.GatewayTimeout,
                gexc.RetryError) as exc:
            raise EndpointUnavailable(f"Vertex endpoint unavailable: {type(exc).__name__}") from exc
        except gexc.GoogleAPIError as exc:
            raise EndpointRejected(f"Vertex endpoint refused: {exc}") from exc
        predictions = getattr(response, "predictions", None)
        if predictions is None:
            raise EndpointRejected("Vertex response without predictions")
        raw = [json_format.MessageToDict(item) for item in predictions.pb]
        return parse_predictions(raw, len(instances),
                                 str(getattr(response, "model_version_id", "") or ""))


def make_endpoint(settings: Settings) -> Endpoint:
    """The adapter ``ENDPOINT_MODE`` selects."""
    if settings.endpoint_mode == "local":
        return LocalEndpoint(settings.model_server_url, settings.endpoint_timeout_seconds,
                             pool_size=settings.db_pool_size)
    if settings.endpoint_mode == "vertex":
        return VertexEndpoint(settings.google_cloud_project, settings.google_cloud_region,
                              settings.vertex_endpoint_id, settings.endpoint_timeout_seconds)
    raise ValueError(f"ENDPOINT_MODE must be 'local' or 'vertex', not {settings.endpoint_mode!r}")
