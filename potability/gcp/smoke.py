"""The smoke test ``make gcp-deploy`` ends with: the deployed functions called the way their
users call them, through Google's front end, with real identities.

    potability gcp smoke [--pipeline] [--dry-run]

As the dedicated smoke-test service account (Terraform's ``smoke_service_account`` output: an
invoker of predict and add_sample, bound to the sensor id :data:`SMOKE_SENSOR`, impersonated by
the deploying engineer - ``gcloud auth print-identity-token --impersonate-service-account
--audiences=URL --include-email``, the documented way to get a token Cloud Run accepts:
https://cloud.google.com/run/docs/authenticating/developers):

* **predict**: one reading for :data:`SMOKE_SENSOR` with a fresh ``Idempotency-Key``, answered
  200; the same request again must be answered from the log (``Idempotent-Replayed: true``,
  the same answer) - proof the reading was written, read back without database access;
* **add_sample**: one lab sample (``sample_id`` ``smoke-<time>``, sensor :data:`SMOKE_SENSOR`),
  201 ``recorded``; sent again it must be ``already_recorded`` - proof it is in the table;
* **status**: the public page answers 200 (JSON).

Smoke rows are marked by their sensor id (:data:`potability.features.SMOKE_SENSOR_PREFIX`):
training, quality control and the status page's figures leave them out.

``--pipeline`` also starts the daily schedule's own request once (``gcloud scheduler jobs run``)
and waits, reading the public status page, until that pipeline run has finished - before the
function checks, because on a first deploy that run is what deploys a model (predict answers 503
"no model deployed" until then, and the check says so).

Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from potability.features import SMOKE_SENSOR_PREFIX
from potability.gcp.deploy import Runner, _need, terraform_outputs

SMOKE_SENSOR = f"{SMOKE_SENSOR_PREFIX}deploy"
SMOKE_READING = {
    "ph": 7.0,
    "Hardness": 200.0,
    "Solids": 20000.0,
    "Chloramines": 7.0,
    "Sulfate": 330.0,
    "Conductivity": 420.0,
    "Organic_carbon": 14.0,
    "Trihalomethanes": 66.0,
    "Turbidity": 4.0,
}
TIMEOUT = 60.0
PIPELINE_WAIT_SECONDS = 3 * 3600
"""How long ``--pipeline`` waits for the run it started (a daily run takes well under an hour;
a first run builds nothing, but Vertex may queue)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:10} {self.detail}"


def gcloud_id_token(run: Runner, account: str, audience: str) -> str:
    """An ID token of ``account`` for ``audience``, minted by the deploying engineer."""
    return run(
        [
            "gcloud",
            "auth",
            "print-identity-token",
            f"--impersonate-service-account={account}",
            f"--audiences={audience}",
            "--include-email",
        ],
        capture=True,
        placeholder="<id token>",
    ).strip()


def _describe(response: Any) -> str:
    text = response.text[:300].replace("\n", " ")
    return f"HTTP {response.status_code}: {text}"


def check_predict(http: Any, url: str, token: str, stamp: str) -> Check:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"smoke-{stamp}"}
    body = {"sensor_id": SMOKE_SENSOR, "reading": SMOKE_READING}
    first = http.post(url, json=body, headers=headers, timeout=TIMEOUT)
    if first.status_code == 503 and "no model deployed" in first.text:
        # The first deploy: identity and binding passed (the function answered), but no
        # pipeline run has deployed a model yet and a 503 logs nothing to read back.
        return Check(
            "predict",
            False,
            f"{_describe(first)} - no model is deployed before the first pipeline run: "
            "`make gcp-smoke ARGS=--pipeline` runs it first, then predict",
        )
    if first.status_code != 200:
        return Check("predict", False, _describe(first))
    again = http.post(url, json=body, headers=headers, timeout=TIMEOUT)
    replayed = again.headers.get("Idempotent-Replayed", "").lower() == "true"
    if again.status_code != 200 or not replayed:
        return Check("predict", False, f"not read back from the log: {_describe(again)}")
    if again.json().get("predictions") != first.json().get("predictions"):
        return Check("predict", False, "the logged answer differs from the one sent")
    p = first.json()["predictions"][0]
    return Check(
        "predict",
        True,
        f"potable={p.get('potable')} p={p.get('probability')} model v{p.get('model_version')}, "
        "logged and read back",
    )


def check_add_sample(http: Any, url: str, token: str, stamp: str) -> Check:
    sample = {
        **SMOKE_READING,
        "potability": 1,
        "sample_id": f"smoke-{stamp}",
        "sampled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sensor_id": SMOKE_SENSOR,
    }
    headers = {"Authorization": f"Bearer {token}"}
    first = http.post(url, json=sample, headers=headers, timeout=TIMEOUT)
    if first.status_code != 201:
        return Check("add_sample", False, _describe(first))
    again = http.post(url, json=sample, headers=headers, timeout=TIMEOUT)
    if again.status_code not in (200, 201) or "already_recorded" not in again.text:
        return Check("add_sample", False, f"not read back from the table: {_describe(again)}")
    return Check(
        "add_sample",
        True,
        f"{sample['sample_id']} recorded as {first.json().get('submitted_by')}, read back",
    )


def check_status(http: Any, url: str) -> tuple[Check, dict[str, Any]]:
    answer = http.get(url, params={"format": "json"}, timeout=TIMEOUT)
    if answer.status_code != 200:
        return Check("status", False, _describe(answer)), {}
    data = answer.json()
    model = data.get("model") or {}
    return Check("status", True, f"public, model in service: {model.get('version')}"), data


def smoke(
    urls: dict[str, str],
    mint: Callable[[str], str],
    http: Any = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Check]:
    """The checks, in order; ``mint(audience)`` gives the smoke account's ID token."""
    if http is None:
        import requests

        http = requests.Session()
    stamp = now().strftime("%Y%m%dT%H%M%S%fZ")
    checks = []
    for name, check in (("predict", check_predict), ("samples", check_add_sample)):
        if name not in urls:
            checks.append(Check(name, False, "no URL in terraform output function_urls"))
            continue
        try:
            checks.append(check(http, urls[name], mint(urls[name]), stamp))
        except Exception as exc:  # noqa: BLE001 - a smoke check reports, the next one still runs
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
    if "status" in urls:
        checks.append(check_status(http, urls["status"])[0])
    return checks


def wait_for_pipeline(
    run: Runner,
    http: Any,
    project: str,
    region: str,
    scheduler_job: str,
    status_url: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wait_seconds: float = PIPELINE_WAIT_SECONDS,
) -> Check:
    """Start the schedule's own request now and wait until that run has finished."""
    started = datetime.now(UTC)
    run(
        [
            "gcloud",
            "scheduler",
            "jobs",
            "run",
            scheduler_job.rsplit("/", 1)[-1],  # the output is the job's full resource name
            f"--project={project}",
            f"--location={region}",
        ]
    )
    if run.dry_run:
        return Check("pipeline", True, "(dry run) would wait for the run on the status page")
    deadline = clock() + wait_seconds
    while clock() < deadline:
        _, data = check_status(http, status_url)
        last = data.get("last_pipeline_run") or {}
        began = last.get("started_at")
        if began and datetime.fromisoformat(began) >= started and last.get("finished_at"):
            ok = last.get("status") == "succeeded"
            return Check("pipeline", ok, f"{last.get('status')}: {last.get('decision')}")
        sleep(30)
    return Check("pipeline", False, f"no finished run within {wait_seconds / 60:.0f} minutes")


def run_smoke(
    run: Runner, pipeline: bool = False, http: Any = None, outputs: dict[str, Any] | None = None
) -> list[Check]:
    """What ``make gcp-deploy`` runs last (and ``potability gcp smoke``)."""
    outputs = terraform_outputs(run) if outputs is None else outputs
    (account,) = _need(outputs, "smoke_service_account")
    by_name = outputs.get("function_urls")  # a JSON object, or absent
    urls = {str(k): str(v) for k, v in by_name.items()} if isinstance(by_name, dict) else {}
    checks: list[Check] = []
    if pipeline:
        # The pipeline run first: on a first deploy it is what deploys a model, without which
        # predict can only answer 503 (issue 28, terraform/README.md "First apply").
        project, region, job = _need(outputs, "project_id", "region", "scheduler_job")
        if http is None:
            import requests

            http = requests.Session()
        checks.append(
            wait_for_pipeline(run, http, str(project), str(region), str(job), urls["status"])
        )
    if run.dry_run:
        for name in ("predict", "samples"):
            if name in urls:
                gcloud_id_token(run, str(account), urls[name])
        run.out("(dry run) would call predict, add_sample and the status page as the smoke account")
    else:
        checks += smoke(urls, lambda audience: gcloud_id_token(run, str(account), audience), http)
    for check in checks:
        run.out(check.line())
    return checks
