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
#: By "<flow function>/<deployment name>": two flows may each have a deployment "manual".
DEPLOYMENTS = {
    f"{item['entrypoint'].rsplit(':', 1)[1]}/{item['name']}": item for item in CONFIG["deployments"]
}
RUNBOOK = "migration_runbook/manual"
SENSOR = "migration_sensor/every-2-minutes"
AUTO = "migration_runbook/cutover-on-ready"
MIGRATE = "migrate_instance/manual"
FLEET = "migration_fleet/manual"


def test_the_deployments_of_the_design_are_there() -> None:
    """Manual runbook, scheduled sensor, event-triggered cutover, the wait flow, a manual
    whole migration and a manual fleet; each deployment listed once."""
    assert len(DEPLOYMENTS) == len(CONFIG["deployments"])
    assert set(DEPLOYMENTS) == {
        RUNBOOK, SENSOR, AUTO, "wait_for_migration_task/wait", MIGRATE, FLEET,
    }  # fmt: skip
    for manual in (RUNBOOK, MIGRATE, FLEET):
        assert "schedules" not in DEPLOYMENTS[manual], manual
    assert DEPLOYMENTS[SENSOR]["schedules"] == [{"interval": 120}]


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
    # What the form must ask for: the task (runbook), or what to migrate where (migrate).
    asked = {"task_id", "task_name", "vpc_id", "subnet_id", "security_group_id"}
    assert flow.parameters.required is None or set(flow.parameters.required) <= given | asked


def test_the_cutover_trigger_is_a_valid_prefect_trigger_on_our_event() -> None:
    """The trigger parses as a DeploymentEventTrigger on dcs.migration.ready-for-cutover."""
    (raw,) = DEPLOYMENTS[AUTO]["triggers"]
    trigger = DeploymentEventTrigger(**{k: v for k, v in raw.items() if k != "type"})
    assert trigger.expect == {events.READY_FOR_CUTOVER}
    assert raw["match"]["prefect.resource.id"] == f"{events.RESOURCE_PREFIX}*"
    assert raw["match"]["dcs.emitter"] == "sensor"  # never the runbook's own watch
    assert raw["parameters"]["task_id"] == "{{ event.payload.task_id }}"
    assert DEPLOYMENTS[AUTO]["parameters"]["require_approval"] is True


def test_nothing_cuts_over_unless_asked() -> None:
    """The automatic cutover is off after deploy, its runs stand down; manual ones ask first."""
    (trigger,) = DEPLOYMENTS[AUTO]["triggers"]
    assert trigger["enabled"] is False
    assert DEPLOYMENTS[AUTO]["parameters"]["automatic"] is True
    assert DEPLOYMENTS[RUNBOOK]["parameters"]["require_approval"] is True
    assert DEPLOYMENTS[MIGRATE]["parameters"]["require_approval"] is True
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
    for required in flow.parameters.required or []:
        given.setdefault(required, "a276c1ffa0a54c2597fc824b917db317")
    flow.validate_parameters(given)


def test_the_event_triggered_cutover_is_gated() -> None:
    """The unattended path keeps the catch-up gate on, with the documented defaults."""
    parameters = DEPLOYMENTS[AUTO]["parameters"]
    assert parameters["gate"] == "on"
    assert (parameters["settle_seconds"], parameters["max_offset"]) == (60, 0)


def test_the_fleet_asks_per_wave_and_keeps_the_gate() -> None:
    """The manual fleet cuts over in waves, each approved by a person, behind the gate."""
    parameters = DEPLOYMENTS[FLEET]["parameters"]
    assert (parameters["approval"], parameters["wave_size"]) == ("per_wave", 10)
    assert parameters["gate"] == "on"


def _shortest_retry_budget(max_retries: int) -> float:
    """The least time Prefect's client keeps retrying a call to an unreachable server:
    2**k s after the k-th failure, jittered down to at most `lower_clamp_multiple`."""
    from prefect.settings.models.client import ClientSettings
    from prefect.utilities.math import lower_clamp_multiple

    jitter = ClientSettings().retry_jitter_factor
    return sum(2**k * lower_clamp_multiple(1 + jitter) for k in range(1, max_retries + 1))


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_flow_runs_ride_out_a_prefect_server_outage_of_seven_minutes(name: str) -> None:
    """The pool's job variables raise PREFECT_CLIENT_MAX_RETRIES: >= 7 min of retries, not 62 s."""
    env = DEPLOYMENTS[name]["work_pool"].get("job_variables", {}).get("env", {})
    retries = int(env.get("PREFECT_CLIENT_MAX_RETRIES", 5))  # 5: Prefect's default
    assert _shortest_retry_budget(retries) >= 7 * 60
