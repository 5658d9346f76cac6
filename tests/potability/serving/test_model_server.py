"""The model server over real HTTP, as Vertex AI and the predict function call it."""

from __future__ import annotations

import math

import mlflow.sklearn
import pytest
import requests
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from potability.config import ServingSettings
from potability.features import FEATURE_NAMES, FEATURES, TARGET, Feature
from potability.model import decision_threshold
from potability.seed import load_dataset


def test_health_reports_the_model(model_server_url):
    body = requests.get(f"{model_server_url}/health", timeout=5).json()
    assert body["model_version"] == "test-1" and body["model_name"] == "water-potability"
    assert 0 < body["threshold"] < 1
    assert body["runtime"] == "onnx"


def test_predictions_match_the_estimator(model_server_url, tiny_model_dir):
    frame = load_dataset().head(25)[list(FEATURE_NAMES)]
    instances = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    response = requests.post(
        f"{model_server_url}/predict", json={"instances": instances}, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    estimator = mlflow.sklearn.load_model(str(tiny_model_dir))
    expected_class = estimator.predict(frame)
    expected_proba = estimator.predict_proba(frame)[:, 1]
    assert [p["potable"] for p in body["predictions"]] == [int(c) for c in expected_class]
    assert [p["probability"] for p in body["predictions"]] == pytest.approx(list(expected_proba))
    assert {p["model_version"] for p in body["predictions"]} == {"test-1"}
    assert body["model_version"] == "test-1"
    assert decision_threshold(estimator) == pytest.approx(estimator.best_threshold_)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "instances"),
        ({"instances": []}, "instances"),
        ({"instances": [{"ph": 7}]}, "instances[0].Hardness"),
        ({"instances": [dict.fromkeys(FEATURE_NAMES, 1.0) | {"ph": 99}]}, "instances[0].ph"),
        ([1, 2], "body"),
    ],
)
def test_bad_requests_are_400_naming_the_field(model_server_url, body, field):
    response = requests.post(f"{model_server_url}/predict", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_vertex_contract_settings():
    s = ServingSettings.from_env(
        {
            "AIP_HTTP_PORT": "7080",
            "AIP_HEALTH_ROUTE": "/h",
            "AIP_PREDICT_ROUTE": "/p",
            "AIP_STORAGE_URI": "gs://b/m",
        }
    )
    assert (s.port, s.health_route, s.predict_route, s.model_uri) == (7080, "/h", "/p", "gs://b/m")
    assert (
        ServingSettings.from_env({"MODEL_URI": "models:/water-potability/7"}).model_version == "7"
    )


def test_serving_shortcut_for_forests_changes_no_prediction():
    import copy

    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import TunedThresholdClassifierCV
    from sklearn.pipeline import make_pipeline

    from potability.features import TARGET
    from potability.serving.model_server import speed_up_for_serving

    frame = load_dataset()
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    forest = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=2)
    model = TunedThresholdClassifierCV(make_pipeline(SimpleImputer(), forest), cv=2).fit(x, y)
    served = copy.deepcopy(model)
    speed_up_for_serving(served)
    final = served.estimator_.steps[-1][1]
    assert "predict_proba" in vars(final) and final.n_jobs == 1  # the shortcut is in place
    matrix = x.to_numpy()
    assert np.array_equal(served.predict_proba(matrix), model.predict_proba(x))
    assert np.array_equal(served.predict_proba(matrix[:1]), model.predict_proba(x.iloc[:1]))


def test_decision_threshold_of_a_fixed_threshold_model() -> None:
    """Training serves FixedThresholdClassifier(CalibratedClassifierCV(...))
    (training/modeling.py)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import FixedThresholdClassifier

    frame = load_dataset().head(60)
    model = FixedThresholdClassifier(
        DummyClassifier(strategy="prior"), threshold=0.37, response_method="predict_proba"
    )
    model.fit(frame[list(FEATURE_NAMES)], frame[TARGET])
    assert decision_threshold(model) == 0.37
    assert decision_threshold(DummyClassifier()) == 0.5


# --- the WSGI app's HTTP contract: every answer is JSON, errors name what was wrong ----------


def _reading() -> dict[str, float]:
    return dict.fromkeys(FEATURE_NAMES, 1.0) | {"ph": 7.0}


def test_unknown_route_is_a_json_404(model_server_url):
    response = requests.post(f"{model_server_url}/nowhere", json={"instances": []}, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["field"] == "path" and "/predict" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "route", "allow"),
    [("GET", "/predict", "POST"), ("PUT", "/predict", "POST"), ("POST", "/health", "GET, HEAD")],
)
def test_wrong_method_is_a_json_405_with_allow(model_server_url, method, route, allow):
    response = requests.request(method, f"{model_server_url}{route}", json={}, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["field"] == "method"


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"", b"null", b'"instances"'])
def test_a_body_that_is_not_a_json_object_is_400_naming_body(model_server_url, raw):
    response = requests.post(
        f"{model_server_url}/predict",
        data=raw,
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_a_body_over_the_limit_is_413_and_the_connection_still_serves(model_server_url):
    from potability.serving.model_server import MAX_BODY_BYTES

    with requests.Session() as session:
        big = b'{"instances": [' + b" " * MAX_BODY_BYTES + b"]}"
        response = session.post(f"{model_server_url}/predict", data=big, timeout=30)
        assert response.status_code == 413 and response.json()["field"] == "body"
        after = session.post(
            f"{model_server_url}/predict", json={"instances": [_reading()]}, timeout=5
        )
        assert after.status_code == 200 and len(after.json()["predictions"]) == 1


def test_a_chunked_body_is_read_whole(model_server_url):
    import json

    payload = json.dumps({"instances": [_reading()] * 3}).encode()
    chunks = (payload[i : i + 50] for i in range(0, len(payload), 50))  # no Content-Length
    response = requests.post(
        f"{model_server_url}/predict",
        data=chunks,
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3


def test_head_of_health_answers_without_a_body(model_server_url):
    response = requests.head(f"{model_server_url}/health", timeout=5)
    assert response.status_code == 200 and response.content == b""


def test_predict_answers_the_same_readings_the_same_way_in_one_batch(model_server_url):
    """Rows are scored independently: a reading's answer does not depend on its neighbours."""
    one = requests.post(
        f"{model_server_url}/predict", json={"instances": [_reading()]}, timeout=5
    ).json()["predictions"][0]
    batch = requests.post(
        f"{model_server_url}/predict",
        json={"instances": [_reading(), {**_reading(), "ph": None}, _reading()]},
        timeout=5,
    ).json()["predictions"]
    assert batch[0] == batch[2] == one


def test_a_scoring_failure_is_a_json_500_and_logged(tiny_model_dir, caplog):
    """A model that raises (here: a compiled form whose session is gone) answers JSON 500."""
    import asyncio
    import json

    from potability.serving.model_server import LoadedModel, create_app, load_model

    served = load_model(ServingSettings(model_uri=str(tiny_model_dir), model_version="t"))
    broken = LoadedModel(
        served.estimator, served.name, served.version, served.threshold, compiled=object()
    )  # no potable_probability: AttributeError
    app = create_app(broken, ServingSettings())
    body = json.dumps({"instances": [_reading()]}).encode()
    sent: list = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "POST", "path": "/predict"}, receive, send))
    assert sent[0]["status"] == 500
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "internal error"}
    assert "predict failed" in caplog.text


def test_a_batch_over_the_inline_size_is_scored_in_a_thread_the_same(model_server_url):
    """Big batches go to the thread pool (model_server.INLINE_ROWS): same answers."""
    from potability.serving.model_server import INLINE_ROWS

    rows = [{**_reading(), "ph": 3 + i % 80 / 10} for i in range(INLINE_ROWS + 5)]
    big = requests.post(f"{model_server_url}/predict", json={"instances": rows}, timeout=10).json()[
        "predictions"
    ]
    small = [
        requests.post(f"{model_server_url}/predict", json={"instances": [row]}, timeout=10).json()[
            "predictions"
        ][0]
        for row in rows[:3]
    ]
    assert len(big) == len(rows) and big[:3] == small


def test_stalled_clients_do_not_hold_up_others(model_server_url):
    """One event loop serves everyone: half-sent requests (headers, or a body promised but not
    sent) wait on their own sockets while other clients are answered at once."""
    import socket
    import time
    from urllib.parse import urlparse

    target = urlparse(model_server_url)
    stalled = []
    for partial in (
        b"POST /predict HTTP/1.1\r\nHost: x\r\n",
        b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"inst',
    ):
        for _ in range(10):
            sock = socket.create_connection((target.hostname, target.port), timeout=5)
            sock.sendall(partial)
            stalled.append(sock)
    try:
        started = time.monotonic()
        response = requests.post(
            f"{model_server_url}/predict", json={"instances": [_reading()]}, timeout=5
        )
        assert response.status_code == 200 and time.monotonic() - started < 2
    finally:
        for sock in stalled:
            sock.close()


def test_a_model_registered_before_the_module_renames_still_loads_and_scores():
    """tests/fixtures/model_before_rename was saved with skops (MLflow's scikit-learn flavour,
    our trusted-type list) at commit 6dafec1, before modules were renamed (issue 32). skops
    stores each class by its import path, so a moved class would refuse to load: this is the
    guard that registered champions keep serving across renames."""
    from pathlib import Path

    from potability.serving.model_server import load_model

    folder = Path(__file__).resolve().parents[2] / "fixtures" / "model_before_rename"
    loaded = load_model(ServingSettings(model_uri=str(folder), model_version="old"))
    frame = load_dataset().head(3)[list(FEATURE_NAMES)]
    proba = loaded.estimator.predict_proba(frame)[:, 1]
    assert list(proba) == pytest.approx(
        [0.39045484986237716, 0.3880811550718409, 0.3895273108182711]
    )
    assert loaded.threshold == pytest.approx(0.4)


_ODD = st.sampled_from([math.nan, math.inf, -math.inf, True, False, "7.1", [], {}, 1e300, -1.0])


def _value(feature: Feature) -> st.SearchStrategy[object]:
    """Mostly a legal measurement of ``feature`` (in range, a float, an int or null), one in
    thirty something else."""
    legal = st.one_of(
        st.none(),
        st.floats(min_value=feature.minimum, max_value=feature.maximum),
        st.integers(min_value=math.ceil(feature.minimum), max_value=math.floor(feature.maximum)),
        st.floats(min_value=feature.maximum, exclude_min=True, allow_nan=False),
    )
    return st.integers(0, 29).flatmap(lambda k: _ODD if k == 0 else legal)


_INSTANCE = st.fixed_dictionaries({f.name: _value(f) for f in FEATURES}).flatmap(
    lambda reading: st.sampled_from(
        [
            reading,
            {k: v for k, v in reading.items() if k != "Sulfate"},  # one name missing
            {**reading, "potability": 1},  # one name too many
            [reading[n] for n in FEATURE_NAMES],  # not an object
        ]
    )
)


def _outcome(instances: list) -> tuple[str, object]:
    from potability.features import ValidationError
    from potability.serving.model_server import instances_matrix

    try:
        return "matrix", instances_matrix(instances).tobytes()
    except ValidationError as exc:
        return "refused", (exc.field, exc.message)


@hyp_settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.one_of(_INSTANCE, _INSTANCE.filter(lambda i: isinstance(i, dict))),
        min_size=1,
        max_size=5,
    )
)
def test_a_batch_checked_whole_gives_what_each_reading_checked_alone_gives(
    instances: list,
) -> None:
    """instances_matrix checks a batch in one pass and, if anything fails, reading by reading
    (for the error naming the field): the matrix or the refusal must be the same as the
    reading-by-reading check alone would give."""
    from potability.serving import model_server

    fast = _outcome(instances)
    original = model_server._plain_matrix
    try:
        model_server._plain_matrix = lambda _: None  # reading by reading only
        slow = _outcome(instances)
    finally:
        model_server._plain_matrix = original
    assert fast == slow


def test_a_plain_batch_is_checked_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """What sensors send - numbers in range, nulls, integers - never takes the reading-by-reading
    path (a sixth of the model server's CPU for a batch of 100)."""
    from potability.serving import model_server

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("checked reading by reading")

    monkeypatch.setattr(model_server, "validate_features", never)
    reading = dict.fromkeys(FEATURE_NAMES, 1) | {"ph": 7.25, "Sulfate": None}
    matrix = model_server.instances_matrix([reading, reading])
    assert matrix.shape == (2, 9) and math.isnan(matrix[0, FEATURE_NAMES.index("Sulfate")])
    assert matrix[1, FEATURE_NAMES.index("ph")] == 7.25
