"""Flows take the name of a saved credentials block, never the block (tasks may take either).

Prefect stores a flow run's parameters: an inline block would be kept with its secrets
masked, so a re-run from the UI would get the masked copy; the parameter form would offer
an object instead of a name.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from blocks.credentials import DcsCredentials
from flows.runbook import migration_runbook
from flows.sensor import migration_sensor
from flows.wait import wait_for_migration_task, wait_for_migration_tasks

pytestmark = pytest.mark.usefixtures("prefect_harness")

TOKEN = "flow-parameter-token-canary-31f9"
BLOCK = DcsCredentials(endpoint="http://127.0.0.1:9", project_id="project-1", token=TOKEN)

Call = Callable[[Any], Coroutine[Any, Any, Any]]
FLOWS = [
    pytest.param(lambda c: wait_for_migration_task("t1", c), id="wait-for-migration-task"),
    pytest.param(lambda c: wait_for_migration_tasks(["t1"], c), id="wait-for-migration-tasks"),
    pytest.param(lambda c: migration_runbook("t1", c), id="migration-runbook"),
    pytest.param(lambda c: migration_sensor(credentials=c), id="migration-sensor"),
]


@pytest.mark.parametrize("call", FLOWS)
async def test_a_flow_refuses_a_block_and_says_to_pass_its_name(call: Call) -> None:
    """Passing the block itself fails before any work, naming `credentials` and the fix."""
    with pytest.raises(ParameterTypeError) as raised:
        await call(BLOCK)
    message = str(raised.value)
    assert "credentials" in message
    assert "name of a saved DcsCredentials block" in message
    assert "block.save(" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param(wait_for_migration_task, id="wait-for-migration-task"),
        pytest.param(wait_for_migration_tasks, id="wait-for-migration-tasks"),
        pytest.param(migration_runbook, id="migration-runbook"),
        pytest.param(migration_sensor, id="migration-sensor"),
    ],
)
def test_the_parameter_form_asks_for_a_name(flow: Any) -> None:
    """The UI's parameter form shows `credentials` as one text field with the default 'dcs'."""
    schema = parameter_schema(flow.fn).model_dump()["properties"]["credentials"]
    assert schema["type"] == "string"
    assert schema["default"] == "dcs"
    assert "anyOf" not in schema
