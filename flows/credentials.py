"""Resolving the `credentials` argument: tasks take a block name or a block, flows a name.

A flow's parameters are stored by the Prefect API and shown in the UI. An inline block
would be stored with its secrets masked, so a re-run from the UI would get the masked copy
and fail; worse, a block passed as a plain dict could store them in clear. So every flow
types `credentials` as `BlockName`: a string, and a clear error for a block.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from flows.saved_blocks import aload_block, load_block

DEFAULT_BLOCK_NAME = "dcs"


def _check(credentials: object) -> str | DcsCredentials:
    if isinstance(credentials, DcsCredentials | str):
        return credentials
    msg = (
        f"credentials must be a DcsCredentials block or the name of one, "
        f"got {type(credentials).__name__}"
    )
    raise DcsValidationError(msg)


def _block_name(value: Any) -> Any:
    if isinstance(value, DcsCredentials | dict):
        msg = (
            f"credentials of a flow must be the name of a saved DcsCredentials block, not "
            f"the block ({type(value).__name__}): save it once, e.g. "
            f"`block.save('dcs-prod')`, and pass credentials='dcs-prod'"
        )
        raise ValueError(msg)  # pydantic reports it with the parameter's name
    return value


#: The type of a flow's `credentials` parameter: the name of a saved block, never the block.
BlockName = Annotated[str, BeforeValidator(_block_name)]


def load_credentials(credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME) -> DcsCredentials:
    """The block itself, or the saved block of that name (`UnusableBlock` if there is none)."""
    checked = _check(credentials)
    if isinstance(checked, DcsCredentials):
        return checked
    return load_block(DcsCredentials, checked)


async def aload_credentials(
    credentials: str | DcsCredentials = DEFAULT_BLOCK_NAME,
) -> DcsCredentials:
    """The async twin of `load_credentials`."""
    checked = _check(credentials)
    if isinstance(checked, DcsCredentials):
        return checked
    return await aload_block(DcsCredentials, checked)


__all__ = ["DEFAULT_BLOCK_NAME", "BlockName", "aload_credentials", "load_credentials"]
