"""flows.saved_blocks: one loader for credentials and notification blocks, with errors that
name the block, say what to do, and quote none of Prefect's text."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate

from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from flows.credentials import aload_credentials, load_credentials
from flows.notify import check_notification_blocks, send_notification
from flows.saved_blocks import BLOCK_NAME_FORM, UnusableBlock, aload_block, load_block

pytestmark = pytest.mark.usefixtures("prefect_harness")

HOOK_TOKEN = "saved-blocks-hook-canary-3e9a"


@flow
async def relay(names: list[str]) -> dict[str, str]:
    """send_notification as a runbook calls it: inside a flow run (its logs need one)."""
    return await send_notification("s", "b", names)


async def load_credentials_as(flavour: str, name: str) -> DcsCredentials:
    """The saved credentials block, through the sync or the async loader."""
    return load_credentials(name) if flavour == "sync" else await aload_credentials(name)


async def broken_webhook() -> str:
    """A custom-webhook block saved, then edited into a document that no longer validates."""
    name = f"broken-{uuid.uuid4().hex[:10]}"
    block = CustomWebhookNotificationBlock(
        name=name, url=f"https://hooks.example.invalid/{HOOK_TOKEN}", json_data={"t": "{{body}}"}
    )
    await block.asave(name)
    async with get_client() as client:
        document = await client.read_block_document_by_name(name, "custom-webhook")
        data = {**document.data, "json_data": "not a mapping"}
        await client.update_block_document(document.id, BlockDocumentUpdate(data=data))
    return f"custom-webhook/{name}"


async def test_a_broken_notification_block_is_refused_before_the_wait() -> None:
    """A saved notification block that no longer validates is unusable: the runbook's
    check refuses it by name, and a send skips it, without quoting its URL."""
    name = await broken_webhook()
    with pytest.raises(DcsValidationError) as raised:
        await check_notification_blocks([name])
    assert f"the notification block {name!r} exists but is not valid" in str(raised.value)
    assert HOOK_TOKEN not in str(raised.value)
    assert await relay([name]) == {name: "failed: unusable"}


@pytest.mark.parametrize("flavour", [pytest.param("sync"), pytest.param("async")])
async def test_a_missing_credentials_block_says_what_to_do(flavour: str) -> None:
    """The error names the block and its type and how to create it, in our words only:
    Prefect's own text is not quoted."""
    name = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UnusableBlock) as raised:
        await load_credentials_as(flavour, name)
    message = str(raised.value)
    assert message.startswith(f"no DcsCredentials block named {name!r} could be loaded")
    assert f"is there a block of type 'dcs-credentials' named {name!r}?" in message
    assert f"`DcsCredentials(...).save({name!r})`" in message
    assert "Unable to find" not in message  # Prefect's text


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("pager", id="no-slash"),
        pytest.param("custom-webhook/", id="no-name"),
        pytest.param("a/b/c", id="two-slashes"),
    ],
)
async def test_a_kind_of_block_needs_a_type_slug_in_its_name(name: str) -> None:
    """Loading by kind (an abstract class) wants "<block-type-slug>/<block-name>"."""
    with pytest.raises(DcsValidationError, match=BLOCK_NAME_FORM) as raised:
        await aload_block(NotificationBlock, name, what="notification block")
    assert str(raised.value).startswith(f"bad notification block name: {name!r}")


async def test_a_block_of_another_kind_is_named_as_such() -> None:
    """A saved block loaded as a kind it is not: the error says which type it is."""
    name = f"creds-{uuid.uuid4().hex[:8]}"
    await DcsCredentials(endpoint="https://dcs.example.test", project_id="p", token="t").asave(name)
    with pytest.raises(UnusableBlock, match="is a DcsCredentials block, not a notification"):
        await aload_block(NotificationBlock, f"dcs-credentials/{name}", what="notification block")
    assert load_block(DcsCredentials, name).project_id == "p"
