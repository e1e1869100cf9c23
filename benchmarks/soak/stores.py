"""Throwaway PostgreSQL and Redis servers that the soak suite may stop and start at will.

The machine's own servers (5432, 6379) are never touched: each store here runs on a free
loopback port from a scratch directory, and is deleted when the suite ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from scripts.assistant_servers import free_port

# PostgreSQL refuses to run as root; the Debian package's system user runs it instead.
POSTGRES_SYSTEM_USER = "postgres"


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (initdb, pg_ctl are not on Debian's PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version_of)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise FileNotFoundError("PostgreSQL's pg_ctl was not found (Debian: apt install postgresql)")


def version_of(path: str) -> int:
    parts = Path(path).parts
    return int(parts[-3]) if parts[-3].isdigit() else 0


def as_postgres_user(command: list[str]) -> list[str]:
    """The command itself, or run as the postgres user when the suite runs as root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--", *command]


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (initdb), trust auth on 127.0.0.1 only."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        command = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), *args]
        subprocess.run(as_postgres_user(command), check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, user=POSTGRES_SYSTEM_USER)
        initdb = [str(postgres_bin_dir() / "initdb"), "-D", str(self.data_dir)]
        initdb += ["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        subprocess.run(as_postgres_user(initdb), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Starts the server and waits until it accepts connections (pg_ctl -w)."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
        options += " -c max_connections=300 -c fsync=off"
        self.pg_ctl("-w", "-l", str(self.directory / "postgres.log"), "-o", options, "start")

    def stop(self) -> None:
        """Stops at once, closing every client's connection, as a crash or restart would."""
        self.pg_ctl("-w", "-m", "fast", "stop")

    def is_running(self) -> bool:
        status = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "status"]
        return subprocess.run(as_postgres_user(status), capture_output=True).returncode == 0


@dataclass
class ThrowawayRedis:
    """A redis-server of its own on 127.0.0.1 that keeps nothing on disk."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command,
            stdout=(self.directory / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)


def wait_for_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stores_available() -> str | None:
    """Why the throwaway stores cannot run here, or None when they can."""
    try:
        postgres_bin_dir()
    except FileNotFoundError as error:
        return str(error)
    if not shutil.which("redis-server"):
        return "redis-server is not installed (Debian: apt install redis-server)"
    return None


@contextlib.contextmanager
def throwaway_stores() -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis]]:
    """A started PostgreSQL cluster and Redis server, removed with their files afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="hsg-soak-stores-"))
    # The postgres user (PostgreSQL refuses root) must reach its data directory inside.
    os.chmod(directory, 0o755)  # noqa: S103 - holds no secrets, only throwaway data
    postgres = ThrowawayPostgres(directory / "postgres")
    redis = ThrowawayRedis(directory)
    try:
        postgres.create()
        postgres.start()
        redis.start()
        yield postgres, redis
    finally:
        redis.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            if postgres.is_running():
                postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)
