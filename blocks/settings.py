"""`DcsSettings`: how to reach DCS (endpoint, project, one way to authenticate), without Prefect.

`blocks.credentials.DcsCredentials` is the same model as a Prefect block; this plain one
serves code that must not import Prefect, like the `dcs-migrate status` command reading
`DCS_*` environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from blocks.auth import AkSkAuth, IamPasswordAuth, TokenAuth
from blocks.client import DEFAULT_TIMEOUT_SECONDS, AsyncDcsClient, DcsClient
from blocks.endpoint import check_endpoint
from blocks.errors import DcsValidationError
from blocks.tls import parse_verify

AuthMethod = Literal["token", "aksk", "iam_password"]
#: Environment variables read by `DcsSettings.from_env`: `DCS_` + the field name, upper-case.
ENV_PREFIX = "DCS_"

_AUTH_FIELDS: dict[AuthMethod, tuple[str, ...]] = {
    "token": ("token",),
    "aksk": ("access_key", "secret_key"),
    "iam_password": ("iam_username", "iam_password", "iam_domain_name"),
}
# Fields that belong to one method but are optional within it.
_OPTIONAL_AUTH_FIELDS: dict[str, AuthMethod] = {
    "security_token": "aksk",
    "iam_endpoint": "iam_password",
}


#: Validation context of `from_env`: errors then name the variable, e.g. `DCS_VERIFY`.
_FROM_ENV = {"source": "environment"}


def _label(info: ValidationInfo) -> str:
    """The field's name as the user set it: `verify`, or `DCS_VERIFY` from the environment."""
    name = str(info.field_name)
    if info.context == _FROM_ENV:
        return f"{ENV_PREFIX}{name.upper()}"
    return name


class DcsSettings(BaseModel):
    """Where and how to reach Huawei Cloud DCS: endpoint, project and one way to authenticate.

    Set exactly one of: `token`; `access_key` + `secret_key` (+ `security_token` for a
    temporary key); or `iam_username` + `iam_password` + `iam_domain_name`, which obtains a
    project-scoped token from IAM and refreshes it before it expires.
    """

    endpoint: str | None = Field(
        default=None,
        description=(
            "DCS API endpoint, e.g. https://dcs.cn-north-4.myhuaweicloud.com. "
            "Leave empty to derive it from the region."
        ),
    )
    region: str | None = Field(
        default=None,
        description="Huawei Cloud region, e.g. cn-north-4; sets the default endpoints.",
    )
    project_id: str = Field(
        description="ID of the project that owns the migration tasks (IAM > Projects).",
    )
    token: SecretStr | None = Field(
        default=None,
        description="An IAM token, sent as X-Auth-Token. It expires after 24 hours.",
    )
    access_key: str | None = Field(
        default=None, description="Access key ID (AK) for SDK-HMAC-SHA256 request signing."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Secret access key (SK) that goes with the access key."
    )
    security_token: SecretStr | None = Field(
        default=None,
        description="Security token of a temporary access key, sent as X-Security-Token.",
    )
    iam_username: str | None = Field(
        default=None, description="IAM user name, to obtain tokens with a password."
    )
    iam_password: SecretStr | None = Field(default=None, description="Password of the IAM user.")
    iam_domain_name: str | None = Field(
        default=None, description="Account (domain) name that the IAM user belongs to."
    )
    iam_endpoint: str | None = Field(
        default=None,
        description="IAM endpoint; defaults to https://iam.{region}.myhuaweicloud.com.",
    )
    verify: bool | str = Field(
        default=True,
        description=(
            "Verify TLS certificates: true or false (also yes/no, on/off, 1/0), or the path "
            "of a CA bundle file or directory."
        ),
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        description="Timeout of each HTTP request, in seconds.",
    )

    _auth: httpx.Auth | None = PrivateAttr(default=None)

    # A validation error must never echo what was typed: it may be a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    @field_validator(
        "token", "access_key", "secret_key", "security_token", "iam_username", "iam_domain_name"
    )
    @classmethod
    def _one_clean_line(cls, value: Any, info: ValidationInfo) -> Any:
        # A pasted token often ends in a line break; inside an HTTP header that is refused,
        # and the refusal would quote the header, token and all.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        stripped = text.strip()
        if any(ord(char) < 32 or ord(char) == 127 for char in stripped):
            msg = f"{info.field_name} contains a control character (a line break?); set it again"
            raise ValueError(msg)
        return SecretStr(stripped) if isinstance(value, SecretStr) else stripped

    @field_validator("project_id")
    @classmethod
    def _project_id_is_set(cls, value: str) -> str:
        value = value.strip()
        if not value:
            msg = "project_id is empty; set the ID of the project that owns the migration tasks"
            raise ValueError(msg)
        return value

    @field_validator("endpoint", "iam_endpoint")
    @classmethod
    def _endpoint_is_safe(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        return check_endpoint(_label(info), value)

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_is_a_bool_or_a_bundle(cls, value: Any, info: ValidationInfo) -> Any:
        # Text comes from DCS_VERIFY or the block form; httpx would take "false" for a path.
        return parse_verify(value, _label(info)) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        chosen = [method for method, fields in _AUTH_FIELDS.items() if self._has_any(fields)]
        if not chosen:
            msg = (
                "no credentials set: set `token`, or `access_key` and `secret_key`, or "
                "`iam_username`, `iam_password` and `iam_domain_name`"
            )
            raise ValueError(msg)
        if len(chosen) > 1:
            names = " and ".join(f"`{m}` ({', '.join(_AUTH_FIELDS[m])})" for m in chosen)
            msg = f"more than one way to authenticate is set: {names}; keep exactly one"
            raise ValueError(msg)
        method = chosen[0]
        missing = [name for name in _AUTH_FIELDS[method] if not self._is_set(name)]
        if missing:
            msg = f"`{missing[0]}` is required with the {method} method (set {', '.join(missing)})"
            raise ValueError(msg)
        for name, owner in _OPTIONAL_AUTH_FIELDS.items():
            if self._is_set(name) and owner != method:
                msg = f"`{name}` belongs to the {owner} method, but {method} is the one set"
                raise ValueError(msg)
        if self.endpoint is None and not self.region:
            msg = "set `endpoint` (e.g. https://dcs.cn-north-4.myhuaweicloud.com) or `region`"
            raise ValueError(msg)
        if method == "iam_password" and self.iam_endpoint is None and not self.region:
            msg = "set `iam_endpoint` or `region` to obtain tokens from IAM"
            raise ValueError(msg)
        return self

    def _is_set(self, name: str) -> bool:
        value = getattr(self, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return bool(value)

    def _has_any(self, names: tuple[str, ...]) -> bool:
        return any(self._is_set(name) for name in names)

    @property
    def auth_method(self) -> AuthMethod:
        """Which of the three ways to authenticate this block uses."""
        for method, fields in _AUTH_FIELDS.items():
            if self._has_any(fields):
                return method
        msg = "no credentials set"  # unreachable once validated
        raise DcsValidationError(msg)

    @property
    def dcs_endpoint(self) -> str:
        """The endpoint in use: `endpoint`, or the region's default."""
        return self.endpoint or f"https://dcs.{self.region}.myhuaweicloud.com"

    @property
    def iam_url(self) -> str:
        """The IAM endpoint in use: `iam_endpoint`, or the region's default."""
        return self.iam_endpoint or f"https://iam.{self.region}.myhuaweicloud.com"

    def auth(self) -> httpx.Auth:
        """The `httpx.Auth` for this block, built once so that clients share an IAM token."""
        if self._auth is None:
            self._auth = self._build_auth()
        return self._auth

    def _build_auth(self) -> httpx.Auth:
        method = self.auth_method
        if method == "token" and self.token is not None:
            return TokenAuth(self.token)
        if method == "aksk" and self.access_key and self.secret_key is not None:
            return AkSkAuth(
                self.access_key,
                self.secret_key,
                project_id=self.project_id,
                security_token=self.security_token,
            )
        if (
            method == "iam_password"
            and self.iam_username
            and self.iam_password is not None
            and self.iam_domain_name
        ):
            return IamPasswordAuth(
                self.iam_username,
                self.iam_password,
                self.iam_domain_name,
                project_id=self.project_id,
                iam_endpoint=self.iam_url,
            )
        msg = f"incomplete credentials for the {method} method"  # unreachable once validated
        raise DcsValidationError(msg)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Settings from `DCS_ENDPOINT`, `DCS_PROJECT_ID`, `DCS_TOKEN`, ...: `DCS_` + field name."""
        env = os.environ if environ is None else environ
        values = {
            name: env[f"{ENV_PREFIX}{name.upper()}"]
            for name in cls.model_fields
            if env.get(f"{ENV_PREFIX}{name.upper()}")
        }
        return cls.model_validate(values, context=_FROM_ENV)

    def get_client(self, transport: httpx.BaseTransport | None = None, **options: Any) -> DcsClient:
        """A `DcsClient` for this project; `transport` replaces the network (tests)."""
        return DcsClient(
            self.dcs_endpoint,
            self.project_id,
            self.auth(),
            timeout=self.timeout_seconds,
            verify=self.verify,
            transport=transport,
            **options,
        )

    def get_async_client(
        self, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> AsyncDcsClient:
        """An `AsyncDcsClient` for this project; `transport` replaces the network (tests)."""
        return AsyncDcsClient(
            self.dcs_endpoint,
            self.project_id,
            self.auth(),
            timeout=self.timeout_seconds,
            verify=self.verify,
            transport=transport,
            **options,
        )


__all__ = ["ENV_PREFIX", "AuthMethod", "DcsSettings", "check_endpoint"]
