"""`DcsClient` and `AsyncDcsClient`: typed access to the DCS migration-task API over httpx.

`_BaseDcsClient` holds everything that does no I/O: building each request, deciding on
retries, turning answers into models or errors. The two clients add only sending and
sleeping, so they cannot drift apart.

>>> import httpx
>>> from pydantic import SecretStr
>>> from blocks.auth import TokenAuth
>>> def dcs(request: httpx.Request) -> httpx.Response:
...     return httpx.Response(200, json={"task_id": "a276c1ff", "status": "INCRMIGEATING"})
>>> with DcsClient(
...     "https://dcs.example.test", "0605767f", TokenAuth(SecretStr("t")),
...     transport=httpx.MockTransport(dcs),
... ) as client:
...     task = client.show_migration_task("a276c1ff")
>>> task.status.value, task.ready_for_cutover
('INCRMIGRATING', True)
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from blocks._version import __version__
from blocks.endpoint import check_endpoint
from blocks.errors import (
    DcsApiError,
    DcsError,
    DcsRateLimitedError,
    DcsTransportError,
    DcsUnexpectedResponse,
    DcsValidationError,
    error_from_response,
    service_text,
)
from blocks.models import (
    DcsModel,
    DeletedMigrationTasks,
    MigrationTask,
    MigrationTaskAccepted,
    MigrationTaskActionResults,
    MigrationTaskList,
    MigrationTaskLogs,
    MigrationTaskStats,
    MigrationTaskSummary,
    OnlineMigrationTaskCreated,
)
from blocks.redaction import scrub
from blocks.requests import (
    BackupFile,
    ConfigureOnlineMigration,
    CreateBackupImport,
    CreateOnlineMigration,
    DeleteTasks,
    MigrationMethod,
    RedisEndpoint,
    RestartTasks,
    ResumeMode,
    StopTasks,
    parse_request,
)
from blocks.retry import (
    OnRetry,
    RetryNotice,
    RetryPolicy,
    describe_cause,
    log_retry,
    should_retry,
)
from blocks.tls import httpx_verify

USER_AGENT = f"prefect-dcs-migration/{__version__} httpx/{httpx.__version__}"
DEFAULT_TIMEOUT_SECONDS = 30.0
#: The largest page DCS serves on its list endpoints.
MAX_PAGE_SIZE = 1000

_M = TypeVar("_M", bound=DcsModel)
_Self = TypeVar("_Self", bound="_BaseDcsClient")

# Printable ASCII without space, `/`, `\`, `?`, `#` and `%`: real DCS ids are hex or UUIDs,
# and anything else in a path segment is either a mistake or an attempt to reach another URL.
_ID_PATTERN = re.compile(r"[!-~]{1,128}")
_ID_FORBIDDEN = re.compile(r"[/\\?#%]")


def validate_path_parameter(name: str, value: object) -> str:
    """`value` percent-encoded for a URL path, or a `DcsValidationError` naming what is wrong."""
    if not isinstance(value, str):
        msg = f"{name} must be a string, got {type(value).__name__} {value!r}"
        raise DcsValidationError(msg)
    problem = None
    if not value:
        problem = "it is empty"
    elif len(value) > 128:
        problem = f"it is {len(value)} characters long (at most 128)"
    elif not _ID_PATTERN.fullmatch(value):
        problem = "it contains spaces, control or non-ASCII characters"
    elif match := _ID_FORBIDDEN.search(value):
        problem = f"it contains {match.group()!r}"
    elif ".." in value or value == ".":
        problem = "it contains '..' or is '.'"
    if problem:
        msg = (
            f"{name} {value!r} is not a valid DCS identifier: {problem}; "
            f"copy the id exactly as the DCS console or API shows it"
        )
        raise DcsValidationError(msg)
    return quote(value, safe="")


def _validate_page(offset: int, limit: int) -> None:
    if offset < 0:
        msg = f"offset must be 0 or more, got {offset}"
        raise DcsValidationError(msg)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        msg = f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
        raise DcsValidationError(msg)


@dataclass(frozen=True)
class _Call(Generic[_M]):
    """One API operation, ready to send: what to send, how to read the answer."""

    operation: str
    method: str
    path: str
    model: type[_M] | None
    idempotent: bool
    task_id: str | None = None
    params: dict[str, str | int] | None = None
    # The body may hold Redis passwords in plain text: never in a repr, a log or an error.
    body: dict[str, Any] | None = field(default=None, repr=False)
    #: Values to cut out of any error text about this call (the passwords it sends).
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass
class _Attempt:
    """The retry state of one call in progress."""

    call: _Call[Any]
    started: float
    number: int = 1


class _Paging:
    """Where the next page of a listing starts, and whether the listing is done.

    The one paging rule of both clients (`is_last_page`); they add only the requests.
    """

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.offset = 0
        self.done = False

    def take(self, page: MigrationTaskList) -> MigrationTaskList:
        """Account for `page`, just read at `offset`; the same page back."""
        self.offset += len(page.migration_tasks)
        self.done = is_last_page(page, self.offset, self.page_size)
        return page


class _BaseDcsClient:
    """Request building, retry decisions and response parsing, shared by both clients."""

    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: httpx.Auth,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_passwords: bool = False,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.endpoint = check_endpoint("endpoint", endpoint)
        self.project_id = project_id
        self._project_segment = validate_path_parameter("project_id", project_id)
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._keep_passwords = keep_passwords
        self._on_retry = on_retry or log_retry

    def _client_options(
        self, timeout: float, verify: bool | str | ssl.SSLContext, transport: Any
    ) -> dict[str, Any]:
        return {
            "base_url": self.endpoint,
            "auth": self.auth,
            "timeout": timeout,
            "verify": httpx_verify(verify),
            "transport": transport,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
        }

    # -- building calls: one per operation, shared by both clients --------------------

    def _task_path(self, task_id: str, suffix: str = "") -> str:
        task_segment = validate_path_parameter("task_id", task_id)
        return f"/v2/{self._project_segment}/migration-task/{task_segment}{suffix}"

    def _show_call(self, task_id: str) -> _Call[MigrationTask]:
        return _Call(
            "show_migration_task",
            "GET",
            self._task_path(task_id),
            MigrationTask,
            idempotent=True,
            task_id=task_id,
        )

    def _stats_call(self, task_id: str) -> _Call[MigrationTaskStats]:
        return _Call(
            "show_migration_task_stats",
            "GET",
            self._task_path(task_id, "/stats"),
            MigrationTaskStats,
            idempotent=True,
            task_id=task_id,
        )

    def _list_call(self, offset: int, limit: int, name: str | None) -> _Call[MigrationTaskList]:
        _validate_page(offset, limit)
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if name is not None:
            params["name"] = name
        return _Call(
            "list_migration_tasks",
            "GET",
            f"/v2/{self._project_segment}/migration-tasks",
            MigrationTaskList,
            idempotent=True,
            params=params,
        )

    def _logs_call(
        self, task_id: str, offset: int, limit: int, log_level: str | None
    ) -> _Call[MigrationTaskLogs]:
        _validate_page(offset, limit)
        params: dict[str, str | int] = {"offset": offset, "limit": limit}
        if log_level is not None:
            params["log_level"] = log_level
        return _Call(
            "list_migration_task_logs",
            "GET",
            self._task_path(task_id, "/logs"),
            MigrationTaskLogs,
            idempotent=True,
            task_id=task_id,
            params=params,
        )

    def _stop_call(self, task_id: str) -> _Call[MigrationTask]:
        # Stopping is idempotent in effect: a task that is already stopping or stopped
        # stays so, so a retry after an ambiguous failure cannot do harm.
        return _Call(
            "stop_migration_task",
            "POST",
            self._task_path(task_id, "/stop"),
            MigrationTask,
            idempotent=True,
            task_id=task_id,
        )

    def _exchange_call(
        self, task_id: str, exchanged_ip: list[str] | None, is_exchange_domain: bool | None
    ) -> _Call[DcsModel]:
        body: dict[str, Any] = {}
        if exchanged_ip is not None:
            body["exchanged_ip"] = list(exchanged_ip)
        if is_exchange_domain is not None:
            body["is_exchange_domain"] = is_exchange_domain
        # Not idempotent: a second exchange swaps the addresses back.
        return _Call(
            "exchange_instance_ip",
            "POST",
            self._task_path(task_id, "/exchange-ip"),
            None,
            idempotent=False,
            task_id=task_id,
            body=body,
        )

    def _rollback_call(self, task_id: str) -> _Call[DcsModel]:
        # Not idempotent: what a second rollback does after a first one succeeded is not
        # documented, so it is never sent twice by accident.
        return _Call(
            "rollback_exchange_instance_ip",
            "POST",
            self._task_path(task_id, "/rollback-ip"),
            None,
            idempotent=False,
            task_id=task_id,
        )

    # -- calls that create, configure, stop and delete tasks -------------------------
    # A create is never sent twice by accident: after an ambiguous failure (a timeout, a
    # 5xx) it may have created a task, and a second one would be a duplicate migration.

    def _create_online_call(self, **values: Any) -> _Call[OnlineMigrationTaskCreated]:
        request = parse_request(CreateOnlineMigration, "create_online_migration_task", **values)
        return _Call(
            "create_online_migration_task",
            "POST",
            f"/v2/{self._project_segment}/migration/instance",
            OnlineMigrationTaskCreated,
            idempotent=False,
            body=request.wire(),
        )

    def _configure_online_call(self, task_id: str, **values: Any) -> _Call[MigrationTaskAccepted]:
        operation = "set_online_migration_task"
        request = parse_request(ConfigureOnlineMigration, operation, **values)
        task_segment = validate_path_parameter("task_id", task_id)
        # Not idempotent: once configured, the task starts migrating; what a second
        # configuration does then is not documented.
        return _Call(
            operation,
            "POST",
            f"/v2/{self._project_segment}/migration/{task_segment}/task",
            MigrationTaskAccepted,
            idempotent=False,
            task_id=task_id,
            body=request.wire(),
            secrets=request.secrets(),
        )

    def _create_import_call(self, **values: Any) -> _Call[MigrationTaskAccepted]:
        request = parse_request(CreateBackupImport, "create_migration_task", **values)
        return _Call(
            "create_migration_task",
            "POST",
            f"/v2/{self._project_segment}/migration-task",
            MigrationTaskAccepted,
            idempotent=False,
            body=request.wire(),
            secrets=request.secrets(),
        )

    def _sync_stop_call(self, task_id: str) -> _Call[DcsModel]:
        # Like stop: a stopped task stays stopped, so a retry cannot do harm.
        return _Call(
            "stop_migration_task_sync",
            "POST",
            self._task_path(task_id, "/sync-stop"),
            None,
            idempotent=True,
            task_id=task_id,
        )

    def _delete_call(self, task_ids: Any) -> _Call[DeletedMigrationTasks]:
        request = parse_request(DeleteTasks, "delete_migration_task", task_id_list=task_ids)
        # Deleting twice leaves the same: deleted (a retry may then read DCS.4133).
        return _Call(
            "delete_migration_task",
            "DELETE",
            f"/v2/{self._project_segment}/migration-tasks/delete",
            DeletedMigrationTasks,
            idempotent=True,
            body=request.wire(),
        )

    def _batch_stop_call(self, task_ids: Any) -> _Call[MigrationTaskActionResults]:
        operation = "batch_stop_migration_tasks"
        request = parse_request(StopTasks, operation, migration_tasks=task_ids)
        return _Call(
            operation,
            "POST",
            f"/v2/{self._project_segment}/migration-task/batch-stop",
            MigrationTaskActionResults,
            idempotent=True,
            body=request.wire(),
        )

    def _batch_restart_call(self, task_ids: Any) -> _Call[MigrationTaskActionResults]:
        operation = "batch_restart_online_migration_tasks"
        request = parse_request(RestartTasks, operation, migration_tasks=task_ids)
        # Not idempotent: a restart may begin a full synchronisation again.
        return _Call(
            operation,
            "POST",
            f"/v2/{self._project_segment}/migration-tasks/batch-restart",
            MigrationTaskActionResults,
            idempotent=False,
            body=request.wire(),
        )

    # -- deciding and parsing: no I/O ------------------------------------------------

    def _build_request(self, client: httpx.Client | httpx.AsyncClient, call: _Call[Any]) -> Any:
        content = None if call.body is None else json.dumps(call.body).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        return client.build_request(
            call.method, call.path, params=call.params, content=content, headers=headers
        )

    def _next_delay(self, attempt: _Attempt, error: DcsApiError | httpx.RequestError) -> float:
        """Seconds to wait before the next attempt (announced to `on_retry`), or -1 to give up."""
        if attempt.number >= self.retry.max_attempts:
            return -1
        if not should_retry(error, idempotent=attempt.call.idempotent):
            return -1
        retry_after = error.retry_after if isinstance(error, DcsRateLimitedError) else None
        delay = self.retry.backoff(attempt.number, retry_after)
        elapsed = self._clock() - attempt.started
        if elapsed + delay > self.retry.max_elapsed_seconds:
            return -1
        call = attempt.call
        self._on_retry(
            RetryNotice(
                call.operation,
                call.method,
                call.path,
                attempt.number,
                self.retry.max_attempts,
                delay,
                describe_cause(error),
            )
        )
        return delay

    def _transport_error(self, attempt: _Attempt, error: httpx.RequestError) -> DcsTransportError:
        call = attempt.call
        subject = (
            f"{call.operation} for migration task {call.task_id!r}"
            if call.task_id
            else (call.operation)
        )
        if isinstance(error, httpx.LocalProtocolError):
            # Its text quotes the offending header, which may be a credential.
            msg = (
                f"{subject} in project {self.project_id!r} could not be sent: a header is not "
                f"valid HTTP (a credential with a line break?)"
            )
            return DcsTransportError(
                msg, operation=call.operation, task_id=call.task_id, transient=False
            )
        # The host that did not answer: DCS, or IAM while fetching a token.
        host = error.request.url.host if _has_request(error) else self.endpoint
        msg = (
            f"{subject} in project {self.project_id!r} got no answer from {host} "
            f"after {attempt.number} attempt(s): {type(error).__name__}: {error}"
        )
        return DcsTransportError(msg, operation=call.operation, task_id=call.task_id)

    def _read(self, call: _Call[_M], response: httpx.Response) -> _M | None:
        """The model of a successful answer, or the `DcsApiError` that describes a failure."""
        if not response.is_success:
            error = error_from_response(
                response.status_code,
                response.content,
                response.headers,
                operation=call.operation,
                task_id=call.task_id,
                project_id=self.project_id,
            )
            raise _without_secrets(error, call.secrets)
        if call.model is None:
            return None
        try:
            data = json.loads(response.content)
            model = call.model.model_validate(data)
            # Every model masks secret-looking fields too (a field DCS may add later).
            return model if self._keep_passwords else model.masked()
        except RecursionError:
            problem = "a body nested too deeply to read"
            raise self._unexpected(call, response, problem) from None
        except ValidationError as exc:
            # Only locations and messages: the input may hold a password.
            details = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors(include_input=False, include_url=False)[:5]
            )
            raise self._unexpected(
                call, response, f"a body DCS does not document: {details}"
            ) from None
        except ValueError:
            problem = f"a body that is not JSON: {service_text(response.content)}"
            raise _without_secrets(
                self._unexpected(call, response, problem), call.secrets
            ) from None

    def _unexpected(
        self, call: _Call[Any], response: httpx.Response, problem: str
    ) -> DcsUnexpectedResponse:
        subject = (
            f"{call.operation} for migration task {call.task_id!r}"
            if call.task_id
            else (call.operation)
        )
        msg = (
            f"{subject} in project {self.project_id!r} got HTTP {response.status_code} with "
            f"{problem} (request {response.headers.get('x-request-id')})"
        )
        return DcsUnexpectedResponse(
            msg,
            status_code=response.status_code,
            operation=call.operation,
            task_id=call.task_id,
            project_id=self.project_id,
            request_id=response.headers.get("x-request-id"),
        )


def _without_secrets(error: DcsApiError, secrets: tuple[str, ...]) -> DcsApiError:
    """`error` with the call's passwords cut out of its text, should the service quote one."""
    if secrets:
        error.args = tuple(
            scrub(arg, set(secrets)) if isinstance(arg, str) else arg for arg in error.args
        )
        if error.error_msg is not None:
            error.error_msg = scrub(error.error_msg, set(secrets))
    return error


def _has_request(error: httpx.RequestError) -> bool:
    try:
        error.request  # noqa: B018 - httpx raises when the error has no request
    except RuntimeError:
        return False
    return True


def _expect(value: _M | None) -> _M:
    if value is None:  # pragma: no cover - only calls without a model return None
        msg = "no body was parsed for a call that has a model"
        raise DcsError(msg)
    return value


class DcsClient(_BaseDcsClient):
    """Synchronous client. Use as a context manager, or call `close()`.

    Retries connect errors, timeouts, 429 (honouring `Retry-After`), 5xx and DCS busy codes
    with capped, jittered exponential backoff (see `RetryPolicy`). Of the POSTs, only
    `stop_migration_task` is retried after an ambiguous failure (stopping twice is
    harmless); `exchange_instance_ip` and `rollback_exchange_instance_ip` are retried only
    when the request certainly did not act (it never left this machine, or DCS answered
    429 or busy), since a second IP exchange would swap the addresses back.
    Each retry is logged on the `blocks.retry` logger at DEBUG (operation, path, attempt n
    of max, the wait, the cause) or, when given, handed to `on_retry` instead.
    Passwords in returned tasks are masked unless `keep_passwords=True`.
    """

    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: httpx.Auth,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        keep_passwords: bool = False,
        on_retry: OnRetry | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            project_id,
            auth,
            retry=retry,
            clock=clock,
            keep_passwords=keep_passwords,
            on_retry=on_retry,
        )
        self._sleep = sleep
        self._http = httpx.Client(**self._client_options(timeout, verify, transport))

    def __enter__(self) -> DcsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _execute(self, call: _Call[_M]) -> _M | None:
        attempt = _Attempt(call, self._clock())
        while True:
            try:
                response = self._http.send(self._build_request(self._http, call))
                return self._read(call, response)
            except (httpx.RequestError, DcsApiError) as exc:
                delay = self._next_delay(attempt, exc)
                if delay < 0:
                    if isinstance(exc, httpx.RequestError):
                        raise self._transport_error(attempt, exc) from exc
                    raise
            self._sleep(delay)
            attempt.number += 1

    def show_migration_task(self, task_id: str) -> MigrationTask:
        """`GET /v2/{project_id}/migration-task/{task_id}`: the task's details."""
        return _expect(self._execute(self._show_call(task_id)))

    def show_migration_task_stats(self, task_id: str) -> MigrationTaskStats:
        """`GET .../migration-task/{task_id}/stats`: progress of a full migration."""
        return _expect(self._execute(self._stats_call(task_id)))

    def list_migration_tasks(
        self, *, offset: int = 0, limit: int = 100, name: str | None = None
    ) -> MigrationTaskList:
        """`GET /v2/{project_id}/migration-tasks`: one page of the project's tasks."""
        return _expect(self._execute(self._list_call(offset, limit, name)))

    def iter_migration_task_pages(
        self,
        *,
        name: str | None = None,
        page_size: int = 100,
        pace: Callable[[], None] | None = None,
    ) -> Iterator[MigrationTaskList]:
        """Every page of the project's tasks (optionally matching `name`), a request each.

        `pace`, when given, is called before each request: a rate limit shared with other
        calls.
        """
        paging = _Paging(page_size)
        while not paging.done:
            if pace is not None:
                pace()
            yield paging.take(
                self.list_migration_tasks(offset=paging.offset, limit=page_size, name=name)
            )

    def iter_migration_tasks(
        self, *, name: str | None = None, page_size: int = 100
    ) -> Iterator[MigrationTaskSummary]:
        """Every task of the project (optionally matching `name`), one page per request."""
        for page in self.iter_migration_task_pages(name=name, page_size=page_size):
            yield from page.migration_tasks

    def list_migration_task_logs(
        self, task_id: str, *, offset: int = 0, limit: int = 10, log_level: str | None = None
    ) -> MigrationTaskLogs:
        """`GET .../migration-task/{task_id}/logs`: one page of the task's log."""
        return _expect(self._execute(self._logs_call(task_id, offset, limit, log_level)))

    def stop_migration_task(self, task_id: str) -> MigrationTask:
        """`POST .../migration-task/{task_id}/stop`: stop the migration (safe to retry)."""
        return _expect(self._execute(self._stop_call(task_id)))

    def exchange_instance_ip(
        self,
        task_id: str,
        *,
        exchanged_ip: list[str] | None = None,
        is_exchange_domain: bool | None = None,
    ) -> None:
        """`POST .../exchange-ip`: swap source and target addresses (sent at most once)."""
        self._execute(self._exchange_call(task_id, exchanged_ip, is_exchange_domain))

    def rollback_exchange_instance_ip(self, task_id: str) -> None:
        """`POST .../rollback-ip`: undo an IP exchange (sent at most once)."""
        self._execute(self._rollback_call(task_id))

    def create_online_migration_task(
        self,
        name: str,
        *,
        vpc_id: str,
        subnet_id: str,
        security_group_id: str,
        description: str | None = None,
    ) -> OnlineMigrationTaskCreated:
        """`POST /v2/{project_id}/migration/instance`: a new online migration task, in RUNNING
        until `set_online_migration_task` configures it (sent at most once)."""
        call = self._create_online_call(
            name=name,
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            security_group_id=security_group_id,
            description=description,
        )
        return _expect(self._execute(call))

    def set_online_migration_task(
        self,
        task_id: str,
        *,
        migration_method: MigrationMethod | str,
        resume_mode: ResumeMode | str,
        source_instance: RedisEndpoint | Mapping[str, Any],
        target_instance: RedisEndpoint | Mapping[str, Any],
        bandwidth_limit_mb: int | None = None,
    ) -> MigrationTaskAccepted:
        """`POST /v2/{project_id}/migration/{task_id}/task`: configure a created online task;
        it starts migrating (sent at most once).

        `migration_method` is "full" or "incremental" (full, then incremental sync);
        `resume_mode` "auto" or "manual"; each instance by `id` (a DCS instance) or by
        `addrs` ("host:port"), with its `password` if it has one.
        """
        call = self._configure_online_call(
            task_id,
            migration_method=migration_method,
            resume_mode=resume_mode,
            bandwidth_limit_mb=bandwidth_limit_mb,
            source_instance=source_instance,
            target_instance=target_instance,
        )
        return _expect(self._execute(call))

    def create_migration_task(
        self,
        task_name: str,
        *,
        target_instance: RedisEndpoint | Mapping[str, Any],
        bucket_name: str | None = None,
        files: Sequence[BackupFile | Mapping[str, Any] | str] | None = None,
        backup_id: str | None = None,
        description: str | None = None,
    ) -> MigrationTaskAccepted:
        """`POST /v2/{project_id}/migration-task`: import backup files into the DCS instance
        `target_instance` (by id), from `files` in the OBS bucket `bucket_name` or from the
        backup record `backup_id` (sent at most once)."""
        call = self._create_import_call(
            task_name=task_name,
            description=description,
            target_instance=target_instance,
            bucket_name=bucket_name,
            files=files,
            backup_id=backup_id,
        )
        return _expect(self._execute(call))

    def stop_migration_task_sync(self, task_id: str) -> None:
        """`POST .../migration-task/{task_id}/sync-stop`: stop the task and wait for it to
        stop (safe to retry)."""
        self._execute(self._sync_stop_call(task_id))

    def delete_migration_task(self, task_ids: Sequence[str]) -> DeletedMigrationTasks:
        """`DELETE /v2/{project_id}/migration-tasks/delete`: delete these tasks."""
        return _expect(self._execute(self._delete_call(task_ids)))

    def batch_stop_migration_tasks(self, task_ids: Sequence[str]) -> MigrationTaskActionResults:
        """`POST /v2/{project_id}/migration-task/batch-stop`: stop these tasks; the answer
        says, task by task, whether DCS did (safe to retry)."""
        return _expect(self._execute(self._batch_stop_call(task_ids)))

    def batch_restart_online_migration_tasks(
        self, task_ids: Sequence[str]
    ) -> MigrationTaskActionResults:
        """`POST /v2/{project_id}/migration-tasks/batch-restart`: restart up to 50 online
        tasks; the answer says, task by task, whether DCS did (sent at most once)."""
        return _expect(self._execute(self._batch_restart_call(task_ids)))


class AsyncDcsClient(_BaseDcsClient):
    """Asynchronous twin of `DcsClient`, with the same methods as coroutines.

    The same retry rules apply (see `DcsClient`); `sleep` is awaited between attempts.
    """

    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: httpx.Auth,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        keep_passwords: bool = False,
        max_connections: int = 100,
        on_retry: OnRetry | None = None,
    ) -> None:
        super().__init__(
            endpoint,
            project_id,
            auth,
            retry=retry,
            clock=clock,
            keep_passwords=keep_passwords,
            on_retry=on_retry,
        )
        self._sleep = sleep
        options = self._client_options(timeout, verify, transport)
        options["limits"] = httpx.Limits(max_connections=max_connections)
        self._http = httpx.AsyncClient(**options)

    async def __aenter__(self) -> AsyncDcsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _execute(self, call: _Call[_M]) -> _M | None:
        attempt = _Attempt(call, self._clock())
        while True:
            try:
                response = await self._http.send(self._build_request(self._http, call))
                return self._read(call, response)
            except (httpx.RequestError, DcsApiError) as exc:
                delay = self._next_delay(attempt, exc)
                if delay < 0:
                    if isinstance(exc, httpx.RequestError):
                        raise self._transport_error(attempt, exc) from exc
                    raise
            await self._sleep(delay)
            attempt.number += 1

    async def show_migration_task(self, task_id: str) -> MigrationTask:
        """`GET /v2/{project_id}/migration-task/{task_id}`: the task's details."""
        return _expect(await self._execute(self._show_call(task_id)))

    async def show_migration_task_stats(self, task_id: str) -> MigrationTaskStats:
        """`GET .../migration-task/{task_id}/stats`: progress of a full migration."""
        return _expect(await self._execute(self._stats_call(task_id)))

    async def list_migration_tasks(
        self, *, offset: int = 0, limit: int = 100, name: str | None = None
    ) -> MigrationTaskList:
        """`GET /v2/{project_id}/migration-tasks`: one page of the project's tasks."""
        return _expect(await self._execute(self._list_call(offset, limit, name)))

    async def iter_migration_task_pages(
        self,
        *,
        name: str | None = None,
        page_size: int = 100,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[MigrationTaskList, None]:
        """Every page of the project's tasks (optionally matching `name`), a request each.

        `pace`, when given, is awaited before each request: a rate limit shared with other
        calls.
        """
        paging = _Paging(page_size)
        while not paging.done:
            if pace is not None:
                await pace()
            yield paging.take(
                await self.list_migration_tasks(offset=paging.offset, limit=page_size, name=name)
            )

    async def iter_migration_tasks(
        self, *, name: str | None = None, page_size: int = 100
    ) -> AsyncGenerator[MigrationTaskSummary, None]:
        """Every task of the project (optionally matching `name`), one page per request.

        Close it (`contextlib.aclosing`) when leaving before the end.
        """
        pages = self.iter_migration_task_pages(name=name, page_size=page_size)
        async with aclosing(pages):
            async for page in pages:
                for task in page.migration_tasks:
                    yield task

    async def list_migration_task_logs(
        self, task_id: str, *, offset: int = 0, limit: int = 10, log_level: str | None = None
    ) -> MigrationTaskLogs:
        """`GET .../migration-task/{task_id}/logs`: one page of the task's log."""
        return _expect(await self._execute(self._logs_call(task_id, offset, limit, log_level)))

    async def stop_migration_task(self, task_id: str) -> MigrationTask:
        """`POST .../migration-task/{task_id}/stop`: stop the migration (safe to retry)."""
        return _expect(await self._execute(self._stop_call(task_id)))

    async def exchange_instance_ip(
        self,
        task_id: str,
        *,
        exchanged_ip: list[str] | None = None,
        is_exchange_domain: bool | None = None,
    ) -> None:
        """`POST .../exchange-ip`: swap source and target addresses (sent at most once)."""
        await self._execute(self._exchange_call(task_id, exchanged_ip, is_exchange_domain))

    async def rollback_exchange_instance_ip(self, task_id: str) -> None:
        """`POST .../rollback-ip`: undo an IP exchange (sent at most once)."""
        await self._execute(self._rollback_call(task_id))

    async def create_online_migration_task(
        self,
        name: str,
        *,
        vpc_id: str,
        subnet_id: str,
        security_group_id: str,
        description: str | None = None,
    ) -> OnlineMigrationTaskCreated:
        """`POST /v2/{project_id}/migration/instance`: a new online migration task, in RUNNING
        until `set_online_migration_task` configures it (sent at most once)."""
        call = self._create_online_call(
            name=name,
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            security_group_id=security_group_id,
            description=description,
        )
        return _expect(await self._execute(call))

    async def set_online_migration_task(
        self,
        task_id: str,
        *,
        migration_method: MigrationMethod | str,
        resume_mode: ResumeMode | str,
        source_instance: RedisEndpoint | Mapping[str, Any],
        target_instance: RedisEndpoint | Mapping[str, Any],
        bandwidth_limit_mb: int | None = None,
    ) -> MigrationTaskAccepted:
        """`POST /v2/{project_id}/migration/{task_id}/task`: configure a created online task;
        it starts migrating (sent at most once).

        `migration_method` is "full" or "incremental" (full, then incremental sync);
        `resume_mode` "auto" or "manual"; each instance by `id` (a DCS instance) or by
        `addrs` ("host:port"), with its `password` if it has one.
        """
        call = self._configure_online_call(
            task_id,
            migration_method=migration_method,
            resume_mode=resume_mode,
            bandwidth_limit_mb=bandwidth_limit_mb,
            source_instance=source_instance,
            target_instance=target_instance,
        )
        return _expect(await self._execute(call))

    async def create_migration_task(
        self,
        task_name: str,
        *,
        target_instance: RedisEndpoint | Mapping[str, Any],
        bucket_name: str | None = None,
        files: Sequence[BackupFile | Mapping[str, Any] | str] | None = None,
        backup_id: str | None = None,
        description: str | None = None,
    ) -> MigrationTaskAccepted:
        """`POST /v2/{project_id}/migration-task`: import backup files into the DCS instance
        `target_instance` (by id), from `files` in the OBS bucket `bucket_name` or from the
        backup record `backup_id` (sent at most once)."""
        call = self._create_import_call(
            task_name=task_name,
            description=description,
            target_instance=target_instance,
            bucket_name=bucket_name,
            files=files,
            backup_id=backup_id,
        )
        return _expect(await self._execute(call))

    async def stop_migration_task_sync(self, task_id: str) -> None:
        """`POST .../migration-task/{task_id}/sync-stop`: stop the task and wait for it to
        stop (safe to retry)."""
        await self._execute(self._sync_stop_call(task_id))

    async def delete_migration_task(self, task_ids: Sequence[str]) -> DeletedMigrationTasks:
        """`DELETE /v2/{project_id}/migration-tasks/delete`: delete these tasks."""
        return _expect(await self._execute(self._delete_call(task_ids)))

    async def batch_stop_migration_tasks(
        self, task_ids: Sequence[str]
    ) -> MigrationTaskActionResults:
        """`POST /v2/{project_id}/migration-task/batch-stop`: stop these tasks; the answer
        says, task by task, whether DCS did (safe to retry)."""
        return _expect(await self._execute(self._batch_stop_call(task_ids)))

    async def batch_restart_online_migration_tasks(
        self, task_ids: Sequence[str]
    ) -> MigrationTaskActionResults:
        """`POST /v2/{project_id}/migration-tasks/batch-restart`: restart up to 50 online
        tasks; the answer says, task by task, whether DCS did (sent at most once)."""
        return _expect(await self._execute(self._batch_restart_call(task_ids)))


def is_last_page(page: MigrationTaskList, seen: int, page_size: int) -> bool:
    """Whether paging is done: a short or empty page, or as many tasks as the count says."""
    if len(page.migration_tasks) < page_size or not page.migration_tasks:
        return True
    return page.count is not None and seen >= page.count


__all__ = [
    "MAX_PAGE_SIZE",
    "USER_AGENT",
    "AsyncDcsClient",
    "DcsClient",
    "is_last_page",
    "validate_path_parameter",
]
