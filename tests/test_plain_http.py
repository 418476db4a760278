"""One rule for plain `http://`: loopback only, refused the same way wherever an endpoint enters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr, ValidationError

from blocks.auth import IamPasswordAuth, TokenAuth
from blocks.client import AsyncDcsClient, DcsClient
from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from blocks.settings import DcsSettings

PROJECT = "0605767f8d00d5a52f4bc01f1b2d5ac5"
IAM_USER = {"iam_username": "ops", "iam_password": "pw", "iam_domain_name": "acme"}

Entry = Callable[[str], object]


def settings_endpoint(url: str) -> object:
    return DcsSettings(project_id=PROJECT, endpoint=url, token="t")


def settings_iam_endpoint(url: str) -> object:
    return DcsSettings.model_validate(
        {"project_id": PROJECT, "region": "cn-north-4", "iam_endpoint": url, **IAM_USER}
    )


def environment(url: str) -> object:
    return DcsSettings.from_env({"DCS_PROJECT_ID": PROJECT, "DCS_ENDPOINT": url, "DCS_TOKEN": "t"})


def block(url: str) -> object:
    return DcsCredentials(project_id=PROJECT, endpoint=url, token="t")


def client(url: str) -> object:
    with DcsClient(url, PROJECT, TokenAuth(SecretStr("t"))) as built:
        return built


async def async_client(url: str) -> object:
    async with AsyncDcsClient(url, PROJECT, TokenAuth(SecretStr("t"))) as built:
        return built


def iam_auth(url: str) -> object:
    return IamPasswordAuth("ops", SecretStr("pw"), "acme", project_id=PROJECT, iam_endpoint=url)


ENTRIES = [
    pytest.param(settings_endpoint, "endpoint", id="settings-endpoint"),
    pytest.param(settings_iam_endpoint, "iam_endpoint", id="settings-iam-endpoint"),
    pytest.param(environment, "DCS_ENDPOINT", id="environment"),
    pytest.param(block, "endpoint", id="block"),
    pytest.param(client, "endpoint", id="client"),
    pytest.param(async_client, "endpoint", id="async-client"),
    pytest.param(iam_auth, "iam_endpoint", id="iam-auth"),
]


async def enter(entry: Callable[[str], object], url: str) -> object:
    built = entry(url)
    if entry is async_client:
        return await built  # type: ignore[misc]
    return built


@pytest.mark.parametrize(("entry", "field"), ENTRIES)
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://dcs.example.com", id="name"),
        pytest.param("http://10.0.0.5:8000", id="private-ip"),
        pytest.param("http://0.0.0.0:8000", id="any-address"),
        pytest.param("http://localhost.example.com", id="localhost-lookalike"),
        pytest.param("http://[fe80::1]:8000", id="ipv6"),
    ],
)
async def test_plain_http_to_another_host_is_refused_with_one_message(
    entry: Entry, field: str, url: str
) -> None:
    """Every entry point refuses the same endpoint with the same words: field, value, what to do."""
    with pytest.raises((ValidationError, DcsValidationError)) as caught:
        await enter(entry, url)
    expected = (
        f"{field} {url!r} uses plain http to a host that is not loopback, which would send "
        f"credentials in clear text; use https, or a loopback address (127.0.0.1, localhost "
        f"or ::1) for the local sandbox"
    )
    assert expected in str(caught.value)


@pytest.mark.parametrize(("entry", "_field"), ENTRIES)
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8000", id="ipv4"),
        pytest.param("http://127.0.0.2", id="ipv4-other"),
        pytest.param("http://localhost:9000/", id="localhost"),
        pytest.param("http://LOCALHOST:9000", id="localhost-upper"),
        pytest.param("http://[::1]:8000", id="ipv6"),
        pytest.param("https://dcs.example.com", id="https"),
    ],
)
async def test_loopback_http_and_https_are_accepted(entry: Entry, _field: str, url: str) -> None:
    """The sandbox on loopback (any spelling) and any https host are accepted everywhere."""
    assert await enter(entry, url) is not None
