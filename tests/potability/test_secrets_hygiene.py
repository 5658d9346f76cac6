"""No database password on a command line (ps) or in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from potability import db
from potability.local import stack as local_stack

URL = "postgresql://app:s3cret-pw@db.example:5432/potability"


def test_mlflow_gets_its_backend_store_from_the_environment_not_the_command_line(
    tmp_path: Path,
) -> None:
    argv, env = local_stack.mlflow_server_command(tmp_path, URL, 5000)
    assert not any("s3cret-pw" in arg for arg in argv)
    assert "--backend-store-uri" not in argv
    assert (
        env["MLFLOW_BACKEND_STORE_URI"]
        == "postgresql+pg8000://app:s3cret-pw@db.example:5432/potability"
    )


def test_urls_in_messages_are_redacted() -> None:
    assert db.redact_url(URL) == "postgresql://app:***@db.example:5432/potability"
    assert (
        db.redact_url("postgresql://postgres@/potability?host=/tmp/x")
        == "postgresql://postgres@/potability?host=/tmp/x"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL") as err:
        db.parse_database_url("mysql://app:s3cret-pw@h/db")
    assert "s3cret-pw" not in str(err.value)


def test_an_empty_password_is_left_as_it_is() -> None:
    url = "postgresql://postgres:@/potability?host=/tmp/pg"
    assert db.redact_url(url) == url
