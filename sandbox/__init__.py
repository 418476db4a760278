"""A local emulator of Huawei Cloud DCS's migration-task API, for demos, rehearsals and tests.

It implements the API from its documentation and imports nothing from `blocks` or `flows`,
so a client test that passes against it is evidence, not a tautology. Tasks follow a
scripted life on a (fast-forwardable) clock; faults are injected on request.

>>> from sandbox import MigrationScript, Scenario, serve
>>> import httpx
>>> scenario = Scenario(tasks=[MigrationScript.incremental("t1", pending_seconds=60)])
>>> with serve(scenario) as sandbox:
...     url = f"{sandbox.url}/v2/{sandbox.project_id}/migration-task/t1"
...     body = httpx.get(url, headers={"X-Auth-Token": sandbox.credentials["token"]}).json()
>>> body["status"], body["source_instance"]["port"]
('RUNNING', '6379')

`python -m sandbox --scenario flaky` serves a bundled scenario on http://127.0.0.1:8000.
"""

from sandbox.app import ConnectionDropped, SandboxApp, create_app
from sandbox.clock import Clock, ManualClock, ScaledClock
from sandbox.scenario import (
    ExchangeScript,
    Instance,
    MigrationScript,
    Scenario,
    ScenarioError,
    Step,
    StopScript,
    TemporaryKey,
    bundled_scenarios,
    load_scenario,
    scenario_path,
)
from sandbox.server import (
    SandboxHandle,
    format_banner,
    main,
    print_banner,
    sandbox_credentials,
    serve,
    serve_forever,
)
from sandbox.state import RequestRecord, SandboxState
from sandbox.sync import StatsScript, WriteBurst

__all__ = [
    "Clock",
    "ConnectionDropped",
    "ExchangeScript",
    "Instance",
    "ManualClock",
    "MigrationScript",
    "RequestRecord",
    "SandboxApp",
    "SandboxHandle",
    "SandboxState",
    "ScaledClock",
    "Scenario",
    "ScenarioError",
    "StatsScript",
    "Step",
    "StopScript",
    "TemporaryKey",
    "WriteBurst",
    "bundled_scenarios",
    "create_app",
    "format_banner",
    "load_scenario",
    "main",
    "print_banner",
    "sandbox_credentials",
    "scenario_path",
    "serve",
    "serve_forever",
]
