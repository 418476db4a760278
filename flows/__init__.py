"""Prefect tasks and flows for DCS data migrations."""

from flows.credentials import DEFAULT_BLOCK_NAME, aload_credentials, load_credentials
from flows.tasks import fetch_migration_task

__all__ = ["DEFAULT_BLOCK_NAME", "aload_credentials", "fetch_migration_task", "load_credentials"]
