"""The deploy smoke test: its exact gcloud commands, each check's verdicts, and smoke rows left
out of training, quality control and the status page (real PostgreSQL). The smoke run against
the functions as shipped, through the emulated Cloud Run front end, is in
tests/cloud_run/test_behind_cloud_run.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from potability.features import SMOKE_SENSOR_PREFIX
from potability.gcp import smoke
from potability.gcp.deploy import Runner
from potability.inference import rollup
from potability.quality import job as qc_job
from potability.quality import record as qc_record
from training.dataset import read_training_rows

ACCOUNT = "potability-smoke@demo.iam.gserviceaccount.com"
URLS = {
    "predict": "https://europe-west1-demo.cloudfunctions.net/potability-predict",
    "samples": "https://europe-west1-demo.cloudfunctions.net/potability-samples",
    "status": "https://europe-west1-demo.cloudfunctions.net/potability-status",
}


class Answer:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code, self._body, self.headers = status, body, headers or {}
        self.text = str(body)

    def json(self) -> Any:
        return self._body


class FakeHttp:
    """Answers as the deployed functions would, or as told; records every request."""

    def __init__(self, predict_replays: bool = True, sample_status: int = 201) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.predict_replays = predict_replays
        self.sample_status = sample_status
        self.seen: set[str] = set()
        self.samples: set[str] = set()

    def post(self, url: str, json: Any, headers: dict[str, str], timeout: float) -> Answer:
        self.calls.append(("POST", url, {"json": json, "headers": headers}))
        if url == URLS["predict"]:
            key = headers["Idempotency-Key"]
            replay = key in self.seen and self.predict_replays
            self.seen.add(key)
            body = {"predictions": [{"potable": 0, "probability": 0.31, "model_version": "3"}]}
            return Answer(200, body, {"Idempotent-Replayed": "true"} if replay else {})
        if json["sample_id"] in self.samples:
            return Answer(200, {"samples": [{"status": "already_recorded"}]})
        self.samples.add(json["sample_id"])
        return Answer(self.sample_status, {"submitted_by": ACCOUNT, "status": "recorded"})

    def get(self, url: str, params: dict[str, str], timeout: float) -> Answer:
        self.calls.append(("GET", url, {"params": params}))
        return Answer(200, {"model": {"version": "3"}})


def test_the_smoke_account_mints_tokens_the_documented_way() -> None:
    run = Runner(dry_run=True, out=lambda _: None)
    lines: list[str] = []
    run.out = lines.append
    assert smoke.gcloud_id_token(run, ACCOUNT, URLS["predict"]) == "<id token>"
    assert lines == [
        "(dry run) + gcloud auth print-identity-token "
        f"--impersonate-service-account={ACCOUNT} --audiences={URLS['predict']} --include-email"
    ]


def test_every_check_passes_when_the_rows_are_written_and_read_back() -> None:
    http = FakeHttp()
    minted: list[str] = []
    checks = smoke.smoke(URLS, lambda aud: minted.append(aud) or "tok", http)
    assert [(c.name, c.ok) for c in checks] == [
        ("predict", True),
        ("add_sample", True),
        ("status", True),
    ]
    assert minted == [URLS["predict"], URLS["samples"]]  # each token for its own function
    predicts = [c for c in http.calls if c[1] == URLS["predict"]]
    assert len(predicts) == 2 and predicts[0][2] == predicts[1][2]  # the same request twice
    body = predicts[0][2]["json"]
    assert body["sensor_id"] == "smoke-deploy" and body["sensor_id"].startswith(SMOKE_SENSOR_PREFIX)
    assert predicts[0][2]["headers"]["Authorization"] == "Bearer tok"


def test_a_predict_answer_that_was_not_logged_fails_the_smoke() -> None:
    checks = smoke.smoke(URLS, lambda aud: "tok", FakeHttp(predict_replays=False))
    assert not checks[0].ok and "not read back from the log" in checks[0].detail
    assert checks[1].ok  # the next check still runs


def test_a_refused_sample_fails_the_smoke_with_the_answer() -> None:
    checks = smoke.smoke(URLS, lambda aud: "tok", FakeHttp(sample_status=401))
    assert not checks[1].ok and checks[1].detail.startswith("HTTP 401")
    assert checks[1].line().startswith("FAIL  add_sample")


def test_pipeline_waits_for_the_run_it_started() -> None:
    lines: list[str] = []
    executed: list[list[str]] = []

    class Run(Runner):
        def __call__(self, argv, **kw):  # type: ignore[override]
            executed.append(list(argv))
            return ""

    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    answers = iter(
        [
            {"last_pipeline_run": {"started_at": "2020-01-01T00:00:00+00:00"}},
            {"last_pipeline_run": {"started_at": later, "finished_at": None}},
            {
                "last_pipeline_run": {
                    "started_at": later,
                    "finished_at": later,
                    "status": "succeeded",
                    "decision": "kept_champion",
                }
            },
        ]
    )

    class Status(FakeHttp):
        def get(self, url: str, params: dict[str, str], timeout: float) -> Answer:
            return Answer(200, next(answers))

    check = smoke.wait_for_pipeline(
        Run(out=lines.append),
        Status(),
        "demo",
        "europe-west1",
        "potability-training",
        URLS["status"],
        sleep=lambda s: None,
    )
    assert check.ok and check.detail == "succeeded: kept_champion"
    assert executed == [
        [
            "gcloud",
            "scheduler",
            "jobs",
            "run",
            "potability-training",
            "--project=demo",
            "--location=europe-west1",
        ]
    ]


def _smoke_and_real_rows(conn, now: datetime) -> None:
    cur = conn.cursor()
    for sensor, sample_id in (("smoke-deploy", "smoke-1"), ("plant-1", "lab-1")):
        cur.execute(
            "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, "
            "sampled_at, submitted_by, source, created_at) VALUES (%s, 7, 1, %s, %s, 'x', "
            "'lab', %s)",
            (sample_id, sensor, now - timedelta(minutes=5), now - timedelta(minutes=1)),
        )
        cur.execute(
            "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            "latency_ms) VALUES (%s, 0, %s, 1, 0.9, 'water-potability', '3', 'local', %s, 1)",
            (f"req-{sensor}", sensor, now - timedelta(minutes=5)),
        )
    conn.commit()


def test_smoke_rows_are_left_out_of_training_qc_and_the_status_page(clean_db) -> None:
    now = datetime.now(UTC)
    _smoke_and_real_rows(clean_db, now)
    training = read_training_rows(clean_db)
    assert "smoke-1" not in set(training["sample_id"]) and "lab-1" in set(training["sample_id"])
    count, samples = qc_job.load_lab_samples(clean_db)
    assert count == 1 and [s.sensor_id for s in samples] == ["plant-1"]
    assert len(qc_job.fresh_lab_samples(clean_db, now - timedelta(hours=1))) == 1
    candidates = qc_job.load_candidate_inferences(clean_db, timedelta(minutes=30))
    assert {c.sensor_id for c in candidates} == {"plant-1"}
    assert qc_record.lab_sample_counts(clean_db, now).total == 1
    seen = rollup.activity(clean_db, now)
    assert seen.last_24h.readings == 1
    assert [c.key for c in seen.last_24h.by_sensor] == ["plant-1"]


@pytest.mark.parametrize("pipeline", [False, True])
def test_the_dry_run_prints_the_commands(monkeypatch, pipeline: bool) -> None:
    outputs = {
        "smoke_service_account": ACCOUNT,
        "function_urls": URLS,
        "project_id": "demo",
        "region": "europe-west1",
        "scheduler_job": "potability-training",
    }
    monkeypatch.setattr(smoke, "terraform_outputs", lambda run: outputs)
    lines: list[str] = []
    checks = smoke.run_smoke(Runner(dry_run=True, out=lines.append), pipeline=pipeline)
    tokens = [line for line in lines if "print-identity-token" in line]
    assert len(tokens) == 2
    assert any("gcloud scheduler jobs run" in line for line in lines) is pipeline
    assert all(c.ok for c in checks)


def test_a_first_deploy_without_a_model_fails_predict_with_what_to_do() -> None:
    """Before the first pipeline run the endpoint has no model: predict's 503 logs nothing to
    read back, so the check fails - saying that ``--pipeline`` deploys one first."""

    class NoModel(FakeHttp):
        def post(self, url: str, json: Any, headers: dict[str, str], timeout: float) -> Answer:
            if url == URLS["predict"]:
                self.calls.append(("POST", url, {"json": json, "headers": headers}))
                return Answer(503, "no model deployed on the Vertex endpoint yet: ...")
            return super().post(url, json, headers, timeout)

    checks = smoke.smoke(URLS, lambda aud: "tok", NoModel())
    (predict,) = [c for c in checks if c.name == "predict"]
    assert not predict.ok and "ARGS=--pipeline" in predict.detail
    assert [c.ok for c in checks if c.name != "predict"] == [True, True]


def test_with_pipeline_the_run_comes_before_the_function_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a first deploy the pipeline run is what deploys a model predict can answer with."""
    events: list[str] = []

    class Recording(FakeHttp):
        def post(self, url: str, json: Any, headers: dict[str, str], timeout: float) -> Answer:
            events.append(f"POST {url}")
            return super().post(url, json, headers, timeout)

    class Tokens(Runner):
        def __call__(self, argv: Any, **kwargs: Any) -> str:
            events.append(" ".join(argv[:3]))
            return "tok"

    def pipeline_run(*args: Any, **kwargs: Any) -> smoke.Check:
        events.append("pipeline")
        return smoke.Check("pipeline", True, "succeeded: promoted")

    monkeypatch.setattr(smoke, "wait_for_pipeline", pipeline_run)
    outputs = {
        "smoke_service_account": ACCOUNT,
        "function_urls": URLS,
        "project_id": "demo",
        "region": "europe-west1",
        "scheduler_job": "potability-training",
    }
    checks = smoke.run_smoke(
        Tokens(out=lambda _: None), pipeline=True, http=Recording(), outputs=outputs
    )
    assert events[0] == "pipeline" and f"POST {URLS['predict']}" in events
    assert [c.name for c in checks] == ["pipeline", "predict", "add_sample", "status"]
    assert all(c.ok for c in checks)
