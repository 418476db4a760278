"""DcsCredentials: validation naming the field, defaults from the region, clients, storage."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr, ValidationError

from blocks.auth import AkSkAuth, IamPasswordAuth, TokenAuth
from blocks.client import AsyncDcsClient, DcsClient
from blocks.credentials import DcsCredentials
from blocks.settings import DcsSettings

PROJECT = "0605767f8d00d5a52f4bc01f1b2d5ac5"
SECRET_KEY = "sk-canary-0d7e1f5a9b"
TOKEN = "token-canary-4c2b8e"
PASSWORD = "iam-password-canary-77"

TOKEN_AUTH = {"token": TOKEN}
AKSK_AUTH = {"access_key": "AKCANARY", "secret_key": SECRET_KEY}
IAM_AUTH = {"iam_username": "ops", "iam_password": PASSWORD, "iam_domain_name": "acme"}


def make(**fields: Any) -> DcsCredentials:
    return DcsCredentials(**{"project_id": PROJECT, "region": "cn-north-4", **fields})


class TestDcsCredentialsStandard(BlockStandardTestSuite):
    """Prefect's own checks for a block: description, field docs, code example."""

    @pytest.fixture
    def block(self) -> type[Block]:
        return DcsCredentials


@pytest.mark.parametrize(
    ("fields", "method", "auth_type"),
    [
        pytest.param(TOKEN_AUTH, "token", TokenAuth, id="token"),
        pytest.param(AKSK_AUTH, "aksk", AkSkAuth, id="aksk"),
        pytest.param({**AKSK_AUTH, "security_token": "st"}, "aksk", AkSkAuth, id="temporary-aksk"),
        pytest.param(IAM_AUTH, "iam_password", IamPasswordAuth, id="iam-password"),
    ],
)
def test_each_auth_method_builds_its_auth(
    fields: dict[str, Any], method: str, auth_type: type[httpx.Auth]
) -> None:
    """Each of the three ways to authenticate is recognised and builds its httpx.Auth."""
    block = make(**fields)
    assert block.auth_method == method
    assert isinstance(block.auth(), auth_type)
    assert block.auth() is block.auth()  # one auth per block: clients share an IAM token


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        pytest.param({}, "no credentials set", id="none"),
        pytest.param({**TOKEN_AUTH, **AKSK_AUTH}, "more than one way", id="token-and-aksk"),
        pytest.param({**AKSK_AUTH, **IAM_AUTH}, "more than one way", id="aksk-and-iam"),
        pytest.param({"access_key": "AK"}, "`secret_key` is required", id="ak-without-sk"),
        pytest.param({"secret_key": "SK"}, "`access_key` is required", id="sk-without-ak"),
        pytest.param(
            {"iam_username": "u", "iam_password": "p"},
            "`iam_domain_name` is required",
            id="iam-without-domain",
        ),
        pytest.param({**TOKEN_AUTH, "security_token": "x"}, "`security_token`", id="stray-field"),
        pytest.param(
            {**TOKEN_AUTH, "endpoint": "http://dcs.example.com"}, "endpoint", id="http-remote"
        ),
        pytest.param({**TOKEN_AUTH, "endpoint": "ftp://dcs"}, "endpoint", id="not-http"),
        pytest.param(
            {**IAM_AUTH, "iam_endpoint": "http://iam.example.com"},
            "iam_endpoint",
            id="iam-http-remote",
        ),
        pytest.param({**TOKEN_AUTH, "project_id": "  "}, "project_id", id="blank-project"),
        pytest.param({**TOKEN_AUTH, "timeout_seconds": 0}, "timeout_seconds", id="zero-timeout"),
        pytest.param({**TOKEN_AUTH, "region": None}, "`endpoint`", id="no-endpoint-no-region"),
    ],
)
def test_bad_settings_are_a_validation_error_naming_the_field(
    fields: dict[str, Any], fragment: str
) -> None:
    """Zero or two methods, half a method, unsafe endpoints and blanks name what to fix."""
    with pytest.raises(ValidationError, match=fragment):
        make(**fields)


def test_a_missing_project_names_the_field() -> None:
    """Leaving out project_id is an error about project_id."""
    with pytest.raises(ValidationError, match="project_id"):
        DcsCredentials(region="cn-north-4", token="t")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8080", "http://localhost:9000/", "http://[::1]:8000", "https://dcs.test"],
)
def test_https_and_loopback_http_endpoints_are_accepted(endpoint: str) -> None:
    """Plain http is fine for the sandbox on loopback; the trailing slash is dropped."""
    assert make(**TOKEN_AUTH, endpoint=endpoint).dcs_endpoint == endpoint.rstrip("/")


def test_endpoints_default_from_the_region() -> None:
    """With only a region, both endpoints follow Huawei Cloud's naming."""
    block = make(**IAM_AUTH, region="ap-southeast-1")
    assert block.dcs_endpoint == "https://dcs.ap-southeast-1.myhuaweicloud.com"
    assert block.iam_url == "https://iam.ap-southeast-1.myhuaweicloud.com"


def test_secrets_are_secret_str_and_never_in_repr() -> None:
    """Every secret field is a SecretStr and repr/str/dump-json of the block hide them."""
    for fields, secret in ((TOKEN_AUTH, TOKEN), (AKSK_AUTH, SECRET_KEY), (IAM_AUTH, PASSWORD)):
        block = make(**fields)
        shown = repr(block) + str(block) + block.model_dump_json()
        assert secret not in shown
    for name in ("token", "secret_key", "security_token", "iam_password"):
        assert DcsCredentials.model_fields[name].annotation == SecretStr | None


def test_get_client_and_get_async_client_use_the_block_settings() -> None:
    """Both clients talk to the block's endpoint and project with its auth and timeout."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"task_id": "t1", "status": "SUCCESS"})

    block = make(**TOKEN_AUTH, endpoint="https://dcs.test", timeout_seconds=12)
    with block.get_client(transport=httpx.MockTransport(handler)) as client:
        assert isinstance(client, DcsClient)
        assert client.show_migration_task("t1").succeeded
    assert isinstance(block.get_async_client(), AsyncDcsClient)
    assert str(seen[0].url) == f"https://dcs.test/v2/{PROJECT}/migration-task/t1"
    assert seen[0].headers["X-Auth-Token"] == TOKEN
    assert seen[0].extensions["timeout"]["read"] == 12


@pytest.mark.usefixtures("prefect_harness")
def test_save_and_load_round_trip_keeps_secrets_usable() -> None:
    """A saved block loads back equal, with its secret usable and hidden."""
    make(**AKSK_AUTH).save("round-trip", overwrite=True)
    loaded = DcsCredentials.load("round-trip")
    assert loaded.secret_key is not None
    assert loaded.secret_key.get_secret_value() == SECRET_KEY
    assert loaded.auth_method == "aksk"


def test_the_block_type_is_found_through_the_collections_entry_point() -> None:
    """A fresh process that never imports `blocks` still resolves the block type by its slug."""
    code = (
        "from prefect.blocks.core import Block;"
        "print(Block.get_block_class_from_key('dcs-credentials').__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().endswith("blocks.credentials")


def test_settings_from_the_environment_without_prefect() -> None:
    """DCS_* variables build the same validated settings, and importing them needs no Prefect."""
    code = (
        "import sys; from blocks.settings import DcsSettings;"
        "s = DcsSettings.from_env();"
        "print(s.auth_method, s.dcs_endpoint, 'prefect' in sys.modules)"
    )
    env = {
        "DCS_REGION": "cn-north-4", "DCS_PROJECT_ID": PROJECT,
        "DCS_ACCESS_KEY": "AK", "DCS_SECRET_KEY": SECRET_KEY, "PATH": "",
    }  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.split() == ["aksk", "https://dcs.cn-north-4.myhuaweicloud.com", "False"]


def test_settings_from_the_environment_name_a_bad_value() -> None:
    """A bad DCS_* value is a validation error that names the field."""
    with pytest.raises(ValidationError, match="endpoint"):
        DcsSettings.from_env({"DCS_ENDPOINT": "http://dcs.example.com", "DCS_TOKEN": "t",
                              "DCS_PROJECT_ID": PROJECT})  # fmt: skip


def test_a_pasted_line_break_is_trimmed_and_one_inside_is_refused() -> None:
    """Whitespace around a token goes; a control character inside is an error naming the field."""
    assert make(token=f"  {TOKEN}\n").token == SecretStr(TOKEN)
    with pytest.raises(ValidationError, match="token contains a control character") as caught:
        make(token=f"{TOKEN}\r\nX-Injected: 1")
    assert TOKEN not in str(caught.value)


def test_validation_errors_never_echo_the_input() -> None:
    """A refused block's error text holds no secret that was passed in."""
    with pytest.raises(ValidationError) as caught:
        make(**TOKEN_AUTH, **AKSK_AUTH, security_token="sts-canary-1")
    assert SECRET_KEY not in str(caught.value)
    assert "sts-canary-1" not in str(caught.value)
