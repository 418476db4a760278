"""The README's Python examples run as written, against a DCS stub on 127.0.0.1."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from blocks.credentials import DcsCredentials
from tests.conftest import TASK_ID, StubDcs

pytestmark = pytest.mark.usefixtures("prefect_harness")

README = Path(__file__).parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def _dcs(seed: dict[str, Any]) -> Any:
    not_found = json.dumps({"error_code": "DCS.4133", "error_msg": "no such task"}).encode()

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        if path.endswith(f"/migration-task/{TASK_ID}"):
            return 200, {}, json.dumps(seed).encode()
        if path.endswith(f"/migration-task/{TASK_ID}/stats"):
            return 200, {}, b'{"full_migration_progress": "62.5", "is_migrating": true}'
        if "/migration-tasks?" in path:
            page = {
                "count": 1,
                "migration_tasks": [{"task_id": TASK_ID, "status": "INCRMIGEATING"}],
            }
            return 200, {}, json.dumps(page).encode()
        return 404, {"X-Request-Id": "req-readme"}, not_found

    return handler


def test_readme_has_the_examples_this_test_expects() -> None:
    """The README keeps its four Python examples (so none is silently skipped)."""
    assert len(EXAMPLES) == 4


def test_readme_examples_run(
    stub_dcs: StubDcs, seed_body: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each example runs; the block it saves is real, then pointed at the stub for the rest."""
    exec(compile(EXAMPLES[0], "README.md:save-block", "exec"), {})  # noqa: S102
    saved = DcsCredentials.load("dcs")
    assert saved.dcs_endpoint == "https://dcs.cn-north-4.myhuaweicloud.com"
    assert saved.auth_method == "aksk"

    # The remaining examples talk to DCS: the same block, pointed at the loopback stub.
    DcsCredentials(endpoint=stub_dcs.url, project_id=saved.project_id, token="readme-token").save(
        "dcs", overwrite=True
    )
    stub_dcs.handler = _dcs(seed_body)
    for number, example in enumerate(EXAMPLES[1:], start=2):
        exec(compile(example, f"README.md:example-{number}", "exec"), {"__name__": "readme"})  # noqa: S102
    out = capsys.readouterr().out
    assert "migration1: TERMINATING" in out
    assert "62.5" in out
    assert "DCS.4133 req-readme False" in out
    assert "DCStest123" not in out
