"""Regulator tokens: revoked within a minute (hashes re-read, 30 s cache) on GCP and locally,
and managed locally with ``potability samples tokens list|add|revoke``."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from fn_support import make_app, sample

from functions import regulator_tokens
from functions.auth import authorise_samples
from functions.context import Context
from functions.http import ApiError
from functions.regulator_tokens import TokenHashes
from potability import cli, config
from potability.config import Settings, token_sha256
from potability.local import function_servers

SECRET = "projects/p/secrets/potability-samples-token-sha256"


def test_a_revoked_secret_version_is_refused_within_the_refresh_time() -> None:
    alice, bob = "alice-token", "bob-token"
    published = [f"{token_sha256(alice)},{token_sha256(bob)}"]
    reads: list[str] = []

    def read_secret(name: str) -> str:
        reads.append(name)
        return published[0]

    now = [0.0]
    hashes = TokenHashes(
        Settings(env="gcp", samples_token_secret=SECRET), read_secret, clock=lambda: now[0]
    )
    settings = Settings(env="gcp")
    bearer = {"Authorization": f"Bearer {bob}"}
    assert authorise_samples(bearer, settings, hashes=hashes.current()).startswith("token:")
    published[0] = token_sha256(alice)  # rotation: a new version without bob's hash
    now[0] += regulator_tokens.REFRESH_SECONDS - 1
    assert authorise_samples(bearer, settings, hashes=hashes.current())  # cached: still in
    now[0] += 1
    with pytest.raises(ApiError) as err:
        authorise_samples(bearer, settings, hashes=hashes.current())
    assert err.value.status == 403
    assert reads == [SECRET, SECRET]

    def down(name: str) -> str:
        raise OSError("Secret Manager unavailable")

    failing = TokenHashes(Settings(env="gcp", samples_token_secret=SECRET), down)
    assert failing.current() == ()  # nothing known: fails closed


def test_secret_manager_adapter_sends_the_documented_request() -> None:
    from potability.gcp.secret_manager import access_secret

    class Session:
        def get(self, url: str, timeout: float):
            self.url = url

            class R:
                def raise_for_status(self) -> None: ...

                def json(self) -> dict:
                    return {"payload": {"data": base64.b64encode(b"ab" * 32).decode()}}

            return R()

    session = Session()
    assert regulator_tokens.parse_hashes(access_secret(SECRET, session)) == ("ab" * 32,)
    assert session.url == f"https://secretmanager.googleapis.com/v1/{SECRET}/versions/latest:access"


def run_cli(monkeypatch, capsys, home: Path, *argv: str) -> tuple[int, str]:
    monkeypatch.setenv("POTABILITY_HOME", str(home))
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_local_tokens_list_add_revoke(tmp_path, monkeypatch, capsys, fn_settings, clean_db) -> None:
    home = tmp_path / "stack"
    code, out = run_cli(monkeypatch, capsys, home, "samples", "tokens", "add")
    assert code == 0
    ident, token = out.splitlines()[0].split()[0], out.splitlines()[1]
    assert ident == f"token:{token_sha256(token)[:8]}"
    assert token not in config.env_file(home).read_text()
    code, out = run_cli(monkeypatch, capsys, home, "samples", "tokens", "list")
    assert ident in out
    # a function reading this env file (as `potability functions` starts it) accepts it...
    ctx = Context(
        fn_settings.with_(
            samples_token_sha256=(), samples_token_secret=f"file:{config.env_file(home)}"
        )
    )
    client = make_app(ctx).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/add_sample", json=sample("lab-rev-1"), headers=headers).status_code == 201
    code, out = run_cli(monkeypatch, capsys, home, "samples", "tokens", "revoke", ident)
    assert code == 0 and ident in out
    assert run_cli(monkeypatch, capsys, home, "samples", "tokens", "revoke", ident)[0] == 1
    ctx.regulator_hashes._read_at -= regulator_tokens.REFRESH_SECONDS  # 30 s later
    refused = client.post("/add_sample", json=sample("lab-rev-2"), headers=headers)
    assert refused.status_code == 403
    ctx.close()


def test_the_state_folder_and_env_file_are_private(tmp_path) -> None:
    home = tmp_path / "state"
    old = os.umask(0o022)
    try:
        config.update_env(home, DATABASE_URL="postgresql://u:secret@h/db")
        function_servers.regulator_token(home)
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
    assert stat.S_IMODE(config.env_file(home).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / function_servers.TOKEN_FILE).stat().st_mode) == 0o600
