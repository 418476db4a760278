"""How to reach Huawei Cloud DCS: the credentials block, the client, models and errors.

Names are loaded on first use, so `import blocks.client` (or `from blocks import
DcsClient`) does not pay for importing Prefect; only `DcsCredentials` needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks._lazy import lazy_attributes
from blocks._version import __version__

if TYPE_CHECKING:
    from blocks.auth import AkSkAuth, IamPasswordAuth, TokenAuth
    from blocks.client import AsyncDcsClient, DcsClient
    from blocks.credentials import DcsCredentials
    from blocks.errors import (
        CutoverAlreadyRequested,
        CutoverError,
        CutoverFailed,
        CutoverGateTimeout,
        CutoverRejected,
        DcsApiError,
        DcsAuthError,
        DcsBusyError,
        DcsError,
        DcsNotFoundError,
        DcsRateLimitedError,
        DcsServerError,
        DcsTransportError,
        DcsUnexpectedResponse,
        DcsValidationError,
        MigrationError,
        MigrationFailed,
        MigrationNotConfigured,
        MigrationTaskNotFound,
        MigrationTimeout,
        MigrationUnreachable,
        NotificationError,
    )
    from blocks.models import MigrationStatus, MigrationTask
    from blocks.retry import RetryPolicy
    from blocks.settings import DcsSettings

_LAZY = {
    "AkSkAuth": "blocks.auth",
    "IamPasswordAuth": "blocks.auth",
    "TokenAuth": "blocks.auth",
    "AsyncDcsClient": "blocks.client",
    "DcsClient": "blocks.client",
    "DcsCredentials": "blocks.credentials",
    "DcsSettings": "blocks.settings",
    "DcsApiError": "blocks.errors",
    "NotificationError": "blocks.errors",
    "MigrationUnreachable": "blocks.errors",
    "CutoverFailed": "blocks.errors",
    "CutoverGateTimeout": "blocks.errors",
    "CutoverRejected": "blocks.errors",
    "CutoverError": "blocks.errors",
    "CutoverAlreadyRequested": "blocks.errors",
    "DcsAuthError": "blocks.errors",
    "DcsBusyError": "blocks.errors",
    "DcsError": "blocks.errors",
    "DcsNotFoundError": "blocks.errors",
    "DcsRateLimitedError": "blocks.errors",
    "DcsServerError": "blocks.errors",
    "DcsTransportError": "blocks.errors",
    "DcsUnexpectedResponse": "blocks.errors",
    "DcsValidationError": "blocks.errors",
    "MigrationError": "blocks.errors",
    "MigrationFailed": "blocks.errors",
    "MigrationNotConfigured": "blocks.errors",
    "MigrationTaskNotFound": "blocks.errors",
    "MigrationTimeout": "blocks.errors",
    "MigrationStatus": "blocks.models",
    "MigrationTask": "blocks.models",
    "RetryPolicy": "blocks.retry",
}


__getattr__, __dir__ = lazy_attributes("blocks", _LAZY, globals())


__all__ = [
    "AkSkAuth",
    "AsyncDcsClient",
    "CutoverAlreadyRequested",
    "CutoverError",
    "CutoverFailed",
    "CutoverGateTimeout",
    "CutoverRejected",
    "DcsApiError",
    "DcsAuthError",
    "DcsBusyError",
    "DcsClient",
    "DcsCredentials",
    "DcsError",
    "DcsNotFoundError",
    "DcsRateLimitedError",
    "DcsServerError",
    "DcsSettings",
    "DcsTransportError",
    "DcsUnexpectedResponse",
    "DcsValidationError",
    "IamPasswordAuth",
    "MigrationError",
    "MigrationFailed",
    "MigrationNotConfigured",
    "MigrationStatus",
    "MigrationTask",
    "MigrationTaskNotFound",
    "MigrationTimeout",
    "MigrationUnreachable",
    "NotificationError",
    "RetryPolicy",
    "TokenAuth",
    "__version__",
]
