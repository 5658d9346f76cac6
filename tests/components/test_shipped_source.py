"""What KFP ships of each component: the function's own source and KFP's star imports, nothing
of the module around it. A name the body takes from its module (an import at the top of the
file, a constant) works in the tests that call the function directly and fails in the pipeline
with ``NameError`` (it happened: ``UTC`` imported at module level, quality control failed in
every scheduled run). So each component is built as the pipeline builds it, the program KFP
would run is executed, and every global name the body loads must resolve there."""

from __future__ import annotations

import builtins
import dis
import types

import pytest

from components import (
    deploy_step,
    evaluate_step,
    export_step,
    promote_step,
    quality_control,
    runtime,
    train_step,
)

COMPONENTS = [
    export_step.export_component,
    train_step.train_component,
    evaluate_step.evaluate_component,
    promote_step.promote_component,
    deploy_step.deploy_component,
    quality_control.quality_control_component,
]


def _global_loads(code: types.CodeType) -> set[str]:
    """Names loaded as globals by ``code`` and every function, lambda or comprehension in it."""
    names = {
        ins.argval
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_loads(const)
    return names


def shipped_program(func: types.FunctionType) -> str:
    """The Python program KFP writes to ``ephemeral_component.py`` for ``func``."""
    component = runtime.as_component(func, "image")
    command = component.component_spec.implementation.container.command
    assert "ephemeral_component.py" in command[2], command[2]
    return command[3]


@pytest.mark.parametrize("func", COMPONENTS, ids=lambda f: f.__name__)
def test_the_shipped_body_resolves_every_name_it_uses(func: types.FunctionType) -> None:
    program = shipped_program(func)
    namespace: dict[str, object] = {"__name__": "ephemeral_component"}
    exec(compile(program, "ephemeral_component.py", "exec"), namespace)
    shipped = namespace[func.__name__]
    assert isinstance(shipped, types.FunctionType)
    unresolved = {
        name
        for name in _global_loads(shipped.__code__)
        if name not in namespace and not hasattr(builtins, name)
    }
    assert not unresolved, f"{func.__name__} uses {sorted(unresolved)} from its module"


def test_the_check_finds_a_name_taken_from_the_module() -> None:
    """The check itself: a body that uses a module-level import is caught."""
    body_only: dict[str, object] = {}
    exec("def f():\n    return UTC\n", body_only)
    f = body_only["f"]
    assert isinstance(f, types.FunctionType)
    assert {n for n in _global_loads(f.__code__) if n not in body_only} == {"UTC"}
