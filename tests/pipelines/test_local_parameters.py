"""What ``run --local`` sends: the declared defaults, the local stack's database as the one
``database`` parameter, then the user's overrides."""

from __future__ import annotations

import pytest

from pipelines.local_run import local_parameters
from pipelines.training_pipeline import default_parameters
from potability.config import Settings

STACK = Settings(
    database_url="postgresql://postgres:@/potability?host=/tmp/pg",
    mlflow_tracking_uri="http://127.0.0.1:5000",
    model_name="wp",
)


def test_local_runs_send_the_stacks_database_as_one_parameter() -> None:
    params = local_parameters(STACK, {"grids": "quick", "database": {"name": "other"}})
    assert set(params) == set(default_parameters())
    assert params["database"] == {
        "url": STACK.database_url,
        "cloud_sql_instance": "",
        "name": "other",
        "user": STACK.db_user,
    }  # only "name" changed
    assert (params["grids"], params["model_name"], params["deploy_target"]) == (
        "quick",
        "wp",
        "local",
    )
    assert default_parameters()["database"]["name"] == "potability"  # the defaults untouched


def test_unknown_parameters_and_a_stack_that_is_not_up_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\['database_url'\]"):
        local_parameters(STACK, {"database_url": "x"})
    with pytest.raises(RuntimeError, match="the local stack is not up"):
        local_parameters(STACK.with_(database_url=""))
