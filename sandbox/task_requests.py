"""Reading the bodies of the calls that create and configure tasks, as DCS checks them.

Every refusal is the DCS error shape the sandbox already sends: HTTP 400 with
"Invalid {field} in the request" (DCS.4800) naming the field, or DCS.4000 for a body
that is not a JSON object. Passwords are never quoted in a refusal.

>>> fields = json_object(b'{"resume_mode": "sometimes"}')
>>> try:
...     choice(fields, "resume_mode", ("auto", "manual"))
... except ApiError as error:
...     print(error.code, error.message)
DCS.4800 Invalid resume_mode in the request: 'sometimes' is not one of auto, manual
"""

from __future__ import annotations

import json
import re
from typing import Any

from sandbox.handlers import BAD_REQUEST, INVALID_PARAMETER, ApiError
from sandbox.scenario import Instance, Scenario

#: `bandwidth_limit_mb`, in MB/s, as the API reference bounds it.
MAX_BANDWIDTH_MB = 10240
_HOST_PORT = re.compile(r"[^\s:,]+:\d{1,5}")


def invalid(field: str, problem: str) -> ApiError:
    """DCS's "Invalid {0} in the request." refusal, naming `field`."""
    return ApiError(400, INVALID_PARAMETER, f"Invalid {field} in the request: {problem}")


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 DCS.4000."""
    try:
        body: object = json.loads(raw)
    except ValueError:
        raise ApiError(400, BAD_REQUEST, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, BAD_REQUEST, "the request body must be a JSON object")
    return body


def text(body: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    """A string field: required ones must be present and not blank."""
    value = body.get(field)
    if value is None and not required:
        return None
    if value is None:
        raise invalid(field, "it is required")
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(field, f"expected a non-empty string, got {value!r}")
    return value


def choice(body: dict[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    """A required field holding one of `allowed`."""
    value = body.get(field)
    if value is None:
        raise invalid(field, f"it is required (one of {', '.join(allowed)})")
    if value not in allowed:
        raise invalid(field, f"{value!r} is not one of {', '.join(allowed)}")
    return str(value)


def bandwidth(body: dict[str, Any]) -> str | None:
    """`bandwidth_limit_mb`: absent, or a whole number of MB/s (a string, as the SDK sends
    it, or a number) from 1 to 10240."""
    value = body.get("bandwidth_limit_mb")
    if value is None:
        return None
    digits = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_BANDWIDTH_MB:
        raise invalid("bandwidth_limit_mb", f"{value!r} is not a whole number 1-{MAX_BANDWIDTH_MB}")
    return digits


def instance(
    body: dict[str, Any], field: str, scenario: Scenario, *, by_id_only: bool = False
) -> Instance:
    """A source or target: a known DCS instance by `id`, or any Redis by `addrs`."""
    value = body.get(field)
    if value is None:
        raise invalid(field, "it is required")
    if not isinstance(value, dict):
        raise invalid(field, "expected an object with id or addrs")
    password = value.get("password")
    if password is not None and not isinstance(password, str):
        raise invalid(f"{field}.password", "expected a string")
    instance_id, addrs = value.get("id"), value.get("addrs")
    if by_id_only and instance_id is None:
        raise invalid(f"{field}.id", "it is required: name the DCS instance by id")
    if (instance_id is None) == (addrs is None):
        raise invalid(field, "give exactly one of id (a DCS instance) or addrs (host:port)")
    if instance_id is not None:
        known = scenario.instance(instance_id) if isinstance(instance_id, str) else None
        if known is None:
            raise invalid(f"{field}.id", f"no DCS instance {instance_id!r} in this project")
        return known.model_copy(update={"password": password})
    if not isinstance(addrs, str) or not all(
        _HOST_PORT.fullmatch(part.strip()) for part in addrs.split(",")
    ):
        raise invalid(f"{field}.addrs", f"{addrs!r} is not host:port")
    host, _, port = addrs.split(",")[0].strip().rpartition(":")
    return Instance(addrs=addrs, ip=host, port=port, password=password, name=None)


def id_list(body: dict[str, Any], field: str, *, limit: int | None = None) -> list[str]:
    """A required, non-empty list of task ids (at most `limit`)."""
    value = body.get(field)
    if value is None:
        raise invalid(field, "it is required")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise invalid(field, "expected a non-empty list of task ids")
    if limit is not None and len(value) > limit:
        raise invalid(field, f"{len(value)} tasks; at most {limit} per request")
    return list(value)


def backup_files(body: dict[str, Any]) -> dict[str, Any]:
    """`backup_files` of an import: OBS bucket files, or a backup record."""
    value = body.get("backup_files")
    if not isinstance(value, dict):
        raise invalid("backup_files", "it is required for backupfile_import")
    source = choice(value, "file_source", ("self_build_obs", "backup_record"))
    if source == "backup_record":
        return {"file_source": source, "backup_id": text(value, "backup_id")}
    bucket = text(value, "bucket_name")
    files = value.get("files")
    if not isinstance(files, list) or not files:
        raise invalid("backup_files.files", "expected a non-empty list of files")
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("file_name"), str):
            raise invalid("backup_files.files", "each file needs a file_name")
    return {"file_source": source, "bucket_name": bucket, "files": files}


__all__ = [
    "MAX_BANDWIDTH_MB",
    "backup_files",
    "bandwidth",
    "choice",
    "id_list",
    "instance",
    "invalid",
    "json_object",
    "text",
]
