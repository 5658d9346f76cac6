"""Settings are built in one place: ``potability/config.py`` reads the environment, nothing else."""

import re
import stat
from pathlib import Path
from typing import get_type_hints

import pytest
from pydantic import SecretStr

from potability import config

ROOT = Path(__file__).resolve().parents[2]
CODE = ("potability", "training", "components", "functions", "pipelines", "notebooks")


def test_nothing_but_config_reads_the_environment() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for folder in CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "potability" / "config.py"
        and re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text())
    ]
    assert readers == []


def test_functions_import_nothing_that_starts_processes() -> None:
    """``functions/`` holds what is deployed; the local process starter lives in potability/."""
    assert not (ROOT / "functions" / "local.py").exists()
    for path in sorted((ROOT / "potability").glob("*.py")):
        assert not re.search(r"^\s*(from functions|import functions)", path.read_text(), re.M), path


def test_the_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    config.update_env(tmp_path, DATABASE_URL="postgresql://from-file", MODEL_NAME="from-file")
    settings = config.load_settings(tmp_path, {"MODEL_NAME": "from-env"})
    assert settings.database_url == "postgresql://from-file"
    assert settings.model_name == "from-env"
    assert settings.home == tmp_path


def test_without_an_env_file_the_environment_is_all(tmp_path: Path) -> None:
    settings = config.load_settings(
        None, {"POTABILITY_HOME": str(tmp_path / "none"), "DB_NAME": "x"}
    )
    assert settings.db_name == "x" and settings.database_url == ""


def test_update_env_merges_and_keeps_other_keys(tmp_path: Path) -> None:
    config.update_env(tmp_path, A="1", B="2")
    assert config.update_env(tmp_path, B="3") == {"A": "1", "B": "3"}
    assert config.read_env(tmp_path) == {"A": "1", "B": "3"}


def test_the_env_file_reads_back_every_value_and_stays_private(tmp_path: Path) -> None:
    """Values are written quoted as python-dotenv quotes them, so spaces, quotes, ``#`` and
    backslashes read back as written (the unquoted ``KEY=VALUE`` file lost them); one atomic
    replace, mode 0600, no temporary file left behind."""
    odd = {"DB_PASSWORD": " p'a\\s #s ", "PREDICT_SENSOR_BINDINGS": '{"a": ["p-1"]}', "X": ""}
    config.update_env(tmp_path, **odd)
    assert config.read_env(tmp_path) == odd
    assert stat.S_IMODE(config.env_file(tmp_path).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [config.ENV_FILE]
    settings = config.load_settings(tmp_path, {})
    assert settings.db_password.get_secret_value() == odd["DB_PASSWORD"]
    assert settings.predict_sensor_bindings == (("a", ("p-1",)),)
    with config.env_file(tmp_path).open("a") as handle:  # by hand, as docs/alerts.md does
        handle.write("ALERT_WEBHOOK_URL=http://127.0.0.1:9000/alerts\n")
    assert config.load_settings(tmp_path, {}).alert_webhook_url == "http://127.0.0.1:9000/alerts"


def test_settings_built_in_code_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only from_env/load_settings read variables: ``Settings(database_url=...)`` is its
    arguments and the defaults, whatever the process environment holds."""
    monkeypatch.setenv("DB_NAME", "stray")
    assert config.Settings().db_name == config.DEFAULT_DB_NAME
    assert config.Settings.from_env().db_name == "stray"


def test_with_validates_the_changes() -> None:
    settings = config.Settings()
    assert settings.with_(db_pool_size=" 3 ").db_pool_size == 3
    with pytest.raises(ValueError, match="db_pool_size"):
        settings.with_(db_pool_size="x")
    with pytest.raises(ValueError, match="db_pool_sise"):
        settings.with_(db_pool_sise=3)


def test_schedule_defaults_are_terraforms() -> None:
    variables = (ROOT / "terraform" / "variables.tf").read_text()

    def default(name: str) -> str:
        block = re.search(rf'variable "{name}" \{{(.*?)\n\}}', variables, re.S)
        assert block, name
        return re.search(r'default\s*=\s*"([^"]*)"', block.group(1)).group(1)

    assert config.Settings().pipeline_schedule == default("schedule")
    assert config.Settings().pipeline_schedule_time_zone == default("schedule_time_zone")
    assert config.Settings.from_env({"PIPELINE_SCHEDULE": ""}).pipeline_schedule == ""


def test_every_field_is_read_from_its_variable_cast_by_its_type() -> None:
    """from_env is derived from the fields: set every variable to a value unlike the default
    and every field changes - by name, through its type."""
    given = {
        str: "x",
        SecretStr: "hush",
        int: "11",
        float: "0.5",
        config.Items: "a, b",
        config.Pairs: "predict=u1",
        config.Bindings: '{"sa@p": ["plant-1"]}',
        config.Env: "gcp",
        config.EndpointMode: "vertex",
        config.PromotionApproval: "manual",
    }
    hints = get_type_hints(config.Settings, include_extras=True)  # as written: Items, Pairs...
    environ = {}
    for name, f in config.Settings.model_fields.items():
        hint = hints[name]
        if name == "home":
            environ[f.validation_alias] = "/tmp/somewhere"
        elif name == "samples_token_sha256":
            environ[f.validation_alias] = "A, b"
        else:
            environ[f.validation_alias] = str(not f.default) if hint is bool else given[hint]
    settings = config.Settings.from_env(environ)
    default = config.Settings()
    for name, f in config.Settings.model_fields.items():
        assert getattr(settings, name) != getattr(default, name), f.validation_alias
    assert settings.db_iam_auth is False and settings.db_pool_size == 11
    assert settings.home == Path("/tmp/somewhere") and settings.qc_precision_floor == 0.5
    assert settings.samples_token_sha256 == ("a", "b")
    assert settings.db_role_members == (("predict", "u1"),)
    assert settings.predict_sensor_bindings == (("sa@p", ("plant-1",)),)
    assert settings.db_password.get_secret_value() == "hush" and "hush" not in repr(settings)


def test_the_existing_variable_names_keep_working() -> None:
    """The names Terraform and ``.potability/env`` already use (a field renamed by accident
    would silently stop reading its variable)."""
    settings = config.Settings.from_env(
        {
            "POTABILITY_ENV": "gcp",
            "DATABASE_URL": "postgresql://h/d",
            "DB_IAM_AUTH": "no",
            "SAMPLES_TOKEN_SHA256": "AB12, cd34",
            "QC_MATCH_WINDOW_MINUTES": "45",
            "PIPELINE_SCHEDULE": " 0 4 * * * ",
            "PIPELINE_SCHEDULE_PARAMS": "grids=quick,cv_folds=3",
            "DB_ROLE_MEMBERS": "predict=u1, status=u2",
            "DB_PASSWORD": " keep spaces ",
            "ALERT_WEBHOOK_TIMEOUT_SECONDS": "2.5",
            "MAX_BODY_BYTES": "2048",
        }
    )
    assert (settings.env, settings.database_url, settings.db_iam_auth) == (
        "gcp",
        "postgresql://h/d",
        False,
    )
    assert settings.samples_token_sha256 == ("ab12", "cd34")
    assert settings.qc_match_window_minutes == 45.0 and settings.max_body_bytes == 2048
    assert settings.pipeline_schedule == "0 4 * * *"
    assert settings.pipeline_schedule_params == ("grids=quick", "cv_folds=3")
    assert settings.db_role_members == (("predict", "u1"), ("status", "u2"))
    assert settings.db_password.get_secret_value() == " keep spaces "
    assert settings.alert_webhook_timeout_seconds == 2.5
    defaults = config.Settings.from_env({"home": "/x", "db_name": "y", "ENV": "gcp"})  # not ours
    assert defaults == config.Settings.from_env({}) == config.Settings()
    assert defaults.home == Path(".potability").absolute()
    assert defaults.db_iam_auth is True and defaults.qc_precision_floor == 0.60


def test_a_bad_value_is_refused_naming_its_variable() -> None:
    import pytest

    with pytest.raises(ValueError, match="DB_POOL_SIZE='eight'"):
        config.Settings.from_env({"DB_POOL_SIZE": "eight"})
    with pytest.raises(ValueError, match="DB_ROLE_MEMBERS"):
        config.Settings.from_env({"DB_ROLE_MEMBERS": "predict"})


def test_the_configuration_doc_is_generated_from_the_settings() -> None:
    """docs/configuration.md is what ``make docs`` writes now: every variable, its default."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == config.configuration_markdown(), "docs/configuration.md is stale: make docs"
    for name, f in config.Settings.model_fields.items():
        row = next(
            line for line in doc.splitlines() if line.startswith(f"| `{f.validation_alias}` |")
        )
        assert row.rstrip(" |").split("|")[-1].strip(), f"{name} has no docstring"
    assert "| `QC_PRECISION_FLOOR` | `0.6` |" in doc and "| `DB_POOL_SIZE` | `8` |" in doc
    assert "[docs/configuration.md](docs/configuration.md)" in (ROOT / "README.md").read_text()


def test_a_value_that_does_not_parse_stops_start_up_naming_every_variable() -> None:
    """A typo never becomes a silent default or ``False`` (``DB_IAM_AUTH=ture`` used to switch
    IAM database authentication off): every bad variable is named, with what it accepts."""
    with pytest.raises(ValueError, match="invalid settings") as caught:
        config.Settings.from_env(
            {
                "DB_IAM_AUTH": "ture",
                "ENDPOINT_MODE": "vertx",
                "PROMOTION_APPROVAL": "Manual-ish",
                "POTABILITY_ENV": "prod",
                "DB_POOL_SIZE": "8x",
                "QC_PRECISION_FLOOR": "half",
                "ID_TOKEN_PLATFORM_VERIFIED": "",
                "MODEL_NAME": "fine",
            }
        )
    message = str(caught.value)
    for name in (
        "DB_IAM_AUTH='ture'",
        "ENDPOINT_MODE='vertx'",
        "PROMOTION_APPROVAL",
        "POTABILITY_ENV='prod'",
        "DB_POOL_SIZE='8x'",
        "QC_PRECISION_FLOOR='half'",
        "ID_TOKEN_PLATFORM_VERIFIED=''",
    ):
        assert name in message, name
    assert "'local' or 'vertex'" in message and "MODEL_NAME" not in message


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("1", True), ("0", False), (" yes ", True), ("off", False)],
)
def test_booleans_read_the_usual_spellings(text: str, value: bool) -> None:
    assert config.Settings.from_env({"DB_IAM_AUTH": text}).db_iam_auth is value


def test_a_huge_bad_value_is_shown_cut() -> None:
    with pytest.raises(ValueError, match="DB_POOL_SIZE") as caught:
        config.Settings.from_env({"DB_POOL_SIZE": "9" * 10 + "x" * 10_000})
    assert len(str(caught.value)) < 400


def test_the_model_server_names_a_bad_port() -> None:
    with pytest.raises(ValueError, match="AIP_HTTP_PORT='80a'"):
        config.ServingSettings.from_env({"AIP_HTTP_PORT": "80a"})
    assert config.ServingSettings.from_env({"AIP_HTTP_PORT": " 9000 "}).port == 9000


def test_the_model_server_reads_its_settings_like_the_others() -> None:
    """One mechanism (from_env): every bad variable named at once, values stripped."""
    with pytest.raises(ValueError, match="invalid settings") as caught:
        config.ServingSettings.from_env({"AIP_HTTP_PORT": "80a", "MODEL_SERVER_THREADS": "x"})
    assert "AIP_HTTP_PORT='80a'" in str(caught.value)
    assert "MODEL_SERVER_THREADS='x'" in str(caught.value)
    read = config.ServingSettings.from_env
    assert read({}) == config.ServingSettings()
    vertex = read({"AIP_STORAGE_URI": "gs://b/m", "MODEL_URI": "models:/m/4", "MODEL_NAME": " m "})
    assert (vertex.model_uri, vertex.model_name, vertex.model_version) == (
        "gs://b/m",
        "m",
        "unknown",
    )
    assert read({"MODEL_URI": "models:/m/4"}).model_version == "4"
    assert read({"AIP_STORAGE_URI": "", "MODEL_URI": "models:/m/4"}).model_uri == "models:/m/4"
    assert read({"MODEL_URI": "models:/m@champion"}).model_version == "unknown"
    assert read({"MODEL_URI": "models:/m/4", "MODEL_VERSION": "7"}).model_version == "7"
