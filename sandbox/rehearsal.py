"""Slowing a scenario down for a rehearsal a person watches, say in the Prefect UI.

The bundled scenarios are fast: the demo's task is ready for cutover about 7 s after the
sandbox starts, before anyone has opened a browser. `ready_after` stretches every task's
script so that its last status (ready for cutover, success, failure) begins `seconds`
real seconds after the sandbox starts, the earlier steps keeping their proportions; the
speed stays what the scenario (or `--speed`) says, so exchanges and stops keep theirs.

>>> from sandbox.scenario import MigrationScript, Scenario
>>> fast = Scenario(speed=2, tasks=[MigrationScript.incremental("t1", full_seconds=8)])
>>> [step.seconds for step in ready_after(fast, 300).tasks[0].steps[:-1]]
[120.0, 480.0]
"""

from __future__ import annotations

from sandbox.scenario import Scenario, ScenarioError


def ready_after(scenario: Scenario, seconds: float) -> Scenario:
    """`scenario` with each task's last status beginning `seconds` real seconds in."""
    if not seconds > 0:
        msg = f"--ready-after must be more than 0 seconds, got {seconds:g}"
        raise ScenarioError(msg)
    target = seconds * scenario.speed  # in scenario seconds
    tasks = []
    for task in scenario.tasks:
        before_last = sum(step.seconds or 0.0 for step in task.steps[:-1])
        if before_last == 0:
            tasks.append(task)  # already at its last status: nothing to stretch
            continue
        factor = target / before_last
        steps = [
            step.model_copy(update={"seconds": step.seconds * factor})
            if step.seconds is not None and index < len(task.steps) - 1
            else step
            for index, step in enumerate(task.steps)
        ]
        tasks.append(task.model_copy(update={"steps": steps}))
    return scenario.model_copy(update={"tasks": tasks})


__all__ = ["ready_after"]
