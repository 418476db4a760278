"""`migrate_instance` refuses bad input before anything is sent: for each parameter, a bad
value fails the run with an error naming the field, and neither DCS nor a notification
block hears a thing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError

from blocks.errors import DcsValidationError
from flows.migrate import migrate_instance
from tests.migrate_world import TARGET, World, open_world

pytestmark = pytest.mark.usefixtures("prefect_harness")

DEPLOYMENT = {"cutover": "deployment", "cutover_deployment": "team-cutover/prod"}


def bad(field: str, value: Any, fragment: str | None = None, **also: Any) -> Any:
    """A row: `field` set to `value` (with `also`), and what the error must say."""
    return pytest.param({field: value, **also}, fragment or field, id=f"{field}={value!r}"[:60])


BAD_INPUT = [
    bad("task_name", ""),
    bad("task_name", "   "),
    bad("vpc_id", ""),
    bad("subnet_id", "subnet 1"),
    bad("security_group_id", ""),
    bad("source_instance_id", TARGET, "not both"),
    bad("source_instance_id", "no such id", "source_instance_id", source_instance_addrs=None),
    bad("source_instance_addrs", "nohost"),
    bad("source_instance_addrs", "10.0.0.5:70000"),
    bad("source_instance_addrs", None, "source_instance_id"),
    bad("source_instance_addrs", None, "the same", source_instance_id=TARGET),
    bad("source_password_secret", " "),
    bad("source_password_secret", "no-such-secret", "no-such-secret"),
    bad("target_instance_id", None, "target_instance_id"),
    bad("target_instance_addrs", "10.0.0.9:6379", "not both"),
    bad("target_password_secret", "no-such-target-secret", "no-such-target-secret"),
    bad("migration_method", "fast"),
    bad("resume_mode", "sometimes"),
    bad("bandwidth_limit_mb", 0),
    bad("bandwidth_limit_mb", 10241),
    bad("credentials", "no-such-block", "credentials: no DcsCredentials block named 'no-such"),
    bad("credentials", "dcs/prod", "credentials: no DcsCredentials block named 'dcs/prod'"),
    bad("poll_interval_seconds", 0),
    bad("timeout_seconds", -1),
    bad("configure_grace_seconds", 0),
    bad("heartbeat_seconds", -5),
    bad("cutover", "swap"),
    bad("cutover", "deployment", "cutover_deployment"),
    bad("cutover_deployment", "team-cutover/prod"),
    bad("cutover_deployment", "no-slash", cutover="deployment"),
    bad("cutover_deployment", "no/such", "cutover_deployment: no deploy", cutover="deployment"),
    bad("cutover_parameters", {"task_id": "x"}),
    bad("exchanged_ip", ["10.0.0.5", "not-an-ip"]),
    bad("exchanged_ip", ["10.0.0.5"], **DEPLOYMENT),
    bad("is_exchange_domain", True, **DEPLOYMENT),
    bad("force_cutover", True, cutover="none"),
    bad("require_approval", "perhaps"),
    bad("approval_timeout_seconds", 0, require_approval=True),
    bad("rollback_on_failed_verify", True, cutover="none"),
    bad("rollback_on_failed_verify", True, **DEPLOYMENT),
    bad("stop_sync_after_cutover", True, cutover="none"),
    bad("stop_sync_after_cutover", True, migration_method="full"),
    bad("notification_blocks", ["slack"], "slack"),
    bad("notification_blocks", ["slack-webhook/no-such-block"], "no-such-block"),
    bad("strict_notifications", "perhaps"),
    bad("gate", "maybe"),
    bad("gate_interval_seconds", 0),
    bad("settle_seconds", -1),
    bad("settle_seconds", 5000),
    bad("gate_timeout_seconds", 0),
    bad("max_offset", -1),
    bad("max_key_difference", -1),
]


@pytest.fixture
def world() -> Iterator[World]:
    """The sandbox (no task yet) on a fake clock, and the test under that clock."""
    with open_world() as world:
        yield world


@pytest.mark.parametrize(("overrides", "fragment"), BAD_INPUT)
async def test_bad_input_is_refused_before_anything_is_sent(
    world: World, overrides: dict[str, Any], fragment: str
) -> None:
    """A bad value fails with an error naming its field; no request, no notification."""
    await world.save()
    with pytest.raises((DcsValidationError, ParameterTypeError)) as raised:
        await migrate_instance(**world.parameters(**overrides))
    assert re.search(re.escape(fragment), str(raised.value)), str(raised.value)
    assert world.sandbox.state.requests == []
    assert world.sink.requests == []


def test_every_parameter_has_a_bad_value_row() -> None:
    """No parameter of migrate_instance is left out of the rows above (bar free text)."""
    free = {"description"}  # any text, or none, is a valid description
    covered = {field for row in BAD_INPUT for field in row.values[0]}
    assert set(migrate_instance.parameters.properties) - free <= covered
