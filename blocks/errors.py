"""One exception tree for everything that can go wrong between Prefect and DCS.

```
DcsError                          catch this to catch all of them
├── DcsValidationError            a value was refused before any request (also a ValueError)
├── DcsTransportError             no HTTP answer: connect error, timeout, dropped connection
├── DcsApiError                   an HTTP answer that is not the documented success
│   ├── DcsAuthError              401 / 403, and IAM refusing to issue a token
│   ├── DcsNotFoundError          404
│   │   └── MigrationTaskNotFound DCS.4133: the task does not exist (or was deleted)
│   ├── DcsRateLimitedError       429, with `retry_after` when the service sent one
│   ├── DcsBusyError              a DCS "busy, try later" code (DCS.4026, DCS.4111-4121, ...)
│   ├── DcsServerError            5xx, including a gateway's HTML error page
│   └── DcsUnexpectedResponse     a 2xx whose body is not the documented JSON
├── MigrationError                the migration itself went wrong (raised by the watcher)
│   ├── MigrationFailed           the task reached a failure status; `.task` is the last
│   │                             task seen, passwords masked
│   ├── MigrationTimeout          the watch deadline passed; `.last_status` is the last seen
│   └── MigrationUnreachable      the task could not be read for too many polls in a row
├── CutoverError                  the cutover did not happen as asked
│   ├── CutoverFailed             the IP exchange or cutover deployment ended badly or late
│   ├── CutoverAlreadyRequested   refused: this cutover was requested before (force=True)
│   └── CutoverRejected           a person rejected the cutover at the approval step
└── NotificationError             a notification could not be sent (strict mode only)
```

Every `DcsApiError` carries `status_code`, `error_code`, `error_msg`, `request_id`,
`operation` and `task_id`, and its message names the operation and the task. `transient`
says whether trying again later may succeed: the client retries those by itself, the
watcher keeps watching through them.

All errors pickle and unpickle with their attributes, so Prefect can persist a failed
state. None of them ever holds a secret: the service's own text is kept, truncated, and
tasks are kept only as masked models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blocks.models import MigrationTask

_MAX_SERVICE_TEXT = 300
#: DCS codes look like "DCS.4133": anything much longer is not one, and is cut.
_MAX_CODE = 64

#: DCS codes that mean "busy, try again later" (from DCS's error-code table).
BUSY_ERROR_CODES = frozenset(
    {"DCS.4026", "DCS.4049", "DCS.4975", *(f"DCS.{n}" for n in range(4111, 4122))}
)
TASK_NOT_FOUND_CODE = "DCS.4133"


def _rebuild(cls: type[DcsError], args: tuple[Any, ...], state: dict[str, Any]) -> DcsError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DcsError(Exception):
    """The root of every error this package raises."""

    #: Whether the same call may succeed if tried again later.
    transient: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class DcsValidationError(DcsError, ValueError):
    """A value was refused before any request was sent (a task id with `/`, a bad limit)."""


class DcsTransportError(DcsError):
    """No HTTP answer came back: connection refused or dropped, or a timeout."""

    transient = True

    def __init__(self, message: str, *, operation: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.task_id = task_id


class DcsApiError(DcsError):
    """The service (or a gateway in front of it) answered with something other than success."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        operation: str,
        task_id: str | None = None,
        project_id: str | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.operation = operation
        self.task_id = task_id
        self.project_id = project_id
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id


class DcsAuthError(DcsApiError):
    """The credentials were refused (401) or lack a permission (403)."""


class DcsNotFoundError(DcsApiError):
    """The resource does not exist (404)."""


class MigrationTaskNotFound(DcsNotFoundError):
    """The migration task does not exist in this project, or was deleted (DCS.4133)."""


class DcsRateLimitedError(DcsApiError):
    """Too many requests (429); `retry_after` is the wait the service asked for, if any."""

    transient = True
    retry_after: float | None = None


class DcsBusyError(DcsApiError):
    """DCS is busy with another operation on the instance; the same call may succeed later."""

    transient = True


class DcsServerError(DcsApiError):
    """A 5xx from the service or a gateway in front of it."""

    transient = True


class DcsUnexpectedResponse(DcsApiError):
    """A 2xx answer whose body is not the documented JSON."""


class MigrationError(DcsError):
    """The migration task itself did not end as hoped."""


class MigrationFailed(MigrationError):
    """The task reached a failure status; `task` is the last task seen (passwords masked)."""

    def __init__(self, message: str, *, task: MigrationTask) -> None:
        super().__init__(message)
        self.task = task


class MigrationTimeout(MigrationError):
    """The watch deadline passed; `last_status` is the last status seen (None if none)."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        last_status: str | None,
        timeout_seconds: float,
        last_task: MigrationTask | None = None,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.last_status = last_status
        self.timeout_seconds = timeout_seconds
        self.last_task = last_task


class MigrationUnreachable(MigrationError):
    """Too many polls in a row failed with transient errors; `last_error` says the last."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        last_status: str | None,
        consecutive_errors: int,
        last_error: str,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.last_status = last_status
        self.consecutive_errors = consecutive_errors
        self.last_error = last_error


class CutoverError(DcsError):
    """The cutover did not happen as asked."""


class CutoverFailed(CutoverError):
    """The IP exchange (or rollback, or cutover deployment) ended badly, or not in time."""


class CutoverAlreadyRequested(CutoverError):
    """Refused: this cutover was already requested for the task; pass force=True to repeat."""


class CutoverRejected(CutoverError):
    """A person rejected the cutover at the runbook's approval step."""


class NotificationError(DcsError):
    """A notification could not be sent (raised only when notifications are strict)."""


def service_text(body: bytes) -> str:
    """A short, single-line excerpt of a body that is not the documented JSON."""
    text = body.decode("utf-8", errors="replace")
    text = re.sub(r"<[^>]*>", " ", text)  # a gateway's HTML page: keep its words
    text = " ".join(text.split())
    if len(text) > _MAX_SERVICE_TEXT:
        text = text[:_MAX_SERVICE_TEXT] + "..."
    return text or "(empty body)"


def _parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """(error_code, error_msg) from a DCS error body, or (None, excerpt) if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
        return None, service_text(body)
    if not isinstance(data, Mapping):
        return None, service_text(body)
    # Some gateways wrap the error one level down: {"error": {"code": ..., "message": ...}}.
    inner = data.get("error")
    if isinstance(inner, Mapping) and "error_code" not in data:
        data = {"error_code": inner.get("code"), "error_msg": inner.get("message")}
    code = data.get("error_code")
    msg = data.get("error_msg")
    code_text = str(code)[:_MAX_CODE] if code is not None else None
    msg_text = service_text(str(msg).encode()) if msg is not None else None
    return code_text, msg_text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header holding delta-seconds; None when absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_class(status_code: int, error_code: str | None) -> type[DcsApiError]:
    if error_code == TASK_NOT_FOUND_CODE:
        return MigrationTaskNotFound
    if error_code in BUSY_ERROR_CODES:
        return DcsBusyError
    if status_code in (401, 403):
        return DcsAuthError
    if status_code == 404:
        return DcsNotFoundError
    if status_code == 429:
        return DcsRateLimitedError
    if status_code >= 500:
        return DcsServerError
    if 200 <= status_code < 300:
        return DcsUnexpectedResponse
    return DcsApiError


def _subject(operation: str, task_id: str | None, project_id: str | None) -> str:
    parts = [operation]
    if task_id is not None:
        parts.append(f"for migration task {task_id!r}")
    if project_id is not None:
        parts.append(f"in project {project_id!r}")
    return " ".join(parts)


def error_from_response(
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    operation: str,
    task_id: str | None = None,
    project_id: str | None = None,
) -> DcsApiError:
    """The one place that maps an HTTP answer to the error class that describes it."""
    error_code, error_msg = _parse_error_body(body)
    request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
    cls = _error_class(status_code, error_code)
    if cls is MigrationTaskNotFound:
        message = (
            f"migration task {task_id!r} not found in project {project_id!r} "
            f"({error_code}, request {request_id}) during {operation}"
        )
    else:
        code = f" {error_code}" if error_code else ""
        detail = f": {error_msg}" if error_msg else ""
        message = (
            f"{_subject(operation, task_id, project_id)} failed with HTTP {status_code}"
            f"{code}{detail} (request {request_id})"
        )
    error = cls(
        message,
        status_code=status_code,
        operation=operation,
        task_id=task_id,
        project_id=project_id,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
    )
    if isinstance(error, DcsRateLimitedError):
        error.retry_after = parse_retry_after(headers.get("retry-after"))
    return error


__all__ = [
    "BUSY_ERROR_CODES",
    "TASK_NOT_FOUND_CODE",
    "CutoverAlreadyRequested",
    "CutoverError",
    "CutoverFailed",
    "CutoverRejected",
    "DcsApiError",
    "DcsAuthError",
    "DcsBusyError",
    "DcsError",
    "DcsNotFoundError",
    "DcsRateLimitedError",
    "DcsServerError",
    "DcsTransportError",
    "DcsUnexpectedResponse",
    "DcsValidationError",
    "MigrationError",
    "MigrationFailed",
    "MigrationTaskNotFound",
    "MigrationTimeout",
    "MigrationUnreachable",
    "NotificationError",
    "error_from_response",
    "parse_retry_after",
    "service_text",
]
