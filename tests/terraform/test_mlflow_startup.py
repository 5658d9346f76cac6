"""The MLflow VM's authentication, run for real: the auth section of the startup script
(terraform/templates/mlflow-startup.sh.tftpl, rendered by Terraform's own ``templatefile``)
against a real ``mlflow server --app-name basic-auth`` on 127.0.0.1.

Only Secret Manager is faked: a ``gcloud`` first on ``PATH`` that keeps secret versions in
files and logs its command lines (so the test can see no password on one).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import TF_DIR

FAKE_GCLOUD = r"""#!/bin/bash
# fake gcloud: secrets versions access latest --secret S --project P
#            | secrets versions add S --project P --data-file=-
set -euo pipefail
echo "$*" >>"$FAKE_GCLOUD_STORE/argv.log"
[ "$1 $2" = "secrets versions" ] || { echo "unexpected: $*" >&2; exit 2; }
verb=$3; shift 3
secret=""; project=""
while [ $# -gt 0 ]; do
  case "$1" in
    --secret) secret=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --data-file=-|latest) shift ;;
    *) secret=$1; shift ;;
  esac
done
[ "$project" = "test-project" ] || { echo "wrong project: $project" >&2; exit 3; }
case "$verb" in
  access)
    [ -f "$FAKE_GCLOUD_STORE/$secret" ] || { echo "NOT_FOUND" >&2; exit 1; }
    cat "$FAKE_GCLOUD_STORE/$secret" ;;
  add) cat >"$FAKE_GCLOUD_STORE/$secret"; echo "add $secret" >>"$FAKE_GCLOUD_STORE/adds.log" ;;
  *) exit 2 ;;
esac
"""


def render_startup_script(
    terraform_bin: str, offline, workdir: Path, auth_database_uri: str
) -> str:
    """The script exactly as Terraform renders it (``templatefile`` in ``terraform console``)."""
    values = {
        "mlflow_version": "3.17.2",
        "mlflow_workers": 2,  # the variable's default (security.tftest.hcl checks the VM's)
        "proxy_version": "2.18.0",
        "proxy_sha256": "0" * 64,
        "project": "test-project",
        "admin_secret": "potability-mlflow-admin-password",
        "pipelines_secret": "potability-mlflow-pipelines-password",
        "instance_connection": "test-project:europe-west1:potability-pg",
        "db_name": "potability",
        "db_user": "potability-mlflow@test-project.iam",
        "artifacts_uri": "gs://b/mlflow-artifacts",
        "auth_database_uri": auth_database_uri,
    }
    expr = (
        f'base64encode(templatefile("{TF_DIR}/templates/mlflow-startup.sh.tftpl", '
        f"{json.dumps(values)}))"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [terraform_bin, "console"],
        input=expr,
        cwd=workdir,
        capture_output=True,
        text=True,
        env=offline.clean_env(None),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return base64.b64decode(res.stdout.strip().strip('"')).decode()


def auth_section(script: str) -> str:
    start, end = script.index("# >>> auth"), script.index("# <<< auth")
    return script[start:end]


def mlflow_users_unit(script: str) -> str:
    """The systemd unit that sets up the pipeline's MLflow user, as the script writes it."""
    start = script.index("cat >/etc/systemd/system/mlflow-users.service <<UNIT\n")
    body = script[start:].split("\n", 1)[1]
    return body[: body.index("\nUNIT\n")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_section(section: str, call: str, env: dict[str, str]) -> None:
    res = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{section}\n{call}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, f"{call}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"


@pytest.fixture
def rendered(terraform_bin: str, offline, tmp_path: Path) -> tuple[str, Path]:
    home = tmp_path / "mlflow"
    (home / "auth").mkdir(parents=True)
    script = render_startup_script(
        terraform_bin, offline, tmp_path / "console", f"sqlite:///{home}/auth.db"
    )
    return script, home


def test_startup_script_is_bash_and_wires_the_auth_app(rendered) -> None:
    script, _ = rendered
    res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "mlflow server --app-name basic-auth" in script
    # 2 workers, not MLflow's default 4 (~1.4 GB): the VM is an e2-small (variables.tf).
    (exec_start,) = [line for line in script.splitlines() if "bin/mlflow server" in line]
    assert exec_start.endswith(" --workers 2"), exec_start
    assert "Environment=MLFLOW_AUTH_CONFIG_PATH=$MLFLOW_HOME/auth/basic_auth.ini" in script
    assert "EnvironmentFile=$MLFLOW_HOME/auth/server.env" in script
    assert 'write_user_setup_script "$MLFLOW_HOME/auth" 5000' in script
    unit = mlflow_users_unit(script)
    for line in (
        "Type=oneshot",
        "Restart=on-failure",
        "StartLimitIntervalSec=0",
        "After=mlflow.service",
        "ExecStart=$MLFLOW_HOME/auth/ensure-pipelines-user.sh",
    ):
        assert line in unit.splitlines(), line
    assert "systemctl restart --no-block mlflow-users.service" in script
    assert "sha256sum --check --strict" in script


class SecretManagerFromStore:
    """Answers Secret Manager's ``versions.access`` from the fake gcloud's store, so a pipeline
    step's login (components.runtime.mlflow_login) runs against this real MLflow server."""

    def __init__(self, store: Path) -> None:
        self.store, self.urls = store, []

    def get(self, url: str, timeout: float) -> Any:
        self.urls.append(url)
        secret = url.split("/secrets/")[1].split("/versions/")[0]
        data = base64.b64encode((self.store / secret).read_bytes()).decode()
        answer = requests.models.Response()
        answer.status_code, answer._content = 200, json.dumps({"payload": {"data": data}}).encode()
        return answer


def test_only_authenticated_users_reach_mlflow(
    rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, home = rendered
    auth_dir = home / "auth"
    store = tmp_path / "secrets"
    store.mkdir()
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "gcloud").write_text(FAKE_GCLOUD)
    (fakebin / "gcloud").chmod(0o755)
    env = {**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}", "FAKE_GCLOUD_STORE": str(store)}
    section = auth_section(script)

    # First boot: passwords generated into the (fake) Secret Manager, config written 0600.
    run_section(section, f'write_auth_config "{auth_dir}"', env)
    admin = (store / "potability-mlflow-admin-password").read_text()
    pipelines = (store / "potability-mlflow-pipelines-password").read_text()
    assert len(admin) == 48 and len(pipelines) == 48 and admin != pipelines
    ini = (auth_dir / "basic_auth.ini").read_text()
    assert "default_permission = NO_PERMISSIONS" in ini and f"admin_password = {admin}" in ini
    assert (auth_dir / "basic_auth.ini").stat().st_mode & 0o077 == 0
    assert (auth_dir / "server.env").stat().st_mode & 0o077 == 0
    server_env = dict(line.split("=", 1) for line in (auth_dir / "server.env").read_text().split())

    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{home}/store.db",
            "--default-artifact-root",
            str(home / "artifacts"),
        ],
        env={
            **os.environ,
            **server_env,
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_dir / "basic_auth.ini"),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        run_section(section, f'ensure_pipelines_user "{auth_dir}" {port}', env)
        assert not (auth_dir / "curl.cfg").exists() and not (auth_dir / "pipelines.json").exists()
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow"

        assert (
            requests.get(
                f"{api}/experiments/search", params={"max_results": 1}, timeout=30
            ).status_code
            == 401
        )
        assert (
            requests.get(
                f"{api}/experiments/search",
                params={"max_results": 1},
                auth=("pipelines", "wrong"),
                timeout=30,
            ).status_code
            == 401
        )
        created = requests.post(
            f"{api}/experiments/create",
            json={"name": "water-potability"},
            auth=("pipelines", pipelines),
            timeout=30,
        )
        assert created.status_code == 200, created.text
        experiment_id = created.json()["experiment_id"]
        run = requests.post(
            f"{api}/runs/create",
            json={"experiment_id": experiment_id},
            auth=("pipelines", pipelines),
            timeout=30,
        )
        assert run.status_code == 200, run.text
        # The pipelines user is not an admin: it cannot create users.
        assert (
            requests.post(
                f"{api}/users/create",
                json={"username": "x", "password": "y" * 12},
                auth=("pipelines", pipelines),
                timeout=30,
            ).status_code
            == 403
        )
        assert (
            requests.get(
                f"{api}/experiments/get",
                params={"experiment_id": experiment_id},
                auth=("admin", admin),
                timeout=30,
            ).status_code
            == 200
        )

        # A pipeline step logs in as the pipelines user with the secret Terraform names in the
        # schedule (pipeline.tf: mlflow_credentials_secret) and MLflow's own client gets in.
        import mlflow

        from components.runtime import mlflow_login

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "")
        with pytest.raises(mlflow.exceptions.MlflowException):
            mlflow.MlflowClient(f"http://127.0.0.1:{port}").get_experiment(experiment_id)
        secret_manager = SecretManagerFromStore(store)
        mlflow_login("projects/demo/secrets/potability-mlflow-pipelines-password", secret_manager)
        assert secret_manager.urls == [
            "https://secretmanager.googleapis.com/v1/projects/demo/secrets/"
            "potability-mlflow-pipelines-password/versions/latest:access"
        ]
        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
        assert client.get_experiment(experiment_id).name == "water-potability"

        # Second boot: same secrets, same Flask key, the user's password set again (no error).
        run_section(section, f'write_auth_config "{auth_dir}"', env)
        run_section(section, f'ensure_pipelines_user "{auth_dir}" {port}', env)
        assert (
            dict(line.split("=", 1) for line in (auth_dir / "server.env").read_text().split())
            == server_env
        )
        assert (store / "adds.log").read_text().split("\n").count(
            "add potability-mlflow-admin-password"
        ) == 1
        assert (
            requests.get(
                f"{api}/experiments/get",
                params={"experiment_id": experiment_id},
                auth=("pipelines", pipelines),
                timeout=30,
            ).status_code
            == 200
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)

    argv = (store / "argv.log").read_text()
    assert admin not in argv and pipelines not in argv, "a password appeared on a command line"


def test_the_pipelines_user_is_set_up_once_mlflow_gets_its_database_late(
    rendered, tmp_path: Path, database_url: str, fresh_db: str
) -> None:
    """The first boot's real order on GCP: the VM starts MLflow before the migration job has
    granted MLflow its schema, so MLflow cannot start (systemd restarts it) and the user setup
    fails (systemd restarts it, mlflow-users.service) - until the grant; then both succeed.

    systemd is emulated by two loops that honour the units' Restart= settings, with the
    restart delays shortened; MLflow's backend store is a real database on the session's
    PostgreSQL whose MLflow role gets CREATE on public only later (as `potability migrate`
    grants it through water_mlflow)."""
    import re
    import threading
    import uuid

    from potability import db
    from potability.config import Settings

    script, home = rendered
    auth_dir = home / "auth"
    store = tmp_path / "secrets"
    store.mkdir()
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "gcloud").write_text(FAKE_GCLOUD)
    (fakebin / "gcloud").chmod(0o755)
    env = {**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}", "FAKE_GCLOUD_STORE": str(store)}
    section = auth_section(script)
    run_section(section, f'write_auth_config "{auth_dir}"', env)
    port = free_port()
    run_section(section, f'write_user_setup_script "{auth_dir}" {port}', env)
    program = auth_dir / "ensure-pipelines-user.sh"
    assert program.stat().st_mode & 0o077 == 0
    unit = mlflow_users_unit(script)
    assert (
        "Restart=on-failure" in unit.splitlines() and "StartLimitIntervalSec=0" in unit.splitlines()
    )

    role = f"mlflow_late_{uuid.uuid4().hex[:8]}"
    admin = db.connect(Settings(database_url=fresh_db))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE ROLE {role} LOGIN")
    backend = db.sqlalchemy_url(re.sub(r"^(postgresql://)[^@/]*@", rf"\g<1>{role}@", fresh_db))
    server_env = dict(line.split("=", 1) for line in (auth_dir / "server.env").read_text().split())
    stop = threading.Event()
    servers: list[subprocess.Popen] = []

    def mlflow_service() -> None:  # Restart=always
        while not stop.is_set():
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlflow"),
                    "server",
                    "--app-name",
                    "basic-auth",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    backend,
                    "--default-artifact-root",
                    str(home / "artifacts"),
                ],
                env={
                    **os.environ,
                    **server_env,
                    "MLFLOW_AUTH_CONFIG_PATH": str(auth_dir / "basic_auth.ini"),
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                },
                cwd=home,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            servers.append(proc)
            while proc.poll() is None and not stop.is_set():
                time.sleep(0.2)
            stop.wait(1)

    attempts: list[int] = []

    def mlflow_users_service(deadline: float) -> None:  # Restart=on-failure, no start limit
        while time.monotonic() < deadline:
            res = subprocess.run(
                [str(program)],
                env={**env, "MLFLOW_USER_SETUP_TRIES": "1"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            attempts.append(res.returncode)
            if res.returncode == 0:
                return
            time.sleep(1)

    thread = threading.Thread(target=mlflow_service, daemon=True)
    thread.start()
    try:
        # Before the migration: MLflow exits (no CREATE on public) and the setup fails.
        deadline = time.monotonic() + 120
        while not any(p.poll() is not None for p in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(p.poll() not in (None, 0) for p in servers), "MLflow started without its schema?"
        mlflow_users_service(time.monotonic() + 2)
        assert attempts and attempts[-1] != 0
        # The migration job grants MLflow its schema; both units recover by themselves.
        admin.cursor().execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        mlflow_users_service(time.monotonic() + 240)
        assert attempts[-1] == 0, f"the user setup never succeeded: {attempts}"
        pipelines = (store / "potability-mlflow-pipelines-password").read_text()
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        answer = requests.post(
            f"{api}/experiments/create",
            json={"name": "late"},
            auth=("pipelines", pipelines),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        for proc in servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        thread.join(timeout=10)
        admin.cursor().execute(f"DROP OWNED BY {role}")  # MLflow's tables, in this database only
        admin.cursor().execute(f"DROP ROLE {role}")
        admin.close()
