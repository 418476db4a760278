"""Secret canaries: run the demo's runbook with distinctive secrets, then look everywhere.

The scenario's token, AK/SK secret key, IAM password, Redis passwords and two
undocumented secret-looking fields are canaries. A fresh `prefect server start` (its own
temporary PREFECT_HOME, results persisted by default) and a child process running the
runbook as the demo does (cutover="exchange_ip", a webhook to a loopback sink) do six
runs: AK/SK, IAM password and token credentials that succeed, and three that fail (the
migration, the exchange, a refused token) so that exception texts exist too. Then every
canary, raw, URL-encoded and base64-encoded, is searched for in every file under
PREFECT_HOME (SQLite database and WAL, result storage), in what the Prefect API serves
(logs, events, artifacts, flow and task runs with their parameters and state messages,
variables, blocks), in the child's and the server's output, and in the notifications.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from blocks.settings import DcsSettings
from flows.demo import NotificationSink
from sandbox import Instance, MigrationScript, SandboxHandle, Scenario, serve
from tests.processes import base_env, free_port, running, wait_until_up

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
ROOT = Path(__file__).parent.parent

# Identifiers, not secrets.
ACCESS_KEY = "CANARYACCESSKEY00000"
IAM_USER = "canary-user"
IAM_DOMAIN = "canary-domain"
TOKEN = "canary-token-7f3a9c"
WRONG_TOKEN = "canary-wrong-token-5b1e07"
SECRET_KEY = "canary-secret-key-2d8e41"
IAM_PASSWORD = "canary-iam-password-9c0b"
# '+', '/' and '=' change when URL-encoded: the encoded forms are searched for too.
SOURCE_PASSWORD = "canary+src/redis=pw-41aa"
TARGET_PASSWORD = "canary+tgt/redis=pw-83cd"
EXTRA_SECRET = "canary-extra-secret-6e2f"
INSTANCE_SECRET = "canary-instance-secret-d4c3"
#: What the sandboxes accept.
ACCEPTED = {"token": TOKEN, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
ACCEPTED |= {"iam_username": IAM_USER, "iam_password": IAM_PASSWORD, "iam_domain_name": IAM_DOMAIN}
CANARIES = {
    "token": TOKEN,
    "wrong token": WRONG_TOKEN,
    "secret key": SECRET_KEY,
    "IAM password": IAM_PASSWORD,
    "source password": SOURCE_PASSWORD,
    "target password": TARGET_PASSWORD,
    "extra secret field": EXTRA_SECRET,
    "instance secret field": INSTANCE_SECRET,
    # Every token the sandbox's IAM issues starts so; the canaries above replace its default.
    "IAM-issued token": "MIIsandbox",
}


@dataclass(frozen=True)
class Variant:
    """One runbook run: its credentials, how its migration goes, and how the run ends."""

    name: str
    auth: str  # "aksk", "iam_password", "token" or "wrong_token"
    life: str  # "ready", "migration_fails" or "exchange_fails"
    ends: str  # the final state type

    @property
    def task_id(self) -> str:
        return f"canary-{self.name}"


VARIANTS = [
    Variant("aksk", "aksk", "ready", "COMPLETED"),
    Variant("iam", "iam_password", "ready", "COMPLETED"),
    Variant("token", "token", "ready", "COMPLETED"),
    Variant("aksk-migration-fails", "aksk", "migration_fails", "FAILED"),
    Variant("iam-exchange-fails", "iam_password", "exchange_fails", "FAILED"),
    Variant("token-refused", "wrong_token", "ready", "FAILED"),
]


def _scenario(variant: Variant) -> Scenario:
    """The variant's sandbox: every credential a canary, and its one task's scripted life."""
    source = {"name": "src", "addrs": "10.0.0.1:6379", "password": SOURCE_PASSWORD}
    fields: dict[str, Any] = {
        # An undocumented secret-looking field, in the task and in an instance.
        "source_instance": Instance.model_validate({**source, "acl_secret": INSTANCE_SECRET}),
        "target_instance": Instance(name="tgt", addrs="10.0.0.2:6379", password=TARGET_PASSWORD),
        "extra_fields": {"sandbox_note": "canary run", "admin_auth_token": EXTRA_SECRET},
        "task_name": f"canary-migration-{variant.name}",
        "pending_seconds": 2,
    }
    if variant.life == "migration_fails":
        task = MigrationScript.failing(variant.task_id, fail_after_seconds=6, **fields)
    else:
        outcome = "failure" if variant.life == "exchange_fails" else "success"
        task = MigrationScript.incremental(
            variant.task_id,
            full_seconds=6,
            exchange_outcome=outcome,
            exchanging_seconds=2,
            **fields,
        )
    return Scenario(**ACCEPTED, speed=10, tasks=[task])


def _credentials(variant: Variant, dcs: SandboxHandle) -> dict[str, str]:
    """The fields of the variant's DcsCredentials block."""
    url = dcs.url
    fields = {"endpoint": url, "project_id": dcs.project_id}
    if variant.auth == "aksk":
        return {**fields, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
    if variant.auth == "iam_password":
        fields.update(iam_username=IAM_USER, iam_password=IAM_PASSWORD, iam_endpoint=url)
        return {**fields, "iam_domain_name": IAM_DOMAIN}
    return {**fields, "token": TOKEN if variant.auth == "token" else WRONG_TOKEN}


# The child: saves the blocks, then runs the runbook as `dcs-migrate demo` does. Its
# configuration, secrets included, comes on stdin, so that only what the code under test
# prints reaches its stdout and stderr. Waits between two looks at DCS are capped at
# 0.05 s through the injectable clock of `flows`; the catch-up gate's window is 0.2 s.
RUNNER = """
import asyncio, json, sys, traceback
import httpx
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from blocks.credentials import DcsCredentials
from flows.clock import Time, use_time
from flows.runbook import migration_runbook

async def short_sleep(seconds):
    await asyncio.sleep(min(seconds, 0.05))

async def main(config):
    await CustomWebhookNotificationBlock(
        name="canary sink", url=config["sink"], allow_private_urls=True,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    ).asave("canary-sink", overwrite=True)
    for run in config["runs"]:
        await DcsCredentials(**run["credentials"]).asave(run["block"], overwrite=True)
        httpx.post(run["reset"], timeout=5)  # the migration starts now, as in the demo
        state = await migration_runbook(
            task_id=run["task_id"], credentials=run["block"], poll_interval_seconds=0.05,
            cutover="exchange_ip", notification_blocks=["custom-webhook/canary-sink"],
            gate_interval_seconds=0.05, settle_seconds=0.2, return_state=True,
        )
        print(f"run {run['task_id']} ended {state.type.value}: {state.message}", flush=True)
        result = await state.aresult(raise_on_failure=False)
        if isinstance(result, BaseException):
            traceback.print_exception(result)
        else:
            print(repr(result), flush=True)

with use_time(Time(sleep=short_sleep)):
    asyncio.run(main(json.load(sys.stdin)))
"""


@dataclass
class Evidence:
    """Everything the runs left behind, as bytes to search, by where it was found."""

    places: dict[str, bytes] = field(default_factory=dict)
    api: dict[str, list[Any]] = field(default_factory=dict)
    sandbox: dict[str, dict[str, Any]] = field(default_factory=dict)


def _forms(secret: str) -> dict[str, bytes]:
    """The secret as it could be written: raw, URL-encoded, and base64 at each alignment."""
    raw = secret.encode()
    forms = {"raw": raw, "url": quote(secret, safe="").encode()}
    forms["url+"] = quote_plus(secret).encode()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        # Only the 4-character groups made of the secret's bytes alone.
        start, end = 4 * -(-shift // 3), 4 * ((shift + len(raw)) // 3)
        forms[f"base64+{shift}"] = encoded[start:end]
        forms[f"base64url+{shift}"] = encoded[start:end].replace(b"+", b"-").replace(b"/", b"_")
    return {name: form for name, form in forms.items() if len(form) >= 8}


FORMS = {
    (name, form_name): form
    for name, secret in CANARIES.items()
    for form_name, form in _forms(secret).items()
}


def _leaks(data: bytes) -> list[str]:
    """Which canaries, in which form, `data` holds (base64 may be wrapped in lines)."""
    unwrapped = data.replace(b"\r", b"").replace(b"\n", b"")
    found = {key for key, form in FORMS.items() if form in data or form in unwrapped}
    return sorted(f"{name} ({form_name})" for name, form_name in found)


def _decode_result(data: bytes) -> bytes:
    """A persisted result's pickle: the file is base64, bare or as a JSON record's "result"."""
    try:
        if data.startswith(b"{"):
            data = json.loads(data)["result"].encode()
        return base64.b64decode(data)
    except (ValueError, KeyError, TypeError):
        return b""


def _api(client: httpx.Client, path: str) -> list[Any]:
    """Every item of a `/filter` endpoint, page by page."""
    items: list[Any] = []
    while True:
        page = client.post(path, json={"offset": len(items), "limit": 200})
        page.raise_for_status()
        batch = page.json()
        items += batch
        if len(batch) < 200:
            return items


def _events(client: httpx.Client) -> list[Any]:
    """Every event the server stored, following `next_page`."""
    page = client.post("/events/filter", json={"limit": 50}).raise_for_status().json()
    events = list(page["events"])
    while page.get("next_page"):
        page = client.get(page["next_page"]).raise_for_status().json()
        events += page["events"]
    return events


def _read_api(client: httpx.Client) -> dict[str, list[Any]]:
    """What the Prefect API serves about the runs, by kind."""
    return {
        "logs": _api(client, "/logs/filter"),
        "events": _events(client),
        "artifacts": _api(client, "/artifacts/filter"),
        "flow runs": _api(client, "/flow_runs/filter"),
        "task runs": _api(client, "/task_runs/filter"),
        "variables": _api(client, "/variables/filter"),
        "block documents": _api(client, "/block_documents/filter"),
    }


def _settled(api: dict[str, list[Any]]) -> bool:
    """Whether the server has every runbook's end, and the final-state event of every run."""
    runbooks = [run for run in api["flow runs"] if run["name"].startswith("runbook-")]
    ended = {
        event["resource"]["prefect.resource.id"]
        for event in api["events"]
        if event["event"] in ("prefect.flow-run.Completed", "prefect.flow-run.Failed")
    }
    logs = json.dumps(api["logs"])
    return (
        len(runbooks) == len(VARIANTS)
        and all(f"prefect.flow-run.{run['id']}" in ended for run in api["flow runs"])
        and all(variant.task_id in logs for variant in VARIANTS)
    )


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """Run the six variants once; collect the output, the API's records, then the files."""
    logs = tmp_path_factory.mktemp("canary")
    home = logs / "prefect-home"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = base_env(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL="0.5",
    )
    server_cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    found = Evidence()
    with ExitStack() as stack:
        sink = stack.enter_context(NotificationSink())
        sandboxes = {v.name: stack.enter_context(serve(_scenario(v))) for v in VARIANTS}
        server = stack.enter_context(
            running([*server_cmd, "--port", str(port)], env=env, log=logs / "server.log")
        )
        wait_until_up(f"{api_url}/health", server, logs / "server.log", 120)
        config = {
            "sink": sink.url,
            "runs": [
                {
                    "task_id": v.task_id,
                    "block": f"canary-{v.name}",
                    "reset": f"{sandboxes[v.name].url}/_sandbox/reset",
                    "credentials": _credentials(v, sandboxes[v.name]),
                }
                for v in VARIANTS
            ],
        }
        child = subprocess.run(
            [sys.executable, "-c", RUNNER],
            input=json.dumps(config).encode(),
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=240,
        )
        found.places["runner stdout"] = child.stdout
        found.places["runner stderr"] = child.stderr
        assert child.returncode == 0, child.stderr.decode()[-3000:]
        with httpx.Client(base_url=api_url, timeout=30) as client:
            deadline = time.monotonic() + 60
            found.api = _read_api(client)
            while not _settled(found.api) and time.monotonic() < deadline:
                time.sleep(0.5)
                found.api = _read_api(client)
        found.sandbox = {
            name: handle.state.as_dict() | {"tokens": handle.state.tokens_issued}
            for name, handle in sandboxes.items()
        }
        found.places["notifications"] = json.dumps(sink.received).encode()
        for name, records in found.api.items():
            found.places[f"API {name}"] = json.dumps(records).encode()
    # The server has stopped: its database and WAL are complete on disk.
    found.places["server output"] = (logs / "server.log").read_bytes()
    for path in sorted(home.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found.places[f"file {path.relative_to(home)}"] = data
            if path.parent.name == "storage":
                found.places[f"file {path.relative_to(home)}, decoded"] = _decode_result(data)
    return found


def test_runs_ended_as_scripted(evidence: Evidence) -> None:
    """Each variant's flow run ended as its migration was scripted to make it end."""
    runs = {run["name"]: run for run in evidence.api["flow runs"]}
    for variant in VARIANTS:
        run = runs[f"runbook-{variant.task_id}"]
        assert run["state"]["type"] == variant.ends, (variant, run["state"]["message"])
        expected = 1 if variant.life != "migration_fails" and variant.auth != "wrong_token" else 0
        sandbox = evidence.sandbox[variant.name]
        assert sandbox["tasks"][variant.task_id]["exchange_requests"] == expected, variant


@pytest.mark.parametrize(
    "place", ["runner stdout", "runner stderr", "server output", "notifications"]
)
def test_no_canary_in_process_output_or_notifications(evidence: Evidence, place: str) -> None:
    """Nothing the runbook's process or the server printed, or the webhooks got, holds one."""
    assert _leaks(evidence.places[place]) == []


@pytest.mark.parametrize(
    "name",
    ["logs", "events", "artifacts", "flow runs", "task runs", "variables", "block documents"],
)
def test_no_canary_in_what_the_prefect_api_serves(evidence: Evidence, name: str) -> None:
    """No log, event, artifact, run (parameters, states), variable or block holds a canary."""
    assert evidence.api[name], f"the API returned no {name}"
    assert _leaks(evidence.places[f"API {name}"]) == []


def test_no_canary_in_any_file_under_prefect_home(evidence: Evidence) -> None:
    """The SQLite database (with its WAL) and the persisted results hold no canary."""
    files = {place: data for place, data in evidence.places.items() if place.startswith("file ")}
    assert any(place.startswith("file prefect.db") for place in files), sorted(files)
    assert any(place.startswith("file storage/") for place in files), sorted(files)
    assert {place: _leaks(data) for place, data in files.items() if _leaks(data)} == {}


def test_the_search_is_not_vacuous(evidence: Evidence) -> None:
    """The canaries were really used and served, and every place searched holds the runs."""
    auth = {name: sandbox["requests"]["by_auth"] for name, sandbox in evidence.sandbox.items()}
    assert auth["aksk"].get("aksk", 0) > 0  # signed with the canary secret key
    assert auth["iam"].get("iam_token", 0) > 0  # with a token for the canary password
    assert evidence.sandbox["iam"]["tokens"] > 0
    assert auth["token"].get("token", 0) > 0
    assert evidence.sandbox["token-refused"]["requests"]["by_status"].get("401", 0) > 0
    database = b"".join(data for place, data in evidence.places.items() if "prefect.db" in place)
    storage = b"".join(data for place, data in evidence.places.items() if "decoded" in place)
    stdout = evidence.places["runner stdout"] + evidence.places["runner stderr"]
    for variant in VARIANTS:
        task_id = variant.task_id.encode()
        assert task_id in database, variant
        assert task_id in evidence.places["API logs"], variant
        if variant.auth != "wrong_token":  # refused at the first look: no name to log
            assert f"canary-migration-{variant.name}".encode() in evidence.places["API logs"]
        assert task_id in evidence.places["API events"], variant
        assert task_id in evidence.places["API flow runs"], variant  # the parameters
        assert task_id in evidence.places["notifications"], variant
        assert f"run {variant.task_id} ended {variant.ends}".encode() in stdout, variant
        assert task_id in storage, variant  # the persisted results
    assert b"**********" in storage  # persisted tasks had their passwords, masked
    for error in (b"MigrationFailed", b"CutoverFailed", b"DcsAuthError"):
        assert error in stdout, error
        assert error in evidence.places["API flow runs"], error  # the state messages
    assert b"EXCHANGE_SUCCESS" in evidence.places["API logs"]
    assert b"dcs.migration.status-changed" in evidence.places["API events"]


def test_debug_logging_keeps_the_iam_token_out(caplog: pytest.LogCaptureFixture) -> None:
    """With every logger at DEBUG, the token IAM issued for the canary password is not logged."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpcore")
    iam = next(variant for variant in VARIANTS if variant.auth == "iam_password")
    with serve(_scenario(iam)) as dcs:
        settings = DcsSettings(**_credentials(iam, dcs))
        with settings.get_client() as client:
            client.show_migration_task(iam.task_id)
        assert dcs.state.tokens_issued == 1
    assert "MIIsandbox" not in caplog.text
