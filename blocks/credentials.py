"""`DcsCredentials`: the Prefect block that holds how to reach DCS, and hands out clients."""

from __future__ import annotations

from typing import Any

import httpx
from prefect.blocks.abstract import CredentialsBlock

from blocks.client import DcsClient
from blocks.settings import DcsSettings


class DcsCredentials(CredentialsBlock, DcsSettings):
    """Where and how to reach Huawei Cloud DCS: endpoint, project and one way to authenticate.

    Set exactly one of: `token`; `access_key` + `secret_key` (+ `security_token` for a
    temporary key); or `iam_username` + `iam_password` + `iam_domain_name`, which obtains a
    project-scoped token from IAM and refreshes it before it expires.
    """

    _block_type_name = "DCS Credentials"
    _block_type_slug = "dcs-credentials"
    _documentation_url = "https://support.huaweicloud.com/intl/en-us/api-dcs/dcs-api-0312045.html"  # type: ignore[assignment]
    _code_example = """
    ```python
    from blocks import DcsCredentials

    dcs_credentials = DcsCredentials.load("BLOCK_NAME")
    with dcs_credentials.get_client() as client:
        task = client.show_migration_task("a276c1ffa0a54c2597fc824b917db317")
    ```
    """

    def get_client(self, transport: httpx.BaseTransport | None = None, **options: Any) -> DcsClient:
        """A `DcsClient` for this project; `transport` replaces the network (tests)."""
        # CredentialsBlock declares get_client abstract: name the settings' implementation.
        return DcsSettings.get_client(self, transport, **options)


__all__ = ["DcsCredentials"]
