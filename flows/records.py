"""The durable record of each address switch request, numbered per attempt, created create-only.

One migration task's IP exchange (or rollback) may be requested more than once on purpose:
after DCS refused a request (nothing was switched), or with `force=True`. Each request is
an *attempt* with a Prefect Variable of its own:

- attempt 1: `cutover_record_name(task_id, action)`, e.g.
  `dcs-cutover-exchange-ip-<sanitised id>-<8 hex of sha256(id)>`;
- attempt n >= 2: the same name with `--n` appended.

A run claims attempt n + 1 (n the latest attempt it found) with a create-only call. The
server's unique variable name makes that the one atomic step: of any number of runs that
read the same latest attempt and decide to request again, exactly one creates the next
record, and only that one sends the request. The others find it taken and refuse. Records
are never overwritten by another run's claim, only updated by the run that made them.

Records hold names, times and statuses, never a secret. They are never deleted by the
flows; to request again, pass `force=True` (it claims the next attempt). Deleting records
by hand restarts the numbering at the first missing name, so delete all of a task's records
or none (`prefect variable ls` lists them; they carry the tag `dcs-cutover`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectAlreadyExists

RECORD_PREFIX = "dcs-cutover"
RECORD_TAGS = ["dcs-cutover"]
#: Prefect caps a variable's value at 5,000 characters of JSON; a detail is cut to this.
MAX_DETAIL = 2000


class RecordState(str, Enum):
    """Where a request stands, as its record says."""

    #: Claimed; the request was sent or is about to be, and its outcome is not known.
    REQUESTED = "requested"
    #: DCS showed the switch done.
    SUCCEEDED = "succeeded"
    #: The switch ended badly, or did not start.
    FAILED = "failed"
    #: Refused before it acted (by DCS, its gateway or IAM): nothing was switched, so the
    #: next run may request again without `force`.
    REFUSED = "refused"
    #: A value this code did not write (edited by hand): still a reason not to request.
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, record: dict[str, Any]) -> RecordState:
        """The state a record's value says, UNKNOWN for anything else."""
        try:
            return cls(record.get("state"))
        except ValueError:
            return cls.UNKNOWN


def cutover_record_name(task_id: str, action: str = "exchange-ip", attempt: int = 1) -> str:
    """The name of the Prefect Variable that records attempt `attempt` of `action` for a task."""
    # Variable names allow only [a-z0-9_-]: the sanitised id keeps the name readable in the
    # UI, the hash keeps two ids that sanitise alike (case, punctuation) apart.
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:8]
    safe_action = re.sub(r"[^a-z0-9_-]+", "-", action.lower()).strip("-") or "action"
    safe_id = re.sub(r"[^a-z0-9_-]+", "-", task_id.lower()).strip("-")[:180] or "task"
    base = f"{RECORD_PREFIX}-{safe_action}-{safe_id}-{digest}"
    return base if attempt == 1 else f"{base}--{attempt}"


@dataclass(frozen=True)
class Record:
    """One attempt's record: its number, its variable's name, and its value."""

    attempt: int
    name: str
    value: dict[str, Any]

    @property
    def state(self) -> RecordState:
        return RecordState.of(self.value)


@dataclass(frozen=True)
class CutoverRecords:
    """The records of one action on one task, on the Prefect server `prefect` talks to."""

    prefect: PrefectClient
    task_id: str
    action: str

    def name(self, attempt: int) -> str:
        return cutover_record_name(self.task_id, self.action, attempt)

    async def read(self, attempt: int) -> Record | None:
        variable = await self.prefect.read_variable_by_name(self.name(attempt))
        if variable is None:
            return None
        value = variable.value
        # Edited by hand into something else: still a record, so still a reason not to POST.
        kept = dict(value) if isinstance(value, dict) else {"state": "unknown", "value": value}
        return Record(attempt, self.name(attempt), kept)

    async def latest(self) -> Record | None:
        """The record of the highest attempt, or None if the action was never recorded."""
        found = None
        attempt = 1
        while (record := await self.read(attempt)) is not None:
            found = record
            attempt += 1
        return found

    async def claim(self, attempt: int, value: dict[str, Any]) -> Record | None:
        """Create attempt `attempt`'s record; None if another run created it first."""
        record = Record(attempt, self.name(attempt), {**value, "attempt": attempt})
        try:
            await self.prefect.create_variable(
                VariableCreate(name=record.name, value=record.value, tags=RECORD_TAGS)
            )
        except ObjectAlreadyExists:
            return None
        return record

    async def update(self, record: Record, **changes: Any) -> Record:
        """Write `changes` into a record this run claimed (or found and follows)."""
        value = {**record.value, **changes}
        if isinstance(value.get("detail"), str):
            value["detail"] = value["detail"][:MAX_DETAIL]
        updated = Record(record.attempt, record.name, value)
        if await self.prefect.read_variable_by_name(record.name) is None:
            # A record this run made up to describe what it found on DCS: create-only, so
            # one that another run created meanwhile is never overwritten (that raises
            # ObjectAlreadyExists).
            await self.prefect.create_variable(
                VariableCreate(name=record.name, value=value, tags=RECORD_TAGS)
            )
        else:
            await self.prefect.update_variable(
                VariableUpdate(name=record.name, value=value, tags=RECORD_TAGS)
            )
        return updated


__all__ = [
    "MAX_DETAIL",
    "RECORD_PREFIX",
    "RECORD_TAGS",
    "CutoverRecords",
    "Record",
    "RecordState",
    "cutover_record_name",
]
