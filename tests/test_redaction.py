"""blocks.redaction: the log filters are attached explicitly, never by an import, and each
cuts out what it must (IAM's token always, URLs only while a notification is sent)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from blocks.auth import IamPasswordAuth
from blocks.redaction import (
    MASKED,
    attach_log_filters,
    redacting_urls,
    scrub,
    url_secrets,
)

ROOT = Path(__file__).parent.parent
LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2")
IAM_TOKEN = "MIIredaction-token-canary-51f0"
HOOK_TOKEN = "hook-token-canary-a8d2e61c"
HOOK_URL = f"https://hooks.example.invalid/services/T0/B0/{HOOK_TOKEN}"


@pytest.fixture
def bare_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx's and httpcore's loggers without any filter, as in a fresh process."""
    for name in LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "filters", [])


def filtered(logger: str, msg: str, *args: object) -> str:
    """The message of a record after `logger`'s filters had it."""
    record = logging.LogRecord(logger, logging.DEBUG, __file__, 1, msg, args, None)
    assert logging.getLogger(logger).filter(record)
    return record.getMessage()


def test_importing_the_package_attaches_no_log_filter() -> None:
    """Importing blocks (auth, client, credentials) leaves httpx's and httpcore's loggers as
    they were: a filter is attached by whoever sends a request that needs it."""
    code = (
        "import json, logging, sys\n"
        f"names = {LOGGERS!r}\n"
        "before = [len(logging.getLogger(n).filters) for n in names]\n"
        "import blocks.auth, blocks.client, blocks.credentials, blocks.redaction\n"
        "after = [len(logging.getLogger(n).filters) for n in names]\n"
        "print(json.dumps([before, after]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    before, after = json.loads(out)
    assert after == before


def test_an_iam_token_request_attaches_the_token_filter(bare_loggers: None) -> None:
    """The first token request attaches the filter that masks X-Subject-Token in
    httpcore's DEBUG trace, before the answer (and its trace) arrives."""

    def cloud(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/auth/tokens":
            return httpx.Response(201, headers={"X-Subject-Token": IAM_TOKEN}, json={})
        return httpx.Response(200, json={})

    auth = IamPasswordAuth(
        "ops",
        SecretStr("pw"),
        "acme",
        project_id="p",
        iam_endpoint="https://iam.example.test",
    )
    trace = f"receive_response_headers.complete [(b'X-Subject-Token', b'{IAM_TOKEN}')]"
    assert IAM_TOKEN in filtered("httpcore.http11", trace)  # nothing attached yet
    with httpx.Client(transport=httpx.MockTransport(cloud), auth=auth) as client:
        client.get("https://dcs.example.test/v2/p/migration-tasks")
    for name in ("httpcore.http11", "httpcore.http2"):
        shown = filtered(name, trace)
        assert IAM_TOKEN not in shown
        assert f"b'{MASKED}'" in shown


@pytest.mark.parametrize(
    "trace",
    [
        pytest.param(
            "receive_response_headers.complete return_value=(b'HTTP/1.1', 201, b'Created', "
            f"[(b'Content-Type', b'application/json'), (b'X-Subject-Token', b'{IAM_TOKEN}')])",
            id="http11-bytes",
        ),
        pytest.param(f"headers=[('x-subject-token', '{IAM_TOKEN}')]", id="lowercase-str"),
    ],
)
def test_the_subject_token_is_masked_in_httpcore_traces(bare_loggers: None, trace: str) -> None:
    """Once attached, the token filter masks the header's value and keeps the rest."""
    attach_log_filters()
    shown = filtered("httpcore.http11", "%s", trace)
    assert shown == trace.replace(IAM_TOKEN, MASKED)


def test_urls_are_cut_out_only_while_a_notification_is_sent(bare_loggers: None) -> None:
    """httpx's request line loses its URL inside `redacting_urls()`; outside it, and in
    another thread meanwhile, the line is left as it is."""
    line = 'HTTP Request: %s %s "%s %d %s"'
    args = ("POST", HOOK_URL, "HTTP/1.1", 200, "OK")
    attach_log_filters()
    assert HOOK_URL in filtered("httpx", line, *args)
    elsewhere: list[str] = []
    with redacting_urls():
        inside = filtered("httpx", line, *args)
        other = threading.Thread(target=lambda: elsewhere.append(filtered("httpx", line, *args)))
        other.start()
        other.join()
    assert inside == 'HTTP Request: POST <url> "HTTP/1.1 200 OK"'
    assert HOOK_URL in elsewhere[0]
    assert HOOK_URL in filtered("httpx", line, *args)


def test_redacting_urls_attaches_its_filter(bare_loggers: None) -> None:
    """Entering `redacting_urls()` is enough: no separate attach call is needed."""
    with redacting_urls():
        shown = filtered("httpx", "HTTP Request: POST %s", HOOK_URL)
    assert HOOK_TOKEN not in shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(HOOK_URL, {HOOK_TOKEN}, id="slack-path-token"),
        pytest.param("https://user:s3cr3t-pw@example.test/x", {"s3cr3t-pw"}, id="user-info"),
        pytest.param("https://example.test/hook?key=q-secret-77", {"q-secret-77"}, id="query"),
        pytest.param("not a url", set(), id="no-url"),
    ],
)
def test_url_secrets_are_the_parts_that_carry_a_token(url: str, expected: set[str]) -> None:
    """Long path segments, the password and query values; never "hooks" or "services"."""
    assert url_secrets(url) == expected


def test_scrub_replaces_longest_first_and_leaves_short_values() -> None:
    """A secret containing another is replaced whole; one of under 4 characters is kept."""
    text = scrub("pw abcdef and abcd and abc", {"abcdef", "abcd", "abc"})
    assert text == f"pw {MASKED} and {MASKED} and abc"
