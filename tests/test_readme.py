"""The README's Python examples run as written, against a scripted DCS on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from blocks.credentials import DcsCredentials
from flows.clock import FakeTime, use_time
from tests.conftest import TASK_ID, StubDcs
from tests.fakes import PASSWORD, FakeDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

README = Path(__file__).parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_the_examples_this_test_expects() -> None:
    """The README keeps its nine Python examples (so none is silently skipped)."""
    assert len(EXAMPLES) == 9


def test_readme_examples_run(stub_dcs: StubDcs, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example runs; the block it saves is real, then pointed at the stub for the rest."""
    exec(compile(EXAMPLES[0], "README.md:save-block", "exec"), {})  # noqa: S102
    saved = DcsCredentials.load("dcs")
    assert saved.dcs_endpoint == "https://dcs.cn-north-4.myhuaweicloud.com"
    assert saved.auth_method == "aksk"

    # The remaining examples talk to DCS: the same block, pointed at the loopback stub, and a
    # migration that is in full migration at first, then in incremental sync.
    DcsCredentials(endpoint=stub_dcs.url, project_id=saved.project_id, token="readme-token").save(
        "dcs", overwrite=True
    )
    dcs = FakeDcs({TASK_ID: ["FULLMIGRATING", "INCRMIGEATING"]}, progress=[62.5])
    stub_dcs.handler = dcs.stub_handler
    with StubDcs() as sink:
        CustomWebhookNotificationBlock(
            name="ops", url=f"{sink.url}/hook", json_data={"text": "{{subject}}"}
        ).save("ops", overwrite=True)
        with use_time(FakeTime()):  # the examples' 15 s intervals pass instantly
            for number, example in enumerate(EXAMPLES[1:], start=2):
                code = compile(example, f"README.md:example-{number}", "exec")
                exec(code, {"__name__": "readme"})  # noqa: S102
        notes = [json.loads(body)["text"] for _, _, _, body in sink.requests]
    out = capsys.readouterr().out
    assert f"migration-{TASK_ID}: FULLMIGRATING" in out  # fetch_migration_task in a flow
    assert "62.5" in out  # stats from the async client
    assert "INCRMIGRATING True" in out  # the wait flow, ready for cutover
    assert "0000000000000000000000000000dead False None MigrationTaskNotFound" in out
    assert f"{{'{TASK_ID}': 'INCRMIGEATING'}}" in out  # the sensor's look
    assert "EXCHANGE_SUCCESS" in out  # the runbook's summary
    assert "0 0 60.0" in out  # the catch-up gate on its own: offset, key difference, seconds
    assert "DCS.4133 req-s False" in out  # the error example
    assert dcs.posts["exchange-ip"] == 1
    assert any("ready for cutover" in note for note in notes)
    assert any("cutover done" in note for note in notes)
    assert PASSWORD not in out + " ".join(notes)
