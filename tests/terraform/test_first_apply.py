"""What the first apply depends on, as Terraform sees it (issue 28, blockers 3, 4 and 7):

* the apply order, from ``terraform graph`` over the configuration (offline, the stand-in
  providers): custom roles wait for the API enablement (the IAM API), and every function and
  Cloud Run job waits for ``time_sleep.iam_propagation``, which itself comes after every grant
  to our service accounts - Google's 60 s between grants and the builds that use them;
* what Terraform renders for the smoke test and the operators' job, read with the code that
  consumes it: the smoke account bound to the sensor id potability/gcp/smoke.py writes, the
  model job's environment parsed by :class:`potability.config.Settings`, its database
  memberships by :mod:`potability.migrations`, its arguments by ``potability``'s own parser
  (click's, nothing runs).
"""

from __future__ import annotations

import re
from typing import Any

import click
import pytest
import rendered_terraform

from potability import cli, migrations
from potability.config import Settings
from potability.features import SMOKE_SENSOR_PREFIX
from potability.gcp import model_job, smoke

WAIT = "time_sleep.iam_propagation"


@pytest.fixture(scope="module")
def edges(initialised) -> set[tuple[str, str]]:
    res = initialised.run("graph", "-no-color")
    assert res.returncode == 0, res.stdout + res.stderr
    found = set(re.findall(r'^\s*"([^"\[]+)" -> "([^"\[]+)";', res.stdout, re.M))
    assert found, res.stdout[:2000]
    return found


def test_custom_roles_wait_for_the_api_enablement(edges: set[tuple[str, str]]) -> None:
    roles = {a for a, _ in edges if a.startswith("google_project_iam_custom_role.")}
    assert roles == {
        "google_project_iam_custom_role.roles",
        "google_project_iam_custom_role.model_operator",
        "google_project_iam_custom_role.vertex_psc_interface",
    }
    for role in roles:
        assert (role, "google_project_service.apis") in edges, role


def test_functions_and_jobs_start_after_the_iam_wait(edges: set[tuple[str, str]]) -> None:
    for user in (
        "google_cloudfunctions2_function.fn",
        "google_cloud_run_v2_job.migrate",
        "google_cloud_run_v2_job.maintenance",
        "google_cloud_run_v2_job.model",
    ):
        assert (user, WAIT) in edges, user


def test_the_wait_comes_after_every_grant_to_our_accounts(edges: set[tuple[str, str]]) -> None:
    waited = {b for a, b in edges if a == WAIT}
    assert {
        "google_project_iam_member.sa",
        "google_project_iam_member.functions_build_sources",
        "google_project_iam_member.model_job",
        "google_storage_bucket_iam_member.sa",
        "google_storage_bucket_iam_member.model_job",
        "google_artifact_registry_repository_iam_member.sa",
        "google_service_account_iam_member.pipelines_act_as",
        "google_secret_manager_secret_iam_member.model_job",
    } <= waited


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    job = "google_cloud_run_v2_job.model[0].template[0].template[0].containers[0]"
    return rendered_terraform.render(
        tmp_path_factory.mktemp("render"),
        {
            "bindings": 'jsondecode(google_cloudfunctions2_function.fn["predict"]'
            '.service_config[0].environment_variables["PREDICT_SENSOR_BINDINGS"])',
            "smoke_account": 'google_service_account.sa["smoke"].email',
            "smoke_invokes": "[for k, m in google_cloud_run_service_iam_member.invoker : k"
            ' if m.member == google_service_account.sa["smoke"].member]',
            "job_env": f"{{ for e in {job}.env : e.name => e.value if e.value != null }}",
            "job_secret_env": f"[for e in {job}.env : e.name if length(e.value_source) > 0]",
            "job_args": f"{job}.args",
            "role_members": "local.db_role_members",
        },
        variables={"operators": "model-ops@example.com"},
    )


def test_the_smoke_account_writes_exactly_the_sensor_the_smoke_test_sends(
    rendered: dict,
) -> None:
    assert rendered["bindings"][rendered["smoke_account"]] == [smoke.SMOKE_SENSOR]
    assert smoke.SMOKE_SENSOR.startswith(SMOKE_SENSOR_PREFIX)  # left out of training and QC
    assert sorted(rendered["smoke_invokes"]) == ["predict/smoke", "samples/smoke"]


def test_the_model_jobs_environment_is_what_potability_reads(rendered: dict) -> None:
    env = rendered["job_env"]
    settings_names = {f.validation_alias for f in Settings.model_fields.values()}
    mlflow_client = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME"}  # read by MLflow
    assert set(env) - settings_names <= mlflow_client, set(env) - settings_names - mlflow_client
    assert rendered["job_secret_env"] == ["MLFLOW_TRACKING_PASSWORD"]
    s = Settings.from_env(env)
    assert (s.env, s.endpoint_mode, s.db_iam_auth) == ("gcp", "vertex", True)
    assert s.cloud_sql_instance and s.db_user and s.vertex_endpoint_id
    assert env["MLFLOW_TRACKING_URI"].startswith("http://") and env["MLFLOW_TRACKING_URI"].endswith(
        ":5000"
    )


def test_the_migration_job_makes_the_model_jobs_user_an_operator(rendered: dict) -> None:
    members = dict(Settings.from_env({"DB_ROLE_MEMBERS": rendered["role_members"]}).db_role_members)
    assert set(members) <= set(migrations.ACCESS_ROLES)  # migrate refuses unknown services
    assert migrations.ACCESS_ROLES["model-job"] == migrations.ACCESS_ROLES["operators"]
    assert members["model-job"] == rendered["job_env"]["DB_USER"]


def test_the_jobs_default_and_make_gcp_model_arguments_are_potability_commands(
    rendered: dict,
) -> None:
    default = rendered["job_args"]
    assert default[0] == "potability"
    assert parsed(default[1:])[0] == "model status"
    cmd = model_job.execute_command(
        "p", "r", "j", ["rollback", "4", "--reason", "live precision fell, week 48"]
    )
    (value,) = [a.removeprefix("--args=") for a in cmd if a.startswith("--args=")]
    delim = value[1] if value.startswith("^") else ","
    argv = value[3:].split(delim) if value.startswith("^") else value.split(",")
    assert argv[0] == "potability"
    assert parsed(argv[1:]) == (
        "model rollback",
        {"version": "4", "reason": "live precision fell, week 48"},
    )


def parsed(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """``potability ARGV`` as the command line parses it, without running it: the command's
    name and its parameters (the groups take no options: each one's first word is a command)."""
    command: click.Command = cli.commands
    path = []
    while isinstance(command, click.Group):
        path.append(argv[0])
        command, argv = command.commands[argv[0]], argv[1:]
    return " ".join(path), command.make_context(path[-1], list(argv)).params
