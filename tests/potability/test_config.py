"""Settings are built in one place: ``potability/config.py`` reads the environment, nothing else."""

import re
from pathlib import Path

from potability import config

ROOT = Path(__file__).resolve().parents[2]
CODE = ("potability", "components", "functions", "pipelines", "notebooks")


def test_nothing_but_config_reads_the_environment() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for folder in CODE for path in sorted((ROOT / folder).rglob("*.py"))
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
    settings = config.load_settings(None, {"POTABILITY_HOME": str(tmp_path / "none"),
                                           "DB_NAME": "x"})
    assert settings.db_name == "x" and settings.database_url == ""


def test_update_env_merges_and_keeps_other_keys(tmp_path: Path) -> None:
    config.update_env(tmp_path, A="1", B="2")
    assert config.update_env(tmp_path, B="3") == {"A": "1", "B": "3"}
    assert config.read_env(tmp_path) == {"A": "1", "B": "3"}


def test_schedule_defaults_are_terraforms() -> None:
    variables = (ROOT / "terraform" / "variables.tf").read_text()

    def default(name: str) -> str:
        block = re.search(r'variable "%s" \{(.*?)\n\}' % name, variables, re.S)
        assert block, name
        return re.search(r'default\s*=\s*"([^"]*)"', block.group(1)).group(1)

    assert config.Settings().pipeline_schedule == default("schedule")
    assert config.Settings().pipeline_schedule_time_zone == default("schedule_time_zone")
    assert config.Settings.from_env({"PIPELINE_SCHEDULE": ""}).pipeline_schedule == ""
