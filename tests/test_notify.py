"""Notifications: what the message says, and sending it through real Prefect notification
blocks (custom webhooks posting to loopback sinks) without a secret in any log or error."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.abstract import NotificationError as BlockNotificationError
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.context import FlowRunContext
from prefect.states import State
from pydantic import SecretStr

from blocks.errors import DcsValidationError, NotificationError
from blocks.models import MASKED, MigrationTask
from flows import notify
from flows.notify import (
    check_notification_blocks,
    format_message,
    notify_migration,
    send_notification,
)
from tests.conftest import TASK_ID, StubDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

REDIS_PASSWORD = "redis-pw-canary-7c1d"
TOKEN = "auth-token-canary-93ab"
URL_TOKEN = "hook-path-canary-4e2f"
HEADER_TOKEN = "header-canary-0b8a"
CANARIES = (REDIS_PASSWORD, TOKEN, URL_TOKEN, HEADER_TOKEN)
START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

Sinks = Callable[..., StubDcs]
Webhook = Callable[..., Awaitable[str]]


def make_task(**changes: Any) -> MigrationTask:
    """A task parsed as the client does with keep_passwords=True: secrets in plain text."""
    source = {"name": "dcs-test", "addrs": "192.168.1.2:6379", "password": REDIS_PASSWORD}
    body: dict[str, Any] = {
        "task_id": TASK_ID,
        "task_name": "migration1",
        "status": "INCRMIGEATING",
        "task_status": "EXCHANGING",
        "migration_type": "incremental_migration",
        "source_instance": source,
        "target_instance": {"name": "test-instance", "password": REDIS_PASSWORD},
        "auth_token": TOKEN,  # an unknown field whose name says secret
        "created_at": "2019/10/22 14:44:30",
        "updated_at": "2019/10/22 18:00:00",
    }
    return MigrationTask.model_validate({**body, **changes})


def assert_no_secret(*texts: object) -> None:
    """None of the canaries occurs in any of `texts`."""
    for text in texts:
        for canary in CANARIES:
            assert canary not in str(text)


def posts(sink: StubDcs) -> list[dict[str, Any]]:
    """The JSON bodies the sink received."""
    return [json.loads(body) for method, _, _, body in sink.requests if method == "POST"]


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    """Loopback webhook receivers (ThreadingHTTPServer, Nagle off) answering `status`."""
    started: list[StubDcs] = []

    def start(status: int = 200) -> StubDcs:
        sink = StubDcs()
        sink.handler = lambda *_: (status, {}, b"{}")
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        serve = threading.Thread(
            target=sink.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        serve.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.server.shutdown()
        sink.server.server_close()


@pytest.fixture
def webhook() -> Webhook:
    """Save a custom-webhook block posting {subject, body} to a URL; return its full name."""

    async def save(url: str, *, allow_private_urls: bool = True) -> str:
        name = f"notify-{uuid.uuid4().hex[:10]}"
        block = CustomWebhookNotificationBlock(
            name=name,
            url=url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            headers={"Authorization": "Bearer {{token}}"},
            secrets={"token": HEADER_TOKEN},
            allow_private_urls=allow_private_urls,
        )
        await block.asave(name)
        return f"custom-webhook/{name}"

    return save


class MisbehavingNotifier(NotificationBlock):
    """A third-party style block: a plain async notify that fails as `mode` says."""

    _block_type_name = "DCS Test Misbehaving Notifier"
    url: SecretStr
    mode: str

    async def notify(self, body: str, subject: str | None = None) -> None:
        url = self.url.get_secret_value()
        if self.mode == "apprise-style":  # what Prefect's Apprise blocks raise: text in .log
            raise BlockNotificationError(log=f"Failed to send to {url}: 403 Forbidden")
        if self.mode == "quotes-its-secret":
            raise RuntimeError(f"refused: key {URL_TOKEN} is not valid")
        await asyncio.Event().wait()  # never answers


@flow
async def relay(subject: str, body: str, names: list[str], strict: bool = False) -> dict[str, str]:
    """send_notification as a runbook calls it: inside a flow run (its logs need one)."""
    return await send_notification(subject, body, names, strict=strict)


def closed_port_url() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- format_message -------------------------------------------------------------------


def test_message_names_task_status_durations_flow_run_and_detail() -> None:
    """Subject and body name the task, both statuses, both durations, the run and the detail."""
    subject, body = format_message(
        make_task(),
        event="ready-for-cutover",
        flow_run_name="crimson-fox",
        flow_run_url="http://prefect.example/runs/flow-run/1",
        started_at=START,
        ended_at=START + timedelta(minutes=5),
        detail="cut over at 22:00",
    )
    # The subject says where the task stands: the exchange is under way.
    assert subject == (
        f"DCS migration ready-for-cutover: migration1 ({TASK_ID}) INCRMIGEATING "
        "(IP exchange under way)"
    )
    assert body.splitlines() == [
        f"Migration task: migration1 ({TASK_ID})",
        "Event: ready-for-cutover",
        "Status: INCRMIGEATING (ready for cutover)",
        "IP switch (task_status): EXCHANGING",
        "Migration type: incremental_migration",
        "Migration time: 3h 15m 30s (2019-10-22 14:44:30 UTC -> 2019-10-22 18:00:00 UTC)",
        "Watch time: 5m 00s (2026-01-01 12:00:00 UTC -> 2026-01-01 12:05:00 UTC)",
        "Flow run: crimson-fox at http://prefect.example/runs/flow-run/1",
        "Detail: cut over at 22:00",
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param("INCRMIGEATING", "INCRMIGEATING (ready for cutover)", id="live-spelling"),
        pytest.param("SUCCESS", "SUCCESS (succeeded)", id="success"),
        pytest.param("TERMINATED", "TERMINATED (failed)", id="terminated"),
        pytest.param("FULLMIGRATING", "FULLMIGRATING (in progress)", id="in-progress"),
        pytest.param("PAUSED", "PAUSED (unknown status)", id="unknown-kept-raw"),
        pytest.param(None, "UNKNOWN (unknown status)", id="absent"),
    ],
)
def test_status_is_shown_as_sent_with_its_meaning(status: str | None, expected: str) -> None:
    """The raw status is shown as DCS sent it, followed by what it means for the watcher."""
    _, body = format_message(make_task(status=status), event="checked")
    assert f"Status: {expected}" in body.splitlines()


@pytest.mark.parametrize(
    ("started_at", "ended_at", "expected"),
    [
        pytest.param(START, START, "Watch time: 0s (", id="zero"),
        pytest.param(START, START + timedelta(seconds=59), "Watch time: 59s (", id="seconds"),
        pytest.param(
            START, START + timedelta(days=2, hours=3, minutes=4, seconds=5),
            "Watch time: 2d 03h 04m 05s (", id="days",
        ),
        pytest.param(
            START.replace(tzinfo=None), START + timedelta(hours=1),
            "Watch time: 1h 00m 00s (", id="naive-is-utc",
        ),
        pytest.param(
            START, START - timedelta(seconds=1), "Watch time: unknown (ends before it starts)",
            id="clock-skew",
        ),
        pytest.param(START, None, "Watch time: since 2026-01-01 12:00:00 UTC", id="no-end"),
    ],
)  # fmt: skip
def test_watch_duration(started_at: datetime, ended_at: datetime | None, expected: str) -> None:
    """The watch duration reads as a person would write it, whatever the inputs' shape."""
    _, body = format_message(make_task(), event="e", started_at=started_at, ended_at=ended_at)
    assert any(line.startswith(expected) for line in body.splitlines()), body


@pytest.mark.parametrize(
    "detail",
    [
        pytest.param(None, id="no-detail"),
        pytest.param(f"AUTH failed: password {REDIS_PASSWORD} refused", id="detail-quotes-it"),
        pytest.param(f"token={TOKEN}", id="detail-quotes-token"),
    ],
)
def test_message_never_holds_a_secret(detail: str | None) -> None:
    """Passwords and tokens on an unmasked task appear nowhere, even quoted in `detail`."""
    subject, body = format_message(make_task(), event="failed", detail=detail)
    assert_no_secret(subject, body)
    if detail:
        assert MASKED in body


async def test_flow_run_comes_from_the_run_context() -> None:
    """Inside a flow the message names the flow run and links to it in the Prefect UI."""

    @flow(flow_run_name="notify-context-run")
    async def describe() -> tuple[str, str]:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        _, body = format_message(make_task(), event="e")
        return body, str(context.flow_run.id)

    body, run_id = await describe()
    (line,) = [line for line in body.splitlines() if line.startswith("Flow run:")]
    assert line.startswith("Flow run: notify-context-run at http://127.0.0.1:")
    assert line.endswith(f"/runs/flow-run/{run_id}")


def test_what_is_not_known_is_left_out() -> None:
    """Outside a flow run, and without the task's dates, those lines are left out."""
    _, body = format_message(make_task(created_at=None, updated_at=None), event="e")
    assert "Flow run" not in body
    assert "Migration time" not in body


@pytest.mark.parametrize(
    ("dates", "line"),
    [
        pytest.param({"created_at": "yesterday"}, None, id="start-unread"),
        pytest.param(
            {"updated_at": "soon"}, "Migration time: since 2019-10-22 14:44:30 UTC", id="end-unread"
        ),
    ],
)
def test_dates_dcs_sent_in_an_unknown_format_make_no_span(
    dates: dict[str, str], line: str | None
) -> None:
    """A date kept as sent, not read, gives no duration; a start that was read still shows."""
    _, body = format_message(make_task(**dates), event="e")
    spans = [text for text in body.splitlines() if text.startswith("Migration time")]
    assert spans == ([line] if line else [])


# --- sending through real blocks ------------------------------------------------------


async def test_message_arrives_at_the_webhook(sinks: Sinks, webhook: Webhook) -> None:
    """notify_migration in a flow posts one message naming task, status, durations, run."""
    sink = sinks()
    name = await webhook(f"{sink.url}/hooks/{URL_TOKEN}")

    @flow(flow_run_name="notify-arrives")
    async def runbook() -> dict[str, str]:
        return await notify_migration(
            make_task(), event="ready-for-cutover", notification_blocks=[name],
            started_at=START, ended_at=START + timedelta(seconds=90),
        )  # fmt: skip

    assert await runbook() == {name: "sent"}
    (message,) = posts(sink)
    assert message["subject"].startswith("DCS migration ready-for-cutover: migration1")
    for text in (TASK_ID, "INCRMIGEATING", "EXCHANGING", "3h 15m 30s", "1m 30s"):
        assert text in message["body"]
    assert "Flow run: notify-arrives at http://127.0.0.1:" in message["body"]
    assert sink.requests[0][1] == f"/hooks/{URL_TOKEN}"
    assert sink.requests[0][2]["authorization"] == f"Bearer {HEADER_TOKEN}"
    assert_no_secret(message["subject"], message["body"])


async def test_every_block_receives(sinks: Sinks, webhook: Webhook) -> None:
    """Two blocks each get the same message; a name listed twice is sent once."""
    first, second = sinks(), sinks()
    names = [await webhook(f"{first.url}/a"), await webhook(f"{second.url}/b")]
    result = await relay("s", "b", [*names, names[0]])
    assert result == {names[0]: "sent", names[1]: "sent"}
    assert posts(first) == posts(second) == [{"subject": "s", "body": "b"}]


async def save_broken(kind: str, sinks: Sinks, webhook: Webhook) -> str:
    """Save a block that fails as `kind` says, with URL_TOKEN in its URL; return its name."""
    path = f"/hooks/{URL_TOKEN}"
    if kind == "http-500":
        return await webhook(sinks(500).url + path)
    if kind == "closed-port":
        return await webhook(closed_port_url() + path)
    if kind == "private-url-refused":  # Prefect refuses loopback unless it is allowed
        return await webhook(sinks().url + path, allow_private_urls=False)
    name = f"notify-{uuid.uuid4().hex[:10]}"
    url = SecretStr(f"https://hooks.example.invalid/T/B/{URL_TOKEN}")
    await MisbehavingNotifier(url=url, mode=kind).asave(name)
    return f"dcs-test-misbehaving-notifier/{name}"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        pytest.param("http-500", "HTTPStatusError", id="http-500"),
        pytest.param("closed-port", "ConnectError", id="closed-port"),
        pytest.param("private-url-refused", "ValueError", id="private-url-refused"),
        pytest.param("apprise-style", "NotificationError", id="apprise-style"),
        pytest.param("quotes-its-secret", "RuntimeError", id="quotes-its-secret"),
        pytest.param("hangs", "TimeoutError", id="hangs"),
    ],
)
async def test_a_failing_block_does_not_stop_the_others(
    sinks: Sinks,
    webhook: Webhook,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    error: str,
) -> None:
    """The good block still receives; the bad one is reported and logged without a secret."""
    monkeypatch.setattr(notify, "SEND_TIMEOUT_SECONDS", 0.5)  # for the one that hangs
    good = sinks()
    bad = await save_broken(kind, sinks, webhook)
    ok = await webhook(f"{good.url}/ok")

    with caplog.at_level(logging.DEBUG):
        result = await relay("s", "b", [bad, ok])

    assert result == {bad: f"failed: {error}", ok: "sent"}
    assert len(posts(good)) == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"notification block {bad!r} failed: {error}: ")
    assert_no_secret(caplog.text, result)


async def test_strict_raises_after_trying_every_block(
    sinks: Sinks, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """strict=True raises NotificationError naming each failed block, after sending the rest."""
    good = sinks()
    refused = await save_broken("http-500", sinks, webhook)
    unreachable = await save_broken("closed-port", sinks, webhook)
    ok = await webhook(f"{good.url}/ok")

    @flow
    async def runbook() -> dict[str, str]:
        return await notify_migration(
            make_task(), event="failed", notification_blocks=[refused, ok, unreachable],
            strict=True, detail=f"source refused password {REDIS_PASSWORD}",
        )  # fmt: skip

    with caplog.at_level(logging.DEBUG), pytest.raises(NotificationError) as raised:
        await runbook()

    message = str(raised.value)
    assert "failed through 2 of 3 blocks" in message
    assert f"{refused!r} (HTTPStatusError)" in message
    assert f"{unreachable!r} (ConnectError)" in message
    assert ok not in message
    assert len(posts(good)) == 1
    assert_no_secret(message, caplog.text, posts(good))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("pager", id="no-slash"),
        pytest.param("/pager", id="no-type"),
        pytest.param("custom-webhook/", id="no-name"),
        pytest.param("custom-webhook/a/b", id="two-slashes"),
    ],
)
async def test_a_malformed_name_is_refused_before_sending(
    sinks: Sinks, webhook: Webhook, bad: str
) -> None:
    """A name not of the form type/name is a DcsValidationError naming it; nothing is sent."""
    sink = sinks()
    ok = await webhook(f"{sink.url}/ok")
    with pytest.raises(DcsValidationError) as raised:
        await relay("s", "b", [ok, bad])
    assert repr(bad) in str(raised.value)
    assert "'<block-type-slug>/<block-name>'" in str(raised.value)
    assert sink.requests == []


@pytest.mark.parametrize("problem", [pytest.param("secret-block"), pytest.param("missing")])
async def test_an_unusable_block_is_named_skipped_or_refused(
    sinks: Sinks, webhook: Webhook, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-notification or missing block is named; strict refuses, else the rest still go."""
    sink = sinks()
    ok = await webhook(f"{sink.url}/ok")
    name = f"notify-{uuid.uuid4().hex[:10]}"
    if problem == "secret-block":
        await Secret(value=TOKEN).asave(name)
        expected = "is a Secret block, not a notification block"
    else:
        expected = f"is there a block of type 'secret' named {name!r}?"
    with pytest.raises(DcsValidationError) as raised:
        await relay("s", "b", [ok, f"secret/{name}"], strict=True)
    assert f"'secret/{name}'" in str(raised.value)
    assert expected in str(raised.value)
    assert_no_secret(raised.value)
    assert sink.requests == []
    with pytest.raises(DcsValidationError, match=re.escape(expected)):
        await check_notification_blocks([ok, f"secret/{name}"])

    results = await relay("s", "b", [ok, f"secret/{name}"])
    assert results == {ok: "sent", f"secret/{name}": "failed: unusable"}
    assert len(sink.requests) == 1
    assert expected in caplog.text


async def test_no_blocks_means_nothing_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty list sends nothing and returns {}; notify_migration starts no task run."""
    assert await relay("s", "b", []) == {}
    monkeypatch.setattr(notify, "send_notification", None)  # would fail if called
    assert await notify_migration(make_task(), event="e", notification_blocks=[]) == {}


async def test_one_task_run_per_round(
    sinks: Sinks, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notify_migration is one send-notification task run, however many blocks it uses."""
    first, second = sinks(), sinks()
    names = [await webhook(f"{first.url}/a"), await webhook(f"{second.url}/b")]
    runs: list[str] = []

    def count(task: object, task_run: Any, state: State[Any]) -> None:
        runs.append(task_run.name)

    monkeypatch.setattr(
        notify, "send_notification", send_notification.with_options(on_completion=[count])
    )

    @flow
    async def runbook() -> dict[str, str]:
        return await notify_migration(make_task(), event="e", notification_blocks=names)

    assert await runbook() == dict.fromkeys(names, "sent")
    assert len(runs) == 1
    assert runs[0].startswith("send-notification")


async def test_a_sync_flow_submits_the_task(sinks: Sinks, webhook: Webhook) -> None:
    """The sync-flow recipe in notify_migration's docstring works."""
    sink = sinks()
    name = await webhook(f"{sink.url}/ok")

    @flow
    def runbook() -> dict[str, str]:
        subject, body = format_message(make_task(), event="succeeded")
        return send_notification.submit(subject, body, [name]).result()

    # In a thread of its own, as a deployed sync flow runs: no event loop around it.
    assert await asyncio.to_thread(runbook) == {name: "sent"}
    assert "migration1" in posts(sink)[0]["body"]
