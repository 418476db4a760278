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
│   ├── MigrationUnreachable      the task could not be read for too many polls in a row
│   ├── MigrationNotConfigured    the task stayed RUNNING (pending configuration) past the
│   │                             watch's `configure_grace_seconds`: nobody configured it
│   └── MigrationNotCreated       a create got no clear answer, and no task of its name is
│                                 listed: none was created, so running again is safe
├── CutoverError                  the cutover did not happen as asked
│   ├── CutoverFailed             the IP exchange or cutover deployment ended badly or late
│   ├── CutoverAlreadyRequested   refused: this cutover was requested before (force=True)
│   ├── CutoverRejected           a person rejected the cutover at the approval step
│   └── CutoverGateTimeout        held: the target did not catch up with the source in time
└── NotificationError             a notification could not be sent (strict mode only)
```

Every `DcsApiError` carries `status_code`, `error_code`, `error_msg`, `request_id`,
`operation` and `task_id`, and its message names the operation and the task. An error
answer's `error_code` is the code its body names, in any of the shapes Huawei's SDK reads,
or else its HTTP status ("502"). `transient` says whether trying again later may succeed:
the client retries those by itself, the watcher keeps watching through them.

All errors pickle and unpickle with their attributes, so Prefect can persist a failed
state. None of them ever holds a secret: the service's own text is kept, truncated, and
tasks are kept only as masked models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
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

    def __init__(
        self, message: str, *, operation: str, task_id: str | None = None, transient: bool = True
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.task_id = task_id
        # False for a request that could not be sent as it is: it fails the same way again.
        self.transient = transient


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


class MigrationNotConfigured(MigrationError):
    """The task is still `RUNNING` ("pending configuration") past the grace the watch gives.

    A task created online waits in RUNNING until `set_online_migration_task` (or the DCS
    console) configures it; without this, a watch would wait for it until its deadline
    without saying why. `waited_seconds` is how long the watch had seen it so, `last_task`
    the last read (passwords masked).
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        grace_seconds: float,
        waited_seconds: float,
        last_task: MigrationTask | None = None,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.grace_seconds = grace_seconds
        self.waited_seconds = waited_seconds
        self.last_task = last_task


class MigrationNotCreated(MigrationError):
    """A create request got no clear answer (no answer, a 5xx), and the task it would have
    made is not listed: nothing was left behind, and a new run may create it.

    `cause` is the text of the error the create request ended with.
    """

    transient = True

    def __init__(self, message: str, *, task_name: str, cause: str) -> None:
        super().__init__(message)
        self.task_name = task_name
        self.cause = cause


class CutoverError(DcsError):
    """The cutover did not happen as asked."""


class CutoverFailed(CutoverError):
    """The IP exchange (or rollback, or cutover deployment) ended badly, or not in time."""


class CutoverAlreadyRequested(CutoverError):
    """Refused: this cutover was already requested for the task; pass force=True to repeat."""


class CutoverRejected(CutoverError):
    """A person rejected the cutover at the runbook's approval step."""


class CutoverGateTimeout(CutoverError):
    """The catch-up gate held the cutover: the target did not stay caught up in time.

    `last_offset`, `last_source_dbsize` and `last_target_dbsize` are the last figures read
    (None when never read; the text DCS sent when it was no number), `waited_seconds` how
    long the gate waited, and `reason` why its last read did not pass.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        last_offset: int | str | None,
        last_source_dbsize: int | str | None,
        last_target_dbsize: int | str | None,
        waited_seconds: float,
        reason: str,
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.last_offset = last_offset
        self.last_source_dbsize = last_source_dbsize
        self.last_target_dbsize = last_target_dbsize
        self.waited_seconds = waited_seconds
        self.reason = reason


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


#: The (code, message) keys of an error body, in the order the official SDK tries them
#: (huaweicloudsdkcore 3.1.219, exceptions/exception_handler.py,
#: `DefaultExceptionHandler._process_sdk_error`): DCS and the API gateway send the first,
#: other Huawei services the camelCase or the plain pair. Like the SDK, when the top level
#: has none of them, the objects inside it are searched: {"error": {"code": ..., ...}}.
_ERROR_KEYS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))
#: How many levels of nested objects to search (the SDK has no limit; a body might).
_MAX_ERROR_DEPTH = 3
#: The API gateway names the request in the body (`request_id`), not only in a header.
_REQUEST_ID_KEY = "request_id"


@dataclass(frozen=True)
class _ErrorBody:
    """What an error body says; `code` is None when it names no code."""

    code: str | None
    msg: str | None
    request_id: str | None


def _given(value: object) -> bool:
    return value is not None and value != ""


def _short(value: object, limit: int) -> str | None:
    return str(value)[:limit] if _given(value) else None


def _find_error(data: Mapping[str, Any]) -> tuple[object, object, Mapping[str, Any]] | None:
    """(code, message, the object holding them) of the shallowest error found, if any."""
    level = [data]
    for _ in range(_MAX_ERROR_DEPTH):
        for obj in level:
            for code_key, msg_key in _ERROR_KEYS:
                code, msg = obj.get(code_key), obj.get(msg_key)
                if _given(code) or _given(msg):
                    return code, msg, obj
        level = [value for obj in level for value in obj.values() if isinstance(value, Mapping)]
    return None


def _parse_error_body(body: bytes) -> _ErrorBody:
    """What a DCS (or gateway) error body says; any body at all, never an exception."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
        return _ErrorBody(None, service_text(body), None)
    if not isinstance(data, Mapping):
        return _ErrorBody(None, service_text(body), None)
    request_id = data.get(_REQUEST_ID_KEY)
    found = _find_error(data)
    if found is None:  # JSON, but no error we know: its text is the best message there is
        return _ErrorBody(None, service_text(body), _short(request_id, _MAX_CODE))
    code, msg, holder = found
    if not _given(request_id):
        request_id = holder.get(_REQUEST_ID_KEY)
    return _ErrorBody(
        _short(code, _MAX_CODE),
        service_text(str(msg).encode()) if _given(msg) else None,
        _short(request_id, _MAX_CODE),
    )


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
    parsed = _parse_error_body(body)
    # The header first, as the SDK reads it; the gateway puts it in the body too.
    request_id = headers.get("x-request-id") or headers.get("X-Request-Id") or parsed.request_id
    cls = _error_class(status_code, parsed.code)
    if cls is MigrationTaskNotFound and task_id is not None:
        message = (
            f"migration task {task_id!r} not found in project {project_id!r} "
            f"({parsed.code}, request {request_id}) during {operation}"
        )
    elif cls is MigrationTaskNotFound:
        # A call naming several tasks (a delete, a batch): only DCS's words say which one.
        detail = f": {parsed.msg}" if parsed.msg else ""
        message = (
            f"a migration task the request names was not found in project {project_id!r} "
            f"({parsed.code}, request {request_id}) during {operation}{detail}"
        )
    else:
        code = f" {parsed.code}" if parsed.code else ""
        detail = f": {parsed.msg}" if parsed.msg else ""
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
        # Without a code in the body, the HTTP status is the code (as in the SDK): an
        # error answer always has one to match on.
        error_code=parsed.code or str(status_code),
        error_msg=parsed.msg,
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
    "CutoverGateTimeout",
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
    "MigrationNotConfigured",
    "MigrationNotCreated",
    "MigrationTaskNotFound",
    "MigrationTimeout",
    "MigrationUnreachable",
    "NotificationError",
    "error_from_response",
    "parse_retry_after",
    "service_text",
]
