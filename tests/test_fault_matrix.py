"""The fault matrix: every sandbox fault through the wait flow and through the runbook.

Each test serves its own scenario from the real sandbox on 127.0.0.1, whose clock is the
flows' `FakeTime`: poll intervals, the client's retry waits and the task's scripted life
all pass in no real time, in lockstep. The only real waits are the `slow` fault's 0.8 s
against a 0.4 s request timeout. Every row checks the outcome (done, or the exact error
class), the IP exchange (POSTs received, exchanges that took effect: never more than one)
and the notifications (none twice). The README's "Reliability" table is this file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import httpx
import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from blocks.credentials import DcsCredentials
from blocks.errors import (
    CutoverFailed,
    DcsAuthError,
    DcsError,
    MigrationTaskNotFound,
    MigrationUnreachable,
)
from flows.clock import FakeTime, use_time
from flows.runbook import migration_runbook
from flows.wait import wait_for_migration_task
from sandbox import MigrationScript, SandboxHandle, Scenario, serve
from sandbox.iam import password_request
from tests.conftest import StubDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

Auth = Literal["token", "pasted_iam_token", "iam_password", "aksk"]
SHOW, POST = "show_migration_task", "exchange_instance_ip"
DONE = ("ready for cutover", "cutover done")
#: Real seconds: in the `slow` rows, a request timeout well under the fault's delay.
TIMEOUT, SLOW = 0.4, 0.8
RETRY_AFTER = 3  # longer than the jittered backoff of the first three retries (at most 2 s)
NOTIFY = "custom-webhook/fault-matrix-sink"


def incremental(task_id: str) -> MigrationScript:
    """RUNNING 2 s, FULLMIGRATING 55 s, then incremental sync (ready for cutover) for ever.

    Ready at 57 s: polled every 15 s from the first answer (0 to 9 s late, after the first
    reads' retries), the wait always takes five successful reads.
    """
    return MigrationScript.incremental(task_id, full_seconds=55, exchanging_seconds=5)


@dataclass(frozen=True)
class Case:
    """One row: what the sandbox plays, how DCS is reached, and what must come of it."""

    faults: tuple[dict[str, Any], ...] = ()
    script: Callable[[str], MigrationScript] = incremental
    auth: Auth = "token"
    skew: timedelta = timedelta(0)
    timeout: float = 30.0  # the block's timeout_seconds
    error: type[DcsError] | None = None  # None: the flow completes
    notes: tuple[str, ...] = DONE  # the runbook's notifications, by event, in order
    posts: int = 1  # POST exchange-ip requests DCS received from the runbook
    exchanges: int = 1  # of which took effect
    check: Callable[[World, str], None] | None = None
    #: More parameters for the runbook (the catch-up gate's, in test_fault_matrix_gate.py).
    parameters: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def sink(prefect_harness: None) -> Iterator[StubDcs]:
    """One webhook sink and its notification block for the module (tests tell by task id)."""
    with StubDcs() as stub:
        stub.handler = lambda *_: (200, {}, b"{}")
        CustomWebhookNotificationBlock(
            name="sink",
            url=f"{stub.url}/hook",
            json_data={"subject": "{{subject}}"},
            allow_private_urls=True,
        ).save(NOTIFY.split("/", 1)[1], overwrite=True)
        yield stub


class World:
    """A sandbox on the fake clock and a saved credentials block for it."""

    def __init__(self, sandbox: SandboxHandle, sink: StubDcs, fake: FakeTime) -> None:
        self.sandbox, self.sink, self.fake = sandbox, sink, fake
        self.task_id = sandbox.scenario.tasks[0].task_id
        self.block = f"faults-{self.task_id[:12]}"
        self.stop: Callable[[], None] = lambda: None

    async def save_block(self, auth: Auth, timeout: float) -> None:
        creds = self.sandbox.credentials
        names = {
            "token": ("token",),
            "pasted_iam_token": (),
            "iam_password": ("iam_username", "iam_password", "iam_domain_name", "iam_endpoint"),
            "aksk": ("access_key", "secret_key"),
        }[auth]
        secrets = {name: creds[name] for name in names}
        if auth == "pasted_iam_token":  # a token someone got from IAM and pasted in
            user = (creds["iam_username"], creds["iam_password"], creds["iam_domain_name"])
            body = password_request(*user, project_id=creds["project_id"])
            url = f"{creds['iam_endpoint']}/v3/auth/tokens"
            async with httpx.AsyncClient(timeout=5) as iam:
                secrets["token"] = (await iam.post(url, json=body)).headers["x-subject-token"]
        await DcsCredentials(
            endpoint=creds["endpoint"],
            project_id=creds["project_id"],
            timeout_seconds=timeout,
            **secrets,
        ).asave(self.block, overwrite=True)

    def run(self, target: str, **parameters: Any) -> Any:
        if target == "wait":
            return wait_for_migration_task(self.task_id, self.block, poll_interval_seconds=15)
        return migration_runbook(
            task_id=self.task_id,
            credentials=self.block,
            poll_interval_seconds=15,
            cutover="exchange_ip",
            notification_blocks=[NOTIFY],
            **parameters,
        )

    def events(self) -> list[str]:
        """The event of each notification about this task, in the order they arrived."""
        subjects = [json.loads(body)["subject"] for *_, body in self.sink.requests]
        mine = [s for s in subjects if f"({self.task_id})" in s]
        return [s.removeprefix("DCS migration ").split(": ", 1)[0] for s in mine]

    def faulted_reads(self) -> list[float]:
        """The scenario time of each read of the task that got a fault."""
        requests = self.sandbox.state.requests
        return [r.at for r in requests if r.route == SHOW and r.fault and r.task_id == self.task_id]

    def posted_at(self) -> float:
        """The scenario time of the first POST exchange-ip."""
        requests = self.sandbox.state.requests
        return next(r.at for r in requests if r.route == POST)


@pytest.fixture
def world_for(sink: StubDcs) -> Iterator[Callable[[Case], World]]:
    """Serve a case's scenario on a fresh fake clock, and run the test under that clock."""
    with ExitStack() as stack:

        def make(case: Case) -> World:
            fake = FakeTime()
            task_id = uuid.uuid4().hex  # the exactly-once record is kept per task id
            scenario = Scenario.model_validate(
                {"tasks": [case.script(task_id).model_dump()], "faults": case.faults}
            )
            # The wall clock AK/SK signatures are checked against (skewed on request).
            wall = lambda: datetime.now(timezone.utc) + case.skew  # noqa: E731
            served = ExitStack()  # its own, so a test can stop the sandbox before checking
            handle = served.enter_context(serve(scenario, clock=fake.monotonic, utc_now=wall))
            stack.callback(served.close)
            stack.enter_context(use_time(fake))
            world = World(handle, sink, fake)
            world.stop = served.close
            return world

        yield make


async def run_case(world: World, target: str, case: Case) -> Any:
    """Run the flow; whatever happens, no exchange took effect twice, no note went twice."""
    await world.save_block(case.auth, case.timeout)
    try:
        if case.error is None:
            return await world.run(target, **case.parameters)
        with pytest.raises(case.error) as raised:
            await world.run(target, **case.parameters)
        assert type(raised.value) is case.error, raised.value
        return raised.value
    finally:
        world.stop()  # waits for requests still in flight (`slow`) to be recorded
        assert world.sandbox.state.exchanges(world.task_id) <= 1
        events = world.events()
        assert len(events) == len(set(events)), f"a notification went out twice: {events}"


def check_runbook(world: World, case: Case, result: Any) -> None:
    state = world.sandbox.state
    assert state.exchange_requests(world.task_id) == case.posts
    assert state.exchanges(world.task_id) == case.exchanges
    assert tuple(world.events()) == case.notes
    if case.error is None:
        assert result.task_status == "EXCHANGE_SUCCESS"


def struck_where_meant(world: World, target: str) -> None:
    """Three faults in the wait; in the runbook, then one before the POST and two after it."""
    post = world.posted_at() if target == "runbook" else 0.0
    # The first three reads are over by 45 s (one per poll, at 0, 15 and 30, for `html`).
    phases = [
        "wait" if at < 45 else "before" if at <= post else "after"
        for at in sorted(world.faulted_reads())
    ]
    later = ["before", "after", "after"] if target == "runbook" else []
    assert phases == ["wait"] * 3 + later, (world.faulted_reads(), post)


def retry_after_honoured(world: World, target: str) -> None:
    """Each of the first three 429s was followed by a wait of exactly Retry-After."""
    struck_where_meant(world, target)
    assert world.fake.sleeps[:3] == [RETRY_AFTER] * 3


def refreshed(world: World, target: str) -> None:
    """Expired tokens were answered 401, and new tokens were fetched."""
    assert world.sandbox.state.count(SHOW, status=401) >= 1
    assert world.sandbox.state.tokens_issued >= 2


def answered(status: int, times: int, route: str = SHOW) -> Callable[[World, str], None]:
    """Exactly `times` requests on `route` got HTTP `status`."""

    def check(world: World, target: str) -> None:
        assert world.sandbox.state.count(route, status=status) == times

    return check


def kept_waiting(world: World, target: str) -> None:
    """The watch went on through the unknown status (seconds 5 to 45) to incremental sync."""
    assert world.fake.monotonic() >= 45


def burst(
    kind: str,
    after: tuple[int, ...] = (9, 11, 13),
    first: dict[str, Any] | None = None,
    **options: Any,
) -> Case:
    """`kind` on the first three reads (one poll's retries), then on each read after the wait.

    The wait's reads are 1-8 (three faulted, five answered); the reads before the POST,
    while following it and to verify it are 9, 11 and 13: each fault costs one retry.
    """
    show = {"kind": kind, "routes": [SHOW], **options}
    opening = {**show, "count": 3, **(first or {})}
    later = [{**show, "skip": number - 1, "count": 1} for number in after]
    check = retry_after_honoured if kind == "rate_limit" else struck_where_meant
    return Case((opening, *later), check=check, timeout=TIMEOUT if kind == "slow" else 30.0)


def on_exchange(kind: str, **options: Any) -> tuple[dict[str, Any], ...]:
    return ({"kind": kind, "routes": [POST], **options},)


def refused_once(status: int) -> dict[str, Any]:
    """The first POST was refused with `status` (before acting), the second one acted."""
    return {"posts": 2, "check": answered(status, 1, route=POST)}


def on_read(number: int) -> tuple[dict[str, Any], ...]:
    """A non-JSON page on the `number`-th read only (the wait takes reads 1-5)."""
    return ({"kind": "html", "routes": [SHOW], "skip": number - 1, "count": 1},)


NOT_CUT_OVER = {"notes": ("failed",), "posts": 0, "exchanges": 0}
NOT_SWITCHED = {
    "error": CutoverFailed,
    "notes": ("ready for cutover", "cutover failed"),
    "exchanges": 0,
}


WAIT_CASES: dict[str, Case] = {
    "no-fault": Case(),
    # First three gateway pages (502, HTML), then DCS's own 500 DCS.5000.
    "5xx-burst": burst("server_error", first={"status": 502}),
    "429-retry-after": burst("rate_limit", retry_after=RETRY_AFTER),
    "busy-code": burst("busy", code="DCS.4975"),
    "slow-beyond-timeout": burst("slow", seconds=SLOW),
    "dropped-connection": burst("drop"),
    # Not retried by the client: each fault is a failed poll, so the wait takes reads 1-5.
    "non-json-body": burst("html", after=(6, 8, 10)),
    "5xx-outage": Case(  # 20 polls in a row, each tried 6 times by the client
        ({"kind": "server_error", "routes": [SHOW]},),
        error=MigrationUnreachable,
        check=answered(500, 20 * 6),
        **NOT_CUT_OVER,
    ),
    "token-expiry-token-block": Case(
        ({"kind": "token_expiry", "seconds": 40},),
        auth="pasted_iam_token",
        error=DcsAuthError,
        check=answered(401, 1),
        **NOT_CUT_OVER,
    ),
    "token-expiry-iam-password-block": Case(
        ({"kind": "token_expiry", "seconds": 20},), auth="iam_password", check=refreshed
    ),
    "clock-skew-16-min": Case(
        auth="aksk",
        skew=timedelta(minutes=16),
        error=DcsAuthError,
        check=answered(401, 1),
        **NOT_CUT_OVER,
    ),
    "clock-skew-14-min": Case(auth="aksk", skew=timedelta(minutes=-14)),
    "task-deleted-mid-wait": Case(
        script=lambda task_id: MigrationScript.deleted(task_id, deleted_after_seconds=20),
        error=MigrationTaskNotFound,
        check=answered(400, 1),  # DCS sends DCS.4133 on a 400
        **NOT_CUT_OVER,
    ),
    "unknown-status": Case(
        script=lambda task_id: MigrationScript.unknown_status(
            task_id, status="PAUSED_FOR_UPGRADE", after_seconds=5, unknown_seconds=40
        ),
        check=kept_waiting,
    ),
}
MATRIX = [
    pytest.param(case, target, id=f"{name}-{target}")
    for name, case in WAIT_CASES.items()
    for target in ("wait", "runbook")
]


@pytest.mark.parametrize(("case", "target"), MATRIX)
async def test_fault_matrix(world_for: Callable[[Case], World], case: Case, target: str) -> None:
    """Transient faults are waited out, permanent ones fail at once with their own class."""
    world = world_for(case)
    result = await run_case(world, target, case)
    if target == "wait":
        assert world.sandbox.state.exchange_requests(world.task_id) == 0
        assert world.events() == []
        assert case.error is not None or result.ready_for_cutover
    else:
        check_runbook(world, case, result)
    if case.check is not None:
        case.check(world, target)


EXCHANGE_CASES = [
    pytest.param(Case(on_exchange("server_error", when="after")), id="5xx-after-acting"),
    pytest.param(Case(on_exchange("drop", when="after")), id="drop-after-acting"),
    pytest.param(
        Case(on_exchange("slow", when="after", seconds=SLOW), timeout=TIMEOUT),
        id="slow-after-acting",
    ),
    pytest.param(Case(on_exchange("rate_limit", count=1), **refused_once(429)), id="429-resent"),
    pytest.param(Case(on_exchange("busy", count=1), **refused_once(400)), id="busy-resent"),
    pytest.param(Case(on_exchange("server_error"), **NOT_SWITCHED), id="5xx-before-acting"),
    pytest.param(Case(on_exchange("drop"), **NOT_SWITCHED), id="drop-before-acting"),
    pytest.param(Case(on_exchange("html"), **NOT_SWITCHED), id="html-instead-of-204"),
    # One gateway page, or an outage longer than the client's own retries, on the reads a
    # runbook makes outside its watch: waited out like the watch does.
    pytest.param(Case(on_read(6)), id="html-on-the-read-before-the-post"),
    pytest.param(Case(on_read(7)), id="html-while-following-the-exchange"),
    pytest.param(Case(on_read(8)), id="html-on-the-verify-read"),
    pytest.param(  # reads 8-13: the verify read and its five retries
        Case(({"kind": "server_error", "routes": [SHOW], "skip": 7, "count": 6},)),
        id="5xx-outage-on-the-verify-read",
    ),
]


@pytest.mark.parametrize("case", EXCHANGE_CASES)
async def test_fault_around_the_exchange(world_for: Callable[[Case], World], case: Case) -> None:
    """The POST is resent only when DCS certainly did not act; one exchange at the most."""
    world = world_for(case)
    result = await run_case(world, "runbook", case)
    check_runbook(world, case, result)
    if case.check is not None:
        case.check(world, "runbook")
