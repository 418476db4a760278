"""flows.cutover: the IP exchange and its rollback are requested at most once per attempt.

The fake DCS (tests/fakes.py, in cutover mode via tests/cutover_dcs.py) is stateful; flows
run under `FakeTime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any

import pytest
from prefect import flow

from blocks.errors import CutoverAlreadyRequested, CutoverFailed
from blocks.models import EXCHANGE_SUCCESS, EXCHANGING, ROLLBACK_SUCCESS, MigrationTask
from flows.clock import FakeTime, use_time
from flows.cutover import exchange_instance_ip
from flows.records import cutover_record_name
from tests.conftest import StubDcs
from tests.cutover_dcs import TOKEN, CutoverDcs
from tests.fakes import PASSWORD

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def dcs(stub_dcs: StubDcs) -> CutoverDcs:
    """The fake DCS, with a fresh task id and a block pointed at it."""
    return CutoverDcs(stub_dcs)


@pytest.mark.parametrize(
    ("after", "post_answer"),
    [
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], (204, b""), id="exchanging-then-success"),
        pytest.param(["RUNNING", "RUNNING", EXCHANGING, EXCHANGE_SUCCESS], (204, b""), id="lags"),
        pytest.param([EXCHANGING, *[503] * 9, EXCHANGE_SUCCESS], (204, b""), id="dcs-flaky"),
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], (502, b"<html>"), id="post-5xx-but-acted"),
    ],
)
async def test_exchange_succeeds_with_one_request(
    dcs: CutoverDcs,
    after: list[str | int],
    post_answer: tuple[int, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EXCHANGING -> EXCHANGE_SUCCESS returns the masked task after exactly one POST."""
    dcs.after["exchange-ip"] = after
    dcs.post_answer = post_answer
    with caplog.at_level(logging.INFO):
        task = await dcs.switch(exchanged_ip=["10.0.0.9"])
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 0}
    assert dcs.post_bodies == [{"exchanged_ip": ["10.0.0.9"]}]
    saved = await dcs.record()
    assert saved["state"] == "succeeded"
    assert saved["task_status"] == EXCHANGE_SUCCESS
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert logs.count("cannot read the task") == (1 if 503 in after else 0)
    for text in (task.model_dump_json(), json.dumps(saved), logs):
        assert PASSWORD not in text
        assert TOKEN not in text


@pytest.mark.parametrize(
    ("after", "post_answer", "options", "expected", "state"),
    [
        pytest.param(
            [EXCHANGING, "EXCHANGE_FAILED"], (204, b""), {}, "'EXCHANGE_FAILED'", "failed",
            id="exchange-failed",
        ),
        pytest.param(
            [EXCHANGING], (204, b""), {"timeout_seconds": 60},
            r"did not finish within 60 s .*last task_status 'EXCHANGING'", "requested",
            id="deadline",
        ),
        pytest.param(
            ["RUNNING"], (204, b""), {},
            r"did not start.*last task_status 'RUNNING'.*nothing was switched, pass force=True",
            "failed", id="never-started",
        ),
        pytest.param(
            [EXCHANGING], (400, b'{"error_code": "DCS.4972", "error_msg": "bad state"}'), {},
            r"refused, nothing was switched.*DCS\.4972", "refused", id="post-refused",
        ),
    ],
)  # fmt: skip
async def test_exchange_failure_is_reported(
    dcs: CutoverDcs,
    after: list[str | int],
    post_answer: tuple[int, bytes],
    options: dict[str, Any],
    expected: str,
    state: str,
) -> None:
    """A bad end or the deadline raises CutoverFailed naming the task and last task_status."""
    dcs.after["exchange-ip"] = after
    dcs.post_answer = post_answer
    with pytest.raises(CutoverFailed, match=expected) as raised:
        await dcs.switch(**options)
    assert dcs.task_id in str(raised.value)
    assert dcs.posts["exchange-ip"] == 1
    assert (await dcs.record())["state"] == state


async def test_a_refused_request_does_not_block_the_next_one(dcs: CutoverDcs) -> None:
    """A request DCS refused switched nothing: the next run asks again, without force."""
    dcs.after["exchange-ip"] = [EXCHANGING, EXCHANGE_SUCCESS]
    dcs.post_answer = (400, b'{"error_code": "DCS.4972", "error_msg": "not yet"}')
    with pytest.raises(CutoverFailed, match="refused"):
        await dcs.switch()
    dcs.post_answer = (204, b"")
    task = await dcs.switch()
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 2
    assert (await dcs.record())["state"] == "succeeded"


async def test_a_blank_task_status_mid_exchange_is_not_an_end(dcs: CutoverDcs) -> None:
    """DCS showing no task_status for a moment during the switch does not fail the cutover."""
    dcs.after["exchange-ip"] = [EXCHANGING, "", EXCHANGING, EXCHANGE_SUCCESS]
    task = await dcs.switch()
    assert task.task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 1


async def test_flow_retry_does_not_request_again(
    dcs: CutoverDcs, caplog: pytest.LogCaptureFixture
) -> None:
    """A flow retried after the exchange follows DCS instead of POSTing a second time."""
    attempts: list[str | None] = []

    @flow(retries=2, retry_delay_seconds=0)
    async def cutover() -> MigrationTask:
        task = await exchange_instance_ip(dcs.task_id, dcs.credentials)
        attempts.append(task.task_status)
        if len(attempts) == 1:
            raise RuntimeError("a step after the exchange failed")
        return task

    with use_time(FakeTime()), caplog.at_level(logging.INFO):
        task = await cutover()
    assert task.task_status == EXCHANGE_SUCCESS
    assert attempts == [EXCHANGE_SUCCESS, EXCHANGE_SUCCESS]
    assert dcs.posts["exchange-ip"] == 1
    assert any("without a new request" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("shown", "force", "posts"),
    [
        pytest.param([ROLLBACK_SUCCESS], False, 1, id="refused-when-dcs-shows-no-exchange"),
        pytest.param([EXCHANGING, EXCHANGE_SUCCESS], False, 1, id="follows-when-exchanging"),
        pytest.param([EXCHANGE_SUCCESS], False, 1, id="returns-when-already-done"),
        pytest.param([ROLLBACK_SUCCESS], True, 2, id="force-requests-again"),
    ],
)
async def test_a_later_run_requests_only_with_force(
    dcs: CutoverDcs, shown: list[str | int], force: bool, posts: int
) -> None:
    """A new flow run for an exchanged task is refused, or follows, unless force=True."""
    await dcs.switch()
    first = await dcs.record()
    dcs.show(*shown)
    if shown == [ROLLBACK_SUCCESS] and not force:
        with pytest.raises(CutoverAlreadyRequested) as refused:
            await dcs.switch()
        message = str(refused.value)
        for part in (dcs.task_id, first["flow_run_id"], first["requested_at"], "force=True"):
            assert part in message
        assert "'ROLLBACK_SUCCESS'" in message
    else:
        assert (await dcs.switch(force=force)).task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == posts
    latest = await dcs.record()
    assert (latest["flow_run_id"] != first["flow_run_id"]) is force


@pytest.mark.parametrize("force", [pytest.param(False, id="plain"), pytest.param(True, id="force")])
async def test_never_requests_while_dcs_is_exchanging(dcs: CutoverDcs, force: bool) -> None:
    """With no record but DCS already EXCHANGING, even force=True only follows and records."""
    dcs.show(EXCHANGING, EXCHANGING, EXCHANGE_SUCCESS)
    assert (await dcs.switch(force=force)).task_status == EXCHANGE_SUCCESS
    assert dcs.posts["exchange-ip"] == 0
    assert (await dcs.record())["state"] == "succeeded"


async def test_rollback_has_its_own_record(dcs: CutoverDcs) -> None:
    """Rollback follows to ROLLBACK_SUCCESS; a new exchange after it then needs force=True."""
    await dcs.switch()
    assert (await dcs.switch(rollback=True)).task_status == ROLLBACK_SUCCESS
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 1}
    assert (await dcs.record("rollback-ip"))["state"] == "succeeded"
    assert (await dcs.record())["state"] == "succeeded"
    with pytest.raises(CutoverAlreadyRequested):
        await dcs.switch()
    assert dcs.posts == {"exchange-ip": 1, "rollback-ip": 1}


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param("a276c1ffa0a54c2597fc824b917db317", id="hex"),
        pytest.param("Task.ID:With~Punctuation", id="mixed-case-punctuation"),
        pytest.param("x" * 128, id="longest"),
    ],
)
def test_record_names_are_valid_and_distinct(task_id: str) -> None:
    """Record names fit Prefect's variable rules, and ids differing only in case differ."""
    name = cutover_record_name(task_id)
    assert len(name) <= 255
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")
    assert name.startswith("dcs-cutover-exchange-ip-")
    assert name != cutover_record_name(task_id.swapcase() + "!")
    assert name != cutover_record_name(task_id, "rollback-ip")


@pytest.mark.parametrize(
    ("first_answer", "shown_after", "force"),
    [
        pytest.param(
            (400, b'{"error_code": "DCS.4972", "error_msg": "not yet"}'), None, False,
            id="after-a-refused-request",
        ),
        pytest.param((204, b""), ROLLBACK_SUCCESS, True, id="both-with-force"),
    ],
)  # fmt: skip
async def test_two_runs_racing_send_one_request(
    dcs: CutoverDcs, first_answer: tuple[int, bytes], shown_after: str | None, force: bool
) -> None:
    """Two runs that read the same latest record at once: one claims and POSTs, one refuses."""
    dcs.post_answer = first_answer
    with pytest.raises(CutoverFailed) if first_answer[0] == 400 else contextlib.nullcontext():
        await dcs.switch()
    dcs.post_answer = (204, b"")
    if shown_after is not None:
        dcs.show(shown_after)
    dcs.gate = threading.Barrier(2)

    @flow
    async def cutover() -> MigrationTask:
        return await exchange_instance_ip(dcs.task_id, dcs.credentials, force=force)

    with use_time(FakeTime()):
        outcomes = await asyncio.gather(cutover(), cutover(), return_exceptions=True)

    assert dcs.posts["exchange-ip"] == 2, outcomes
    assert sorted(type(o).__name__ for o in outcomes) == [
        "CutoverAlreadyRequested",
        "MigrationTask",
    ]
    (refusal,) = [o for o in outcomes if isinstance(o, CutoverAlreadyRequested)]
    assert "another run" not in str(refusal)  # the message is for people: it names the record
    assert cutover_record_name(dcs.task_id) + "--2" in str(refusal)
    records = await dcs.records()
    assert [r["state"] for r in records] == [records[0]["state"], "succeeded"]
    assert [r["attempt"] for r in records] == [1, 2]
