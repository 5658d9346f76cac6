"""``potability model ...`` as an operator types it (potability/cli.py), on the real database
and MLflow: hold / status / release, and the refusals that change nothing (exit 2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from potability import cli, config, db


@pytest.fixture
def operator_env(
    tmp_path: Path,
    settings: Any,
    mlflow_uri: str,
    conn: db.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    name = f"test-cli-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    config.update_env(
        home,
        DATABASE_URL=settings.database_url,
        MLFLOW_TRACKING_URI=mlflow_uri,
        MODEL_SERVER_URL="http://127.0.0.1:9",
    )  # nothing serves
    for key in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "MODEL_SERVER_URL", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("POTABILITY_HOME", str(home))
    monkeypatch.setenv("MODEL_NAME", name)
    yield name
    conn.rollback()
    conn.cursor().execute("DELETE FROM water.model_changes WHERE model_name = %s", (name,))
    conn.cursor().execute("DELETE FROM water.alerts WHERE occurrence LIKE %s", (f"{name}%",))
    conn.commit()


def test_hold_status_release_and_refusals(operator_env: str, capsys: Any) -> None:
    assert cli.main(["model", "hold", "--reason", "lab review"]) == 0
    assert cli.main(["model", "status"]) == 0
    out = capsys.readouterr().out
    assert "HELD since" in out and "lab review" in out and "nothing answers" in out
    assert cli.main(["model", "rollback", "--reason", "bad night"]) == 2
    assert "no earlier champion" in capsys.readouterr().err
    assert cli.main(["model", "approve", "3", "--reason", "ok"]) == 2
    assert "promotions are held" in capsys.readouterr().err
    assert cli.main(["model", "release", "--reason", "done"]) == 0
    assert cli.main(["model", "release", "--reason", "again"]) == 0
    assert "not held" in capsys.readouterr().out
    assert cli.main(["model", "reject", "3", "--reason", "no"]) == 2
    assert cli.main(["model", "hold"]) == 2  # --reason is required
    assert "Missing option '--reason'" in capsys.readouterr().err
