"""Notifications about a migration task, through any Prefect notification block.

`send_notification` (one Prefect task run) sends a subject and body through a list of saved
blocks named `"<type-slug>/<name>"`; `notify_migration` formats the message about a task
(`flows.message.format_message`, re-exported here) and sends it. Nothing here ever writes
a secret: a block's failure is logged as its name, the exception type and a message with
URLs and the block's secrets cut out (`blocks.redaction`), because webhook URLs are
secrets; blocks are loaded by `flows.saved_blocks`.

```python
from prefect import flow

from flows import fetch_migration_task
from flows.notify import notify_migration


@flow
async def tell_ops(task_id: str) -> dict[str, str]:
    task = fetch_migration_task(task_id, "dcs")
    return await notify_migration(
        task, event="checked", notification_blocks=["slack-webhook/ops", "custom-webhook/pager"]
    )
```
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime

import httpx
from prefect import get_run_logger, task
from prefect.blocks.abstract import NotificationBlock
from prefect.cache_policies import NO_CACHE

from blocks.errors import DcsValidationError, NotificationError
from blocks.models import MigrationTask
from blocks.redaction import block_secrets, redact_urls, redacting_urls, scrub
from flows.message import format_message, one_line
from flows.saved_blocks import BLOCK_NAME_FORM, UnusableBlock, aload_block, check_block_names

#: The longest one block may take to send. A block that never answers must not hold a
#: runbook forever; Prefect's webhook block gives up after 10 s by itself, so this only
#: catches the ones that hang.
SEND_TIMEOUT_SECONDS = 60.0
# An exception's text can be kilobytes (a whole HTML page): a log line keeps its start.
_MAX_REASON = 200
_WHAT = "notification block"


async def _load_all(names: list[str]) -> list[NotificationBlock | BaseException]:
    """Each block, or why it could not be loaded (an `UnusableBlock` for the block's fault)."""
    # The ignore: mypy wants a concrete class for type[B] (python/mypy#4717), while the
    # loader only checks isinstance against it.
    kind: type[NotificationBlock] = NotificationBlock  # type: ignore[type-abstract]
    loaded = await asyncio.gather(
        *(aload_block(kind, name, what=_WHAT) for name in names), return_exceptions=True
    )
    for item in loaded:
        if isinstance(item, BaseException) and not isinstance(item, Exception):
            raise item  # cancelled or interrupted: not a block's failure to report
    return loaded


def _unusable(loaded: list[NotificationBlock | BaseException]) -> list[str]:
    return [str(item) for item in loaded if isinstance(item, UnusableBlock)]


def _reason(exc: BaseException, secrets: set[str]) -> str:
    """What went wrong, fit for a log: no URL, no secret of the block."""
    if isinstance(exc, httpx.HTTPStatusError):
        # Its str() quotes the request URL; the status is all a reader needs.
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}".rstrip()
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {SEND_TIMEOUT_SECONDS:g} s"
    # Prefect's Apprise blocks raise a NotificationError whose text is in `.log`.
    text = str(exc) or str(getattr(exc, "log", "") or "")
    text = one_line(redact_urls(scrub(text, secrets)))
    if len(text) > _MAX_REASON:
        text = text[:_MAX_REASON] + "..."
    return text or "(no message)"


async def _send(block: NotificationBlock, body: str, subject: str) -> None:
    # A webhook's URL is its secret, and httpx logs the URL of every request it sends.
    # Apprise-based blocks report a failed send only as a log line unless asked to raise.
    with redacting_urls(), block.raise_on_failure():
        # Prefect's blocks wrap notify in async_dispatch: inside this async task it returns
        # the coroutine of `anotify`. A third-party block may define a plain async notify,
        # or (against the ABC) a sync one that has already run: await only what needs it.
        sent = block.notify(body, subject)
        if inspect.isawaitable(sent):
            await asyncio.wait_for(sent, timeout=SEND_TIMEOUT_SECONDS)


# No cache: every call is a new message that must go out, even with the same text.
@task(name="send-notification", cache_policy=NO_CACHE)
async def send_notification(
    subject: str, body: str, notification_blocks: list[str], *, strict: bool = False
) -> dict[str, str]:
    """Send through each saved notification block `"<type-slug>/<name>"`; say how each went.

    Returns `{block_name: "sent" | "failed: <ExceptionType>" | "failed: unusable"}`. A block
    that fails does not stop the others; with `strict=True` a `NotificationError` follows
    once all were tried. A malformed name raises `DcsValidationError` before anything is
    sent; so does a missing block, or one that is not a notification block, when `strict`
    (otherwise it is logged, skipped and reported "failed: unusable").

    ```python
    await send_notification("hello", "from the runbook", ["slack-webhook/ops"])
    ```
    """
    if not notification_blocks:
        return {}
    check_block_names(notification_blocks, what=_WHAT)
    names = list(dict.fromkeys(notification_blocks))  # once each, in the order given
    loaded = await _load_all(names)
    unusable = _unusable(loaded)
    logger = get_run_logger()
    if unusable and strict:
        msg = f"unusable notification block: {'; '.join(unusable)}"
        raise DcsValidationError(msg)
    for problem in unusable:
        # Not strict: a typo in one name must not cost the message through the others.
        logger.warning("notification block skipped: %s", problem)

    async def attempt(name: str, block: NotificationBlock | BaseException) -> str:
        if isinstance(block, UnusableBlock):
            return "failed: unusable"
        if isinstance(block, BaseException):
            # Loading failed for another reason than the block (the Prefect API, say).
            error: BaseException = block
            secrets: set[str] = set()
        else:
            try:
                await _send(block, body, subject)
            except Exception as exc:
                error, secrets = exc, block_secrets(block)
            else:
                return "sent"
        # No exc_info: the traceback would print the exception's own text, URL and all.
        logger.warning(
            "notification block %r failed: %s: %s",
            name,
            type(error).__name__,
            _reason(error, secrets),
        )
        return f"failed: {type(error).__name__}"

    outcomes = await asyncio.gather(*(attempt(n, b) for n, b in zip(names, loaded, strict=True)))
    results = dict(zip(names, outcomes, strict=True))
    failed = [name for name, outcome in results.items() if outcome != "sent"]
    sent = len(names) - len(failed)
    logger.info("notification %r sent through %d of %d blocks", subject, sent, len(names))
    if failed and strict:
        listed = ", ".join(
            f"{name!r} ({results[name].removeprefix('failed: ')})" for name in failed
        )
        msg = (
            f"notification {subject!r} failed through {len(failed)} of {len(names)} "
            f"blocks: {listed}"
        )
        raise NotificationError(msg)
    return results


async def check_notification_blocks(notification_blocks: list[str]) -> None:
    """Load every named block now, and say clearly which cannot be used.

    A runbook calls this before it waits for hours, so that a typo in a block name fails at
    once, not when the first message is due.
    """
    check_block_names(notification_blocks, what=_WHAT)
    unusable = _unusable(await _load_all(notification_blocks))
    if unusable:
        msg = f"unusable notification block: {'; '.join(unusable)}"
        raise DcsValidationError(msg)


async def notify_migration(
    task: MigrationTask,
    *,
    event: str,
    notification_blocks: list[str],
    strict: bool = False,
    flow_run_name: str | None = None,
    flow_run_url: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    detail: str | None = None,
) -> dict[str, str]:
    """Format a message about `task` and send it in one `send-notification` task run.

    A plain coroutine, not a task: the formatting sees the caller's flow run and costs no
    task run of its own, and with no blocks nothing runs at all. From a sync flow, submit
    the task instead:
    `send_notification.submit(*format_message(task, event=...), blocks).result()`.

    ```python
    await notify_migration(task, event="succeeded", notification_blocks=["slack-webhook/ops"])
    ```
    """
    if not notification_blocks:
        return {}
    subject, body = format_message(
        task,
        event=event,
        flow_run_name=flow_run_name,
        flow_run_url=flow_run_url,
        started_at=started_at,
        ended_at=ended_at,
        detail=detail,
    )
    return await send_notification(subject, body, notification_blocks, strict=strict)


__all__ = [
    "BLOCK_NAME_FORM",
    "SEND_TIMEOUT_SECONDS",
    "check_notification_blocks",
    "format_message",
    "notify_migration",
    "send_notification",
]
