"""The one ``database`` parameter: what a step makes of it, and what the runners send."""

from __future__ import annotations

import pytest

from components import runtime
from potability.config import Settings


def test_a_step_reads_the_database_from_the_one_parameter() -> None:
    cloud = Settings(
        cloud_sql_instance="demo:europe-west1:potability",
        db_name="potability",
        db_user="pipelines@demo.iam",
    )
    parameter = runtime.database_parameter(cloud)
    assert parameter == {
        "url": "",
        "cloud_sql_instance": "demo:europe-west1:potability",
        "name": "potability",
        "user": "pipelines@demo.iam",
    }
    settings = runtime.step_settings(parameter)
    assert (
        settings.database_url,
        settings.cloud_sql_instance,
        settings.db_name,
        settings.db_user,
    ) == ("", "demo:europe-west1:potability", "potability", "pipelines@demo.iam")
    local = runtime.step_settings({"url": "postgresql://u@/db?host=/tmp/pg"})
    assert (local.database_url, local.cloud_sql_instance) == ("postgresql://u@/db?host=/tmp/pg", "")


def test_an_unknown_key_in_the_database_parameter_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown keys \['database_url'\]; its keys are url, "
        r"cloud_sql_instance, name, user",
    ):
        runtime.step_settings({"database_url": "postgresql://u@h/db"})
