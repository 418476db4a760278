"""Resolving the `credentials` argument of every task and flow: a block name or a block."""

from __future__ import annotations

from typing import cast

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError

DEFAULT_BLOCK_NAME = "dcs"


def _not_found(name: str, error: Exception) -> DcsValidationError:
    if isinstance(error, RuntimeError):
        # Prefect found the document, but it no longer validates (edited in the UI, say).
        msg = (
            f"the DcsCredentials block {name!r} exists but is not valid: {error}; fix it in "
            f"the Prefect UI (Blocks) or save it again"
        )
        return DcsValidationError(msg)
    msg = (
        f"no DcsCredentials block named {name!r} could be loaded ({error}); create it in the "
        f"Prefect UI (Blocks > DCS Credentials) or with "
        f"`DcsCredentials(project_id=..., region=..., token=...).save({name!r})`"
    )
    return DcsValidationError(msg)


def _check(credentials: object) -> str | DcsCredentials:
    if isinstance(credentials, DcsCredentials | str):
        return credentials
    msg = (
        f"credentials must be a DcsCredentials block or the name of one, "
        f"got {type(credentials).__name__}"
    )
    raise DcsValidationError(msg)


def load_credentials(credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME) -> DcsCredentials:
    """The block itself, or the saved block of that name."""
    checked = _check(credentials)
    if isinstance(checked, DcsCredentials):
        return checked
    try:
        # `_sync=True`: a sync task may run inside an async flow's event loop, where a
        # plain `load` would hand back a coroutine.
        block = DcsCredentials.load(checked, _sync=True)  # type: ignore[call-arg]
        return cast(DcsCredentials, block)
    except (ValueError, RuntimeError) as exc:
        raise _not_found(checked, exc) from None


async def aload_credentials(
    credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME,
) -> DcsCredentials:
    """The async twin of `load_credentials`."""
    checked = _check(credentials)
    if isinstance(checked, DcsCredentials):
        return checked
    try:
        return await DcsCredentials.aload(checked)
    except (ValueError, RuntimeError) as exc:
        raise _not_found(checked, exc) from None


__all__ = ["DEFAULT_BLOCK_NAME", "aload_credentials", "load_credentials"]
