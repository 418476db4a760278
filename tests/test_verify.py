"""`verify`: true/false words become booleans, anything else is a CA bundle that must exist."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from pydantic import SecretStr, ValidationError

from blocks.auth import TokenAuth
from blocks.client import AsyncDcsClient, DcsClient
from blocks.credentials import DcsCredentials
from blocks.errors import DcsValidationError
from blocks.settings import DcsSettings
from flows.cli import EXIT_ERROR, main

PROJECT = "0605767f8d00d5a52f4bc01f1b2d5ac5"
ENDPOINT = "https://dcs.example.test"
BASE = {"project_id": PROJECT, "endpoint": ENDPOINT, "token": "verify-token"}

Build = Callable[[str], DcsSettings]


def from_settings(value: str) -> DcsSettings:
    return DcsSettings.model_validate({**BASE, "verify": value})


def from_block_form(value: str) -> DcsSettings:
    # The Prefect UI sends what was typed into the string branch of `bool | str`.
    return DcsCredentials.model_validate({**BASE, "verify": value})


def from_environment(value: str) -> DcsSettings:
    env = {"DCS_PROJECT_ID": PROJECT, "DCS_ENDPOINT": ENDPOINT, "DCS_TOKEN": "t"}
    return DcsSettings.from_env({**env, "DCS_VERIFY": value})


SOURCES = [
    pytest.param(from_settings, "verify", id="settings"),
    pytest.param(from_block_form, "verify", id="block-form"),
    pytest.param(from_environment, "DCS_VERIFY", id="environment"),
]


@pytest.mark.parametrize(("build", "_name"), SOURCES)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("false", False, id="false"),
        pytest.param("False", False, id="False"),
        pytest.param(" NO ", False, id="no-padded"),
        pytest.param("0", False, id="zero"),
        pytest.param("off", False, id="off"),
        pytest.param("true", True, id="true"),
        pytest.param("Yes", True, id="Yes"),
        pytest.param("1", True, id="one"),
        pytest.param("ON\n", True, id="on-newline"),
    ],
)
def test_true_false_words_are_booleans(build: Build, _name: str, text: str, expected: bool) -> None:
    """A true/false word, from any source, is a bool, never a CA bundle path."""
    assert build(text).verify is expected


BAD_VALUES = {"typo": "flase", "missing-file": "/no/such/ca-bundle.pem", "blank": " "}


@pytest.mark.parametrize(
    ("build", "name", "text"),
    [
        pytest.param(source.values[0], source.values[1], text, id=f"{key}-{source.id}")
        for source in SOURCES
        for key, text in BAD_VALUES.items()
        # A blank environment variable counts as unset.
        if not (key == "blank" and source.id == "environment")
    ],
)
def test_a_value_that_is_neither_a_word_nor_a_path_is_refused(
    build: Build, name: str, text: str
) -> None:
    """The error names the field (DCS_VERIFY from the environment), the value and what to set."""
    with pytest.raises(ValidationError) as caught:
        build(text)
    message = str(caught.value)
    assert f"{name} {text.strip()!r} is neither true nor false nor" in message
    assert "set it to true, false, or the path of a CA bundle" in message


@pytest.mark.parametrize(("build", "_name"), SOURCES)
def test_an_existing_ca_bundle_path_is_kept(build: Build, _name: str, tmp_path: Path) -> None:
    """A path to an existing file or directory stays the path (stripped)."""
    assert build(f" {certifi.where()} ").verify == certifi.where()
    assert build(str(tmp_path)).verify == str(tmp_path)


@pytest.fixture
def handed_to_httpx(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What `verify` each httpx client built from now on receives."""
    seen: list[object] = []

    class Client(httpx.Client):
        def __init__(self, **options: Any) -> None:
            seen.append(options.get("verify"))
            super().__init__(**options)

    class AsyncClient(httpx.AsyncClient):
        def __init__(self, **options: Any) -> None:
            seen.append(options.get("verify"))
            super().__init__(**options)

    monkeypatch.setattr(httpx, "Client", Client)
    monkeypatch.setattr(httpx, "AsyncClient", AsyncClient)
    return seen


def _is_false(verify: object) -> bool:
    return verify is False


def _trusts_certifi(verify: object) -> bool:
    return isinstance(verify, ssl.SSLContext) and len(verify.get_ca_certs()) > 10


def _is_context(verify: object) -> bool:
    return isinstance(verify, ssl.SSLContext) and verify.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("text", "check"),
    [
        pytest.param("false", _is_false, id="false"),
        pytest.param(certifi.where(), _trusts_certifi, id="ca-file"),
        pytest.param("{tmp_path}", _is_context, id="ca-directory"),
    ],
)
async def test_the_httpx_client_gets_a_bool_or_an_ssl_context(
    handed_to_httpx: list[object], text: str, check: Callable[[object], bool], tmp_path: Path
) -> None:
    """get_client / get_async_client hand httpx False or an SSL context, never the string."""
    settings = from_block_form(text.format(tmp_path=tmp_path))
    with settings.get_client():
        pass
    async with settings.get_async_client():
        pass
    assert len(handed_to_httpx) == 2
    assert all(check(verify) for verify in handed_to_httpx), handed_to_httpx


@pytest.mark.parametrize("client_type", [DcsClient, AsyncDcsClient])
async def test_the_clients_read_verify_the_same_way(
    handed_to_httpx: list[object], client_type: type[DcsClient | AsyncDcsClient]
) -> None:
    """A client built directly reads "off" as False and refuses a path that is not there."""
    auth = TokenAuth(SecretStr("t"))
    client = client_type(ENDPOINT, PROJECT, auth, verify="off")
    if isinstance(client, AsyncDcsClient):
        await client.aclose()
    else:
        client.close()
    assert handed_to_httpx == [False]
    with pytest.raises(DcsValidationError, match=r"verify '/no/such/ca\.pem' is neither"):
        client_type(ENDPOINT, PROJECT, auth, verify="/no/such/ca.pem")


def test_a_file_that_is_not_a_ca_bundle_is_named(tmp_path: Path) -> None:
    """An existing file that holds no certificate is an error naming verify and the path."""
    bogus = tmp_path / "not-a-bundle.pem"
    bogus.write_text("hello\n")
    settings = from_settings(str(bogus))
    with pytest.raises(DcsValidationError, match=r"verify '.*not-a-bundle\.pem' could not be"):
        settings.get_client()


def test_the_cli_names_dcs_verify(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dcs-migrate status` with a bad DCS_VERIFY exits 3 and says which variable to fix."""
    for name, value in {**BASE, "verify": "flase"}.items():
        monkeypatch.setenv(f"DCS_{name.upper()}", value)
    assert main(["status", "t1"]) == EXIT_ERROR
    err = " ".join(capsys.readouterr().err.split())
    assert "DCS_VERIFY 'flase' is neither true nor false" in err
