"""`DcsCredentials`: the Prefect block that holds how to reach DCS, and hands out clients."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from prefect.blocks.abstract import CredentialsBlock
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from blocks.client import AsyncDcsClient, DcsClient
from blocks.retry import RetryNotice, log_retry
from blocks.settings import DcsSettings

if TYPE_CHECKING:
    from flows.budget import ApiBudget


def log_retry_in_run(notice: RetryNotice) -> None:
    """Log a retry at INFO in the flow or task run it happens in; outside one, as the client does.

    The run is looked up at each retry, not when the client is built: a client opened in a
    flow and used in one of its tasks logs to that task run.
    """
    try:
        run_logger = get_run_logger()
    except MissingContextError:
        log_retry(notice)
        return
    log_retry(notice, run_logger, logging.INFO)


class DcsCredentials(CredentialsBlock, DcsSettings):
    """Where and how to reach Huawei Cloud DCS: endpoint, project and one way to authenticate.

    Set exactly one of: `token`; `access_key` + `secret_key` (+ `security_token` for a
    temporary key); or `iam_username` + `iam_password` + `iam_domain_name`, which obtains a
    project-scoped token from IAM and refreshes it before it expires.

    Its clients log each retry in the run log (INFO) when used inside a flow or task run,
    and pace every request by the project's API budget shared by all runs (`flows.budget`).
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
        options.setdefault("on_retry", log_retry_in_run)
        if "pace" not in options:
            options["pace"] = self._api_budget().pace
        # CredentialsBlock declares get_client abstract: name the settings' implementation.
        return DcsSettings.get_client(self, transport, **options)

    def get_async_client(
        self, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> AsyncDcsClient:
        """An `AsyncDcsClient` for this project; `transport` replaces the network (tests)."""
        options.setdefault("on_retry", log_retry_in_run)
        if "pace" not in options:
            options["pace"] = self._api_budget().apace
        return super().get_async_client(transport, **options)

    def _api_budget(self) -> ApiBudget:
        # Imported here: `flows` builds on `blocks`, and only a client needs the budget.
        from flows.budget import api_budget

        return api_budget(self.project_id)


__all__ = ["DcsCredentials", "log_retry_in_run"]
