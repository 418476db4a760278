"""deployments/prefect.yaml: every deployment points at a real flow with real parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.events import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint

from flows import events

ROOT = Path(__file__).parent.parent
CONFIG = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
DEPLOYMENTS = {item["name"]: item for item in CONFIG["deployments"]}


def test_the_four_deployments_of_the_design_are_there() -> None:
    """Manual runbook, scheduled sensor, event-triggered cutover and the wait flow."""
    assert set(DEPLOYMENTS) == {"manual", "every-2-minutes", "cutover-on-ready", "wait"}
    assert "schedules" not in DEPLOYMENTS["manual"]
    assert DEPLOYMENTS["every-2-minutes"]["schedules"] == [{"interval": 120}]


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_entrypoint_and_parameters_match_the_flow(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entrypoint loads, and every parameter it sets is one the flow takes."""
    monkeypatch.chdir(ROOT)
    deployment: dict[str, Any] = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    accepted = set(flow.parameters.properties)
    given = set(deployment.get("parameters", {}))
    for trigger in deployment.get("triggers", []):
        given |= set(trigger.get("parameters", {}))
    assert given <= accepted, given - accepted
    assert flow.parameters.required is None or set(flow.parameters.required) <= given | {"task_id"}


def test_the_cutover_trigger_is_a_valid_prefect_trigger_on_our_event() -> None:
    """The trigger parses as a DeploymentEventTrigger on dcs.migration.ready-for-cutover."""
    (raw,) = DEPLOYMENTS["cutover-on-ready"]["triggers"]
    trigger = DeploymentEventTrigger(**{k: v for k, v in raw.items() if k != "type"})
    assert trigger.expect == {events.READY_FOR_CUTOVER}
    assert raw["match"]["prefect.resource.id"] == f"{events.RESOURCE_PREFIX}*"
    assert raw["match"]["dcs.emitter"] == "sensor"  # never the runbook's own watch
    assert raw["parameters"]["task_id"] == "{{ event.payload.task_id }}"
    assert DEPLOYMENTS["cutover-on-ready"]["parameters"]["require_approval"] is True


def test_nothing_cuts_over_unless_asked() -> None:
    """The automatic cutover is off after deploy, its runs stand down; manual ones ask first."""
    (trigger,) = DEPLOYMENTS["cutover-on-ready"]["triggers"]
    assert trigger["enabled"] is False
    assert DEPLOYMENTS["cutover-on-ready"]["parameters"]["automatic"] is True
    assert DEPLOYMENTS["manual"]["parameters"]["require_approval"] is True
    for name, deployment in DEPLOYMENTS.items():
        for trigger in deployment.get("triggers", []):
            assert trigger["enabled"] is False, f"{name} starts runs on its own"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_the_parameter_values_are_ones_the_flow_accepts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every value set validates against the flow (YAML's bare `on` would be a boolean)."""
    monkeypatch.chdir(ROOT)
    deployment: dict[str, Any] = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    given = dict(deployment.get("parameters", {}))
    if "task_id" in flow.parameters.properties:
        given.setdefault("task_id", "a276c1ffa0a54c2597fc824b917db317")
    flow.validate_parameters(given)


def test_the_event_triggered_cutover_is_gated() -> None:
    """The unattended path keeps the catch-up gate on, with the documented defaults."""
    parameters = DEPLOYMENTS["cutover-on-ready"]["parameters"]
    assert parameters["gate"] == "on"
    assert (parameters["settle_seconds"], parameters["max_offset"]) == (60, 0)
