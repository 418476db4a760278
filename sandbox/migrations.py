"""The routes that create, configure, stop, delete and restart migration tasks.

A task created online is RUNNING ("pending configuration") until it is configured; then
it lives the scenario's `new_tasks` life: RUNNING a little longer, FULLMIGRATING, then
INCRMIGEATING (incremental) or SUCCESS (full). A backup import is MIGRATING, then SUCCESS.
Stops, deletions and restarts are recorded in the state like the other routes' actions.

>>> from sandbox.scenario import NewTaskScript
>>> [(s.status, s.seconds) for s in started_steps("full_amount_migration", 10.0, NewTaskScript())]
[('RUNNING', 12.0), ('FULLMIGRATING', 30.0), ('SUCCESS', None)]
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox import task_requests as read
from sandbox.bodies import dcs_date
from sandbox.handlers import BAD_REQUEST, TASK_NOT_FOUND, ApiError, Call
from sandbox.lifecycle import MIGRATING_STATUSES, TERMINAL_STATUSES, TaskSnapshot
from sandbox.scenario import (
    BackupFiles,
    Instance,
    MigrationScript,
    NewTaskScript,
    Scenario,
    Step,
)
from sandbox.state import SandboxState

METHODS = ("full_amount_migration", "incremental_migration")
RESUME_MODES = ("auto", "manual")
#: What a batch restart may restart: online tasks that were stopped or failed.
RESTARTABLE_STATUSES = frozenset({"TERMINATED", "FAILED", "MIGRATION_FAILED", "ERROR"})
#: The most tasks one batch restart may name (the API reference).
MAX_RESTART = 50


def started_steps(method: str, at: float, new: NewTaskScript) -> list[Step]:
    """The steps of an online migration started (configured, restarted) at `at`: what
    came before is RUNNING, as far as these steps tell."""
    last = "INCRMIGEATING" if method == "incremental_migration" else "SUCCESS"
    return [
        Step(status="RUNNING", seconds=at + new.pending_seconds),
        Step(status="FULLMIGRATING", seconds=new.full_seconds, progress_to=100),
        Step(status=last),
    ]


def _accepted(script: MigrationScript, snap: TaskSnapshot) -> dict[str, Any]:
    return {"id": script.task_id, "name": script.task_name, "status": snap.status}


def _result(task_id: str, error: ApiError | None = None) -> dict[str, Any]:
    if error is None:
        return {"result": "success", "task_id": task_id, "error_msg": None, "error_code": None}
    return {
        "result": "failed",
        "task_id": task_id,
        "error_msg": error.message,
        "error_code": error.code,
    }


class MigrationHandlers:
    """The handlers of the routes that change tasks, bound to one scenario and its state."""

    def __init__(self, scenario: Scenario, state: SandboxState) -> None:
        self.scenario = scenario
        self.state = state

    def _live(self, task_id: str) -> tuple[MigrationScript, TaskSnapshot]:
        script = self.state.script(task_id)
        snap = None if script is None else self.state.task(task_id)
        if script is None or snap is None or snap.deleted:
            project = self.scenario.project_id
            msg = f"migration task {task_id!r} does not exist in project {project!r}"
            raise ApiError(400, TASK_NOT_FOUND, msg)
        return script, snap

    def _created_at(self) -> tuple[float, dict[str, Any]]:
        now = self.state.elapsed
        return now, {"created_at": dcs_date(self.state.origin, now)}

    async def create_online(self, request: Request, call: Call) -> Response:
        body = read.json_object(await request.body())
        name = read.text(body, "name")
        description = read.text(body, "description", required=False) or ""
        network = {
            f"tenant_{field}": read.text(body, field)
            for field in ("vpc_id", "subnet_id", "security_group_id")
        }
        _, created = self._created_at()
        task_id = uuid.uuid4().hex
        self.state.play(
            MigrationScript(
                task_id=task_id,
                task_name=name or "",
                description=description,
                migration_method=None,
                source_instance=None,
                target_instance=Instance(task_status=None, proxy_multi_db=None, db=None),
                bandwidth_limit_mb=None,
                steps=[Step(status="RUNNING")],
                extra_fields={**created, **network},
            )
        )
        call.task_id = task_id
        return JSONResponse({"instance_id": task_id})

    async def configure_online(self, request: Request, call: Call) -> Response:
        script, _ = self._live(request.path_params["task_id"])
        body = read.json_object(await request.body())
        method = read.choice(body, "migration_method", METHODS)
        resume_mode = read.choice(body, "resume_mode", RESUME_MODES)
        limit = read.bandwidth(body)
        source = read.instance(body, "source_instance", self.scenario)
        target = read.instance(body, "target_instance", self.scenario)
        if script.migration_type != "online_migration" or script.migration_method is not None:
            msg = f"migration task {script.task_id!r} is already configured"
            raise ApiError(400, BAD_REQUEST, msg)
        now = self.state.elapsed
        configured = script.model_copy(
            update={
                "migration_method": method,
                "source_instance": source,
                "target_instance": target,
                "bandwidth_limit_mb": limit,
                "steps": started_steps(method, now, self.scenario.new_tasks),
                "extra_fields": {**script.extra_fields, "resume_mode": resume_mode},
            }
        )
        self.state.play(configured)
        return JSONResponse(_accepted(configured, self.state.task(script.task_id)))

    async def create_task(self, request: Request, call: Call) -> Response:
        body = read.json_object(await request.body())
        name = read.text(body, "task_name") or ""
        description = read.text(body, "description", required=False) or ""
        kind = read.choice(body, "migration_type", ("backupfile_import", "online_migration"))
        method = read.choice(body, "migration_method", METHODS)
        target = read.instance(body, "target_instance", self.scenario, by_id_only=True)
        now, created = self._created_at()
        fields: dict[str, Any] = {
            "task_id": uuid.uuid4().hex,
            "task_name": name,
            "description": description,
            "migration_type": kind,
            "migration_method": method,
            "target_instance": target,
            "extra_fields": created,
        }
        if kind == "backupfile_import":
            files = BackupFiles.model_validate(read.backup_files(body))
            import_seconds = self.scenario.new_tasks.import_seconds
            fields |= {
                "source_instance": None,
                "backup_files": files,
                "steps": [
                    Step(status="RUNNING", seconds=now),
                    Step(status="MIGRATING", seconds=import_seconds, progress_to=100),
                    Step(status="SUCCESS"),
                ],
            }
        else:
            network = read.choice(body, "network_type", ("vpc", "vpn"))
            source = read.instance(body, "source_instance", self.scenario)
            steps = started_steps(method, now, self.scenario.new_tasks)
            fields |= {"source_instance": source, "network_type": network, "steps": steps}
        script = MigrationScript.model_validate(fields)
        self.state.play(script)
        call.task_id = script.task_id
        return JSONResponse(_accepted(script, self.state.task(script.task_id)))

    async def sync_stop(self, request: Request, call: Call) -> Response:
        script, snap = self._live(request.path_params["task_id"])
        if snap.status in TERMINAL_STATUSES:
            msg = f"migration task {script.task_id!r} is already {snap.status}"
            raise ApiError(400, BAD_REQUEST, msg)
        self.state.request_stop(script.task_id, self.state.elapsed, waited=True)
        return Response(status_code=204)

    async def delete(self, request: Request, call: Call) -> Response:
        body = read.json_object(await request.body())
        task_ids = read.id_list(body, "task_id_list")
        for task_id in task_ids:
            _, snap = self._live(task_id)
            if snap.status in MIGRATING_STATUSES or snap.status == "TERMINATING":
                msg = f"migration task {task_id!r} is {snap.status}: stop it before deleting it"
                raise ApiError(400, BAD_REQUEST, msg)
        now = self.state.elapsed
        for task_id in task_ids:
            self.state.delete(task_id, now)
        return JSONResponse({"task_id_list": task_ids})

    async def batch_stop(self, request: Request, call: Call) -> Response:
        body = read.json_object(await request.body())
        results = []
        for task_id in read.id_list(body, "migration_tasks"):
            try:
                script, snap = self._live(task_id)
                if snap.status in TERMINAL_STATUSES:
                    msg = f"migration task {task_id!r} is already {snap.status}"
                    raise ApiError(400, BAD_REQUEST, msg)
            except ApiError as error:
                results.append(_result(task_id, error))
                continue
            self.state.request_stop(script.task_id, self.state.elapsed)
            results.append(_result(task_id))
        return JSONResponse({"migration_tasks": results})

    async def batch_restart(self, request: Request, call: Call) -> Response:
        body = read.json_object(await request.body())
        results = []
        for task_id in read.id_list(body, "migration_tasks", limit=MAX_RESTART):
            try:
                script, snap = self._live(task_id)
                self._check_restartable(script, snap)
            except ApiError as error:
                results.append(_result(task_id, error))
                continue
            steps = started_steps(
                script.migration_method or METHODS[1], self.state.elapsed, self.scenario.new_tasks
            )
            self.state.play(script.model_copy(update={"steps": steps}), restart=True)
            results.append(_result(task_id))
        return JSONResponse({"migration_tasks": results})

    @staticmethod
    def _check_restartable(script: MigrationScript, snap: TaskSnapshot) -> None:
        if script.migration_type != "online_migration":
            msg = f"migration task {script.task_id!r} is a {script.migration_type}, not online"
            raise ApiError(400, BAD_REQUEST, msg)
        if snap.status not in RESTARTABLE_STATUSES:
            msg = (
                f"migration task {script.task_id!r} is {snap.status}: only a stopped or "
                "failed online migration restarts"
            )
            raise ApiError(400, BAD_REQUEST, msg)


__all__ = ["MAX_RESTART", "METHODS", "RESTARTABLE_STATUSES", "MigrationHandlers", "started_steps"]
