"""The exception tree: one mapping from answers to classes, clear messages, safe pickling."""

from __future__ import annotations

import inspect
import json
import pickle

import httpx
import pytest

import blocks.errors as errors_module
from blocks.errors import (
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
    assert (error.status_code, error.error_code, error.request_id) == (status, code, "r-1")


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
    assert error.error_code is None
    assert error.error_msg == "502 Bad Gateway nginx"
    assert "show_migration_task failed with HTTP 502: 502 Bad Gateway nginx" in str(error)


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
    for error in (api, failed, timeout, DcsValidationError("bad")):
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
