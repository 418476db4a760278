"""A throw-away PostgreSQL cluster for end-to-end tests: `initdb` in a temporary directory.

Debian's `postgresql` package puts its binaries in /usr/lib/postgresql/<version>/bin (not
on PATH); the newest version found is used. The server listens on 127.0.0.1 only, on a free
port, with its Unix socket in the cluster's own directory (never /var/run/postgresql).
PostgreSQL refuses to run as root, so as root (CI) it runs as the `postgres` user that
Debian's package creates. It is stopped by its PID, also when a test fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import free_port

PG_ROOT = Path("/usr/lib/postgresql")
DATABASE = "prefect"


def postgres_bin() -> Path | None:
    """The bin directory of the newest PostgreSQL installed, or None."""
    found = [p for p in PG_ROOT.glob("*/bin") if (p / "postgres").is_file()]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())

    return max(found, key=version) if found else None


def _run_as() -> str | None:
    """The user to run PostgreSQL as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        msg = "running as root, PostgreSQL needs a 'postgres' user (apt-get install postgresql)"
        raise RuntimeError(msg) from None
    return "postgres"


@dataclass
class Postgres:
    """One cluster: its data directory, port, and the running `postgres` process."""

    bindir: Path
    directory: Path
    port: int
    user: str | None
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """What `PREFECT_API_DATABASE_CONNECTION_URL` takes (no password: trust on loopback)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), user=self.user, capture_output=True, text=True, timeout=120, check=check
        )

    def init(self) -> None:
        """`initdb` (superuser `postgres`, trust on loopback), then create the database."""
        data = self.directory / "data"
        self._cmd(
            str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()
        self._cmd(
            str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", DATABASE,
        )  # fmt: skip

    def start(self) -> None:
        """Start `postgres` and wait until it accepts connections."""
        output = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"), "-D", str(self.directory / "data"),
                "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.directory),
                # Throw-away data: no fsync; enough connections for a server and two workers.
                "-c", "fsync=off", "-c", "max_connections=200",
            ],
            user=self.user, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output.close()
        ready = str(self.bindir / "pg_isready")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"postgres exited with {self.process.returncode}:\n{self.log.read_text()}"
                raise AssertionError(msg)
            args = (ready, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
            if self._cmd(*args, check=False).returncode == 0:
                return
            time.sleep(0.2)
        msg = f"postgres did not accept connections within 60 s:\n{self.log.read_text()}"
        raise AssertionError(msg)

    def stop(self) -> None:
        """A "fast" shutdown (SIGINT: sessions are ended, as `pg_ctl stop` does), else SIGKILL."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@contextmanager
def running_postgres(logs: Path) -> Iterator[Postgres]:
    """A new cluster serving database `prefect` on 127.0.0.1; its log ends up in `logs`."""
    bindir = postgres_bin()
    if bindir is None:
        msg = f"no PostgreSQL in {PG_ROOT}: apt-get install postgresql (.ci/run does)"
        raise RuntimeError(msg)
    user = _run_as()
    # Not under pytest's tmp_path: its parents are private to root, and `postgres` must
    # reach its data directory.
    directory = Path(tempfile.mkdtemp(prefix="dcs-pg-"))
    cluster = Postgres(bindir, directory, free_port(), user, directory / "postgres.log")
    cluster.log.touch()
    if user is not None:
        shutil.chown(directory, user=user)
        shutil.chown(cluster.log, user=user)
    try:
        cluster.init()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.copy(cluster.log, logs / "postgres.log")
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["DATABASE", "Postgres", "postgres_bin", "running_postgres"]
