"""The exception tree: one mapping from answers to classes, clear messages, safe pickling."""

from __future__ import annotations

import inspect
import json
import pickle

import httpx
import pytest
import requests
from huaweicloudsdkcore.exceptions.exception_handler import DefaultExceptionHandler
from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException
from hypothesis import given, settings
from hypothesis import strategies as st

import blocks.errors as errors_module
from blocks.errors import (
    CutoverGateTimeout,
    DcsApiError,
    DcsAuthError,
    DcsBusyError,
    DcsError,
    DcsNotFoundError,
    DcsRateLimitedError,
    DcsServerError,
    DcsUnexpectedResponse,
    DcsValidationError,
    MigrationFailed,
    MigrationTaskNotFound,
    MigrationTimeout,
    error_from_response,
)
from blocks.models import MigrationTask

ERROR_KEYS = ["error_code", "error_msg", "errorCode", "errorMsg", "code", "message", "request_id"]


def body(code: str | None, msg: str = "message") -> bytes:
    return json.dumps({"error_code": code, "error_msg": msg, "error_ext_msg": None}).encode()


@pytest.mark.parametrize(
    ("status", "code", "expected", "transient"),
    [
        pytest.param(400, "DCS.4000", DcsApiError, False, id="400"),
        pytest.param(401, "DCS.1001", DcsAuthError, False, id="401"),
        pytest.param(403, "DCS.2003", DcsAuthError, False, id="403"),
        pytest.param(404, "DCS.4133", MigrationTaskNotFound, False, id="4133-on-404"),
        pytest.param(400, "DCS.4133", MigrationTaskNotFound, False, id="4133-on-400"),
        pytest.param(404, "DCS.4000", DcsNotFoundError, False, id="other-404"),
        pytest.param(429, None, DcsRateLimitedError, True, id="429"),
        pytest.param(400, "DCS.4026", DcsBusyError, True, id="busy-4026"),
        pytest.param(400, "DCS.4111", DcsBusyError, True, id="busy-4111"),
        pytest.param(400, "DCS.4121", DcsBusyError, True, id="busy-4121"),
        pytest.param(400, "DCS.4122", DcsApiError, False, id="not-busy-4122"),
        pytest.param(500, "DCS.5000", DcsServerError, True, id="500"),
        pytest.param(503, None, DcsServerError, True, id="503"),
        pytest.param(200, None, DcsUnexpectedResponse, False, id="2xx"),
    ],
)
def test_one_function_maps_status_and_code_to_class(
    status: int, code: str | None, expected: type[DcsApiError], transient: bool
) -> None:
    """Status and DCS code pick exactly the documented class, with its transient flag."""
    error = error_from_response(
        status, body(code), httpx.Headers({"X-Request-Id": "r-1"}), operation="op", task_id="t"
    )
    assert type(error) is expected
    assert error.transient is transient
    assert (error.status_code, error.request_id) == (status, "r-1")
    assert error.error_code == (code or str(status))  # the status when the body has none


def test_not_found_message_names_task_project_code_and_request() -> None:
    """DCS.4133 reads as the house style asks: what, where, which value, which request."""
    error = error_from_response(
        404,
        body("DCS.4133", "The migration task does not exist."),
        httpx.Headers({"X-Request-Id": "req-42"}),
        operation="show_migration_task",
        task_id="a276c1ff",
        project_id="0605767f",
    )
    assert str(error).startswith(
        "migration task 'a276c1ff' not found in project '0605767f' (DCS.4133, request req-42)"
    )
    assert error.error_msg == "The migration task does not exist."


def test_a_gateway_html_page_still_yields_a_readable_api_error() -> None:
    """An HTML 502 keeps its words, drops its tags, and names the operation."""
    page = b"<html><head><title>502</title></head><body><h1>Bad Gateway</h1>nginx</body></html>"
    error = error_from_response(502, page, httpx.Headers(), operation="show_migration_task")
    assert isinstance(error, DcsServerError)
    assert error.error_code == "502"
    assert error.error_msg == "502 Bad Gateway nginx"
    assert "show_migration_task failed with HTTP 502: 502 Bad Gateway nginx" in str(error)


# (status, body, code, message, pair): the shapes the official SDK reads, then what it
# falls back to; `pair` when the code and the message come from one of its key pairs.
SHAPES = [
    pytest.param(400, {"errorCode": "DCS.4000", "errorMsg": "bad"}, "DCS.4000", "bad", True,
                 id="camel-case"),
    pytest.param(404, {"code": "APIGW.0101", "message": "no such API"}, "APIGW.0101",
                 "no such API", True, id="code-message"),
    pytest.param(400, {"error": {"error_code": "DCS.4000", "error_msg": "bad"}}, "DCS.4000",
                 "bad", True, id="nested-snake-case"),
    pytest.param(500, {"result": {"error": {"code": "SYS.500", "message": "down"}}},
                 "SYS.500", "down", True, id="nested-two-deep"),
    pytest.param(400, {"code": 4000, "message": "numeric"}, "4000", "numeric", True,
                 id="numeric-code"),
    pytest.param(503, {"error_code": "", "error_msg": "busy"}, "503", "busy", True,
                 id="empty-code"),
    pytest.param(500, {"error_msg": "boom"}, "500", "boom", False, id="message-only"),
    pytest.param(400, {"detail": "unknown shape"}, "400", '{"detail": "unknown shape"}', False,
                 id="unknown-shape"),
    pytest.param(502, ["bad", "gateway"], "502", '["bad", "gateway"]', False, id="json-list"),
    pytest.param(503, b"", "503", "(empty body)", False, id="empty-body"),
    pytest.param(504, b"<h1>Gateway Timeout</h1>", "504", "Gateway Timeout", False, id="html"),
]  # fmt: skip


def raw(content: object) -> bytes:
    """The body bytes of a SHAPES entry."""
    return content if isinstance(content, bytes) else json.dumps(content).encode()


@pytest.mark.parametrize(("status", "content", "code", "msg", "pair"), SHAPES)
def test_error_body_shapes_the_sdk_reads(
    status: int, content: object, code: str, msg: str, pair: bool
) -> None:
    """Every error shape the official SDK reads gives its code and message; else the status."""
    error = error_from_response(status, raw(content), httpx.Headers(), operation="op")
    assert (error.error_code, error.error_msg) == (code, msg)
    # A code that is only the status is not said twice.
    shown = f"HTTP {status}: " if code == str(status) else f"HTTP {status} {code}: "
    assert shown in str(error)


@pytest.mark.parametrize(("status", "content", "code", "msg", "pair"), SHAPES)
def test_codes_agree_with_the_official_sdk(
    status: int, content: object, code: str, msg: str, pair: bool
) -> None:
    """Our code is the one huaweicloudsdkcore reads, and so is the message of a full pair."""
    response = requests.Response()
    response.status_code, response._content = status, raw(content)
    with pytest.raises(ServiceResponseException) as sdk:
        DefaultExceptionHandler().handle_exception(None, response)
    ours = error_from_response(status, raw(content), httpx.Headers(), operation="op")
    assert ours.error_code == str(sdk.value.error_code)
    if pair:
        assert ours.error_msg == sdk.value.error_msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param({"errorCode": "DCS.4133", "errorMsg": "gone"}, MigrationTaskNotFound,
                     id="camel-case-not-found"),
        pytest.param({"code": "DCS.4975", "message": "busy"}, DcsBusyError, id="plain-busy"),
        pytest.param({"error": {"error_code": "DCS.4111"}}, DcsBusyError, id="nested-busy"),
    ],
)  # fmt: skip
def test_codes_in_any_shape_pick_the_class(content: object, expected: type[DcsApiError]) -> None:
    """A DCS code read from another shape drives the class: not-found and busy still show."""
    error = error_from_response(400, json.dumps(content).encode(), {}, operation="op")
    assert type(error) is expected


@pytest.mark.parametrize(
    ("headers", "content", "request_id"),
    [
        pytest.param({}, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication "
                      "information", "request_id": "gw-1"}, "gw-1", id="gateway-body"),
        pytest.param({}, {"error": {"code": "X.1", "message": "m", "request_id": "in-1"}},
                     "in-1", id="beside-a-nested-error"),
        pytest.param({}, {"detail": "?", "request_id": "top-1"}, "top-1", id="unknown-shape"),
        pytest.param({"X-Request-Id": "hdr-1"}, {"error_code": "A", "request_id": "gw-1"},
                     "hdr-1", id="header-wins"),
    ],
)  # fmt: skip
def test_request_id_in_the_body_is_used_when_no_header_names_one(
    headers: dict[str, str], content: object, request_id: str
) -> None:
    """The API gateway names the request in the body: the error (and its message) carry it."""
    raw = json.dumps(content).encode()
    error = error_from_response(401, raw, httpx.Headers(headers), operation="op")
    assert error.request_id == request_id
    assert f"(request {request_id})" in str(error)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(400, 599),
    content=st.binary(max_size=64)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from([*ERROR_KEYS, "error", "x"]), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)
def test_any_error_answer_has_a_code_and_a_short_message(status: int, content: bytes) -> None:
    """Whatever the body, the error has a code (the body's or the status) and a short text."""
    error = error_from_response(status, content, httpx.Headers(), operation="op")
    assert isinstance(error.error_code, str)
    assert error.error_code
    assert len(str(error)) < 1000


def test_long_service_text_is_truncated() -> None:
    """A huge error body does not become a huge exception message."""
    error = error_from_response(500, b"x" * 100_000, httpx.Headers(), operation="op")
    assert len(str(error)) < 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", None, id="http-date"),
        pytest.param("-1", None, id="negative"),
    ],
)
def test_retry_after_parsing(value: str, expected: float | None) -> None:
    """Retry-After in seconds is honoured; dates and nonsense are ignored, not fatal."""
    error = error_from_response(429, b"", httpx.Headers({"Retry-After": value}), operation="op")
    assert isinstance(error, DcsRateLimitedError)
    assert error.retry_after == expected


def test_every_error_pickles_with_its_attributes() -> None:
    """Prefect persists failed states by pickling: every error survives the round trip."""
    api = error_from_response(
        404, body("DCS.4133"), httpx.Headers({"X-Request-Id": "r"}), operation="op", task_id="t"
    )
    failed = MigrationFailed("failed", task=MigrationTask(task_id="t", status="FAILED"))
    timeout = MigrationTimeout("late", task_id="t", last_status="MIGRATING", timeout_seconds=5)
    held = CutoverGateTimeout(
        "held",
        task_id="t",
        last_offset=5120,
        last_source_dbsize="n/a",
        last_target_dbsize=None,
        waited_seconds=1800.0,
        reason="offset 5120 > max_offset 0",
    )
    for error in (api, failed, timeout, held, DcsValidationError("bad")):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert vars(clone) == vars(error)


def test_the_docstring_draws_every_exception_class() -> None:
    """The tree in the module docstring names every exception class the module defines."""
    classes = {
        name
        for name, value in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(value, DcsError)
    }
    doc = errors_module.__doc__ or ""
    assert {name for name in classes if name not in doc} == set()


def test_validation_error_is_also_a_value_error() -> None:
    """Code that catches ValueError for bad input catches ours too."""
    assert issubclass(DcsValidationError, ValueError)
