"""The defaults shared by Python, the pipeline signature and ``terraform/variables.tf`` agree
in value, not only in name.

A default lives where its code needs it - the training config, the promotion rule, the
endpoint scaling, the settings - and again in the pipeline's signature (what a run without that
parameter uses) and in the Terraform variable (what the schedule sends). Three copies of one
number can drift apart silently: a changed ``promotion_false_rate`` in Python alone would leave
every scheduled run on the old one. Here each copy is compared with the others.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from components.vertex import ReplicaScaling
from pipelines.training_pipeline import default_parameters
from potability.config import Settings
from training.modeling import TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = (ROOT / "terraform" / "variables.tf").read_text()


def terraform_default(name: str) -> Any:
    """The literal default of ``variable "name"`` (a number or a string), or KeyError."""
    block = re.search(rf'^variable "{re.escape(name)}" \{{\n(.*?)\n\}}', VARIABLES, re.S | re.M)
    if not block:
        raise KeyError(name)
    value = re.search(r"^\s*default\s*=\s*(\"[^\"]*\"|[-0-9.]+)\s*$", block.group(1), re.M)
    if not value:
        raise KeyError(f"{name} has no literal default")
    text = value.group(1)
    return text.strip('"') if text.startswith('"') else float(text)


PYTHON = {
    "recall_floor": TrainingConfig().recall_floor,
    "cv_folds": TrainingConfig().cv_folds,
    "split_seed": TrainingConfig().seed,
    "promotion_false_rate": Settings().promotion_false_rate,
    "promotion_look_days": Settings().promotion_look_days,
    "promotion_approval": Settings().promotion_approval,
    "candidate_expiry_days": Settings().candidate_expiry_days,
    "model_name": Settings().model_name,
    "endpoint_machine_type": ReplicaScaling().machine_type,
    "endpoint_min_replicas": ReplicaScaling().min_replicas,
    "endpoint_max_replicas": ReplicaScaling().max_replicas,
    "endpoint_cpu_target": ReplicaScaling().cpu_target,
}
"""Pipeline parameter -> the default the Python code uses when no parameter is passed."""

SHARED_WITH_TERRAFORM = [
    "recall_floor",
    "test_fraction",
    "split_seed",
    "cv_folds",
    "grids",
    "model_name",
    "promotion_false_rate",
    "promotion_look_days",
    "promotion_approval",
    "candidate_expiry_days",
    "endpoint_machine_type",
    "endpoint_min_replicas",
    "endpoint_max_replicas",
    "endpoint_cpu_target",
]

NO_PIPELINE_DEFAULT = {"region", "database"}
"""Where the deployment is: empty (or per key) in the signature, always sent by the schedule."""


@pytest.mark.parametrize("name", sorted(PYTHON))
def test_python_and_the_pipeline_signature_agree(name: str) -> None:
    assert default_parameters()[name] == PYTHON[name], name


@pytest.mark.parametrize("name", SHARED_WITH_TERRAFORM)
def test_terraform_and_the_pipeline_signature_agree(name: str) -> None:
    pipeline = default_parameters()[name]
    assert terraform_default(name) == pipeline, (
        f"variables.tf {name} != the pipeline's {pipeline!r}"
    )


def test_every_pipeline_parameter_named_like_a_terraform_variable_is_compared() -> None:
    """A parameter added to both without joining the list above still gets compared here."""
    shared = [p for p in default_parameters() if f'variable "{p}"' in VARIABLES]
    assert set(shared) <= set(SHARED_WITH_TERRAFORM) | NO_PIPELINE_DEFAULT, shared
    assert set(SHARED_WITH_TERRAFORM) <= set(shared)


def test_settings_shared_with_terraform_agree() -> None:
    settings = Settings()
    assert (
        terraform_default("db_name") == settings.db_name == default_parameters()["database"]["name"]
    )
    assert terraform_default("schedule") == settings.pipeline_schedule
    assert terraform_default("schedule_time_zone") == settings.pipeline_schedule_time_zone


def test_a_changed_default_is_caught() -> None:
    """The parser reads the values themselves: another number is a different default."""
    assert terraform_default("promotion_false_rate") == 0.05
    assert terraform_default("grids") == "default"
    with pytest.raises(KeyError):
        terraform_default("no_such_variable")
