"""Saved Prefect blocks, loaded by name: one loader for credentials and notification blocks.

A block class (`DcsCredentials`) is loaded by its block's name alone: the class knows its
block type. A kind of block, an abstract class (`NotificationBlock`), is loaded by
`"<block-type-slug>/<block-name>"`, and what loads must be of that kind. Whatever goes
wrong, the `UnusableBlock` error names the block and says what to do, and quotes none of
Prefect's text, which may quote the stored data (a webhook's URL, say).

```python
from prefect.blocks.abstract import NotificationBlock

from blocks.credentials import DcsCredentials
from flows.saved_blocks import aload_block

credentials = await aload_block(DcsCredentials, "dcs")
pager = await aload_block(NotificationBlock, "slack-webhook/ops", what="notification block")
```
"""

from __future__ import annotations

import inspect
from typing import TypeVar, cast

from prefect.blocks.core import Block

from blocks.errors import DcsValidationError

#: How a kind of block wants each block named, e.g. "slack-webhook/ops".
BLOCK_NAME_FORM = "<block-type-slug>/<block-name>"

B = TypeVar("B", bound=Block)


class UnusableBlock(DcsValidationError):
    """A saved block that will never work as named: missing, no longer valid, or of
    another kind than asked for."""


def _by_type_slug(kind: type[Block]) -> bool:
    # Only a concrete class knows its block type; Prefect reads the type from the name.
    return kind is Block or inspect.isabstract(kind)


def name_problem(name: object) -> str | None:
    """What is wrong with `name` as `"<block-type-slug>/<block-name>"`, or None."""
    if not isinstance(name, str):
        # Not its repr: a block passed by mistake would print its URL.
        return f"a {type(name).__name__} is not a block name ({BLOCK_NAME_FORM!r})"
    slug, slash, document = name.partition("/")
    if not slash or not slug.strip() or not document.strip() or "/" in document:
        return f"{name!r} is not of the form {BLOCK_NAME_FORM!r} (e.g. 'slack-webhook/ops')"
    return None


def check_block_names(names: list[str], *, what: str = "block") -> None:
    """Raise one DcsValidationError naming every name not of the form type-slug/name."""
    problems = [problem for name in names if (problem := name_problem(name)) is not None]
    if problems:
        msg = f"bad {what} name: {'; '.join(problems)}"
        raise DcsValidationError(msg)


def _failed(kind: type[Block], name: str, what: str, error: Exception) -> UnusableBlock:
    failure = type(error).__name__
    if isinstance(error, RuntimeError):
        # Prefect found the document, but it no longer validates (edited in the UI, say).
        msg = (
            f"the {what} {name!r} exists but is not valid ({failure}): fix it in the "
            f"Prefect UI (Blocks) or save it again"
        )
        return UnusableBlock(msg)
    if _by_type_slug(kind):
        slug, _, document = name.partition("/")
        how = "(Prefect UI: Blocks)"
    else:
        slug, document = kind.get_block_type_slug(), name
        how = (
            f"Create it in the Prefect UI (Blocks > {kind.get_block_type_name()}) or with "
            f"`{kind.__name__}(...).save({name!r})`"
        )
    msg = (
        f"no {what} named {name!r} could be loaded ({failure}): is there a block of type "
        f"{slug!r} named {document!r}? {how}"
    )
    return UnusableBlock(msg)


def _of_kind(kind: type[B], name: str, what: str, block: Block) -> B:
    if not isinstance(block, kind):
        msg = (
            f"{name!r} is a {type(block).__name__} block, not a {what} "
            f"({kind.__module__}.{kind.__qualname__})"
        )
        raise UnusableBlock(msg)
    return block


def _prepared(kind: type[Block], name: str, what: str | None) -> tuple[type[Block], str]:
    """Where to load from (the class, or `Block` for a type slug) and what to call it."""
    if not _by_type_slug(kind):
        return kind, what or f"{kind.__name__} block"
    what = what or "block"
    check_block_names([name], what=what)
    return Block, what


async def aload_block(kind: type[B], name: str, *, what: str | None = None) -> B:
    """The saved block `name` of `kind`; `what` names the kind in errors.

    Raises `UnusableBlock` (a DcsValidationError) when it is missing, no longer valid,
    or of another kind; a DcsValidationError when a type-slug name is malformed.
    """
    source, what = _prepared(kind, name, what)
    try:
        block = await source.aload(name)
    except (ValueError, RuntimeError) as exc:
        raise _failed(kind, name, what, exc) from None
    return _of_kind(kind, name, what, block)


def load_block(kind: type[B], name: str, *, what: str | None = None) -> B:
    """The sync twin of `aload_block`, safe in a sync task inside an async flow's loop."""
    source, what = _prepared(kind, name, what)
    try:
        # `_sync=True`: a sync task may run inside an async flow's event loop, where a
        # plain `load` would hand back a coroutine.
        block = cast(Block, source.load(name, _sync=True))  # type: ignore[call-arg]
    except (ValueError, RuntimeError) as exc:
        raise _failed(kind, name, what, exc) from None
    return _of_kind(kind, name, what, block)


__all__ = [
    "BLOCK_NAME_FORM",
    "UnusableBlock",
    "aload_block",
    "check_block_names",
    "load_block",
    "name_problem",
]
