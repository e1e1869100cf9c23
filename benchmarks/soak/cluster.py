"""The servers the soak suite drives: two Rasa and two action servers on production endpoints.

Everything runs on loopback: a throwaway PostgreSQL cluster holds the requests and the
conversations, a throwaway Redis the locks, rate-limit counters and socket.io rooms, and the
web app (public page and staff area) reads the same databases. Any server can be killed and
started again on its own port, which is what the fault scenarios do.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.soak.stores import ThrowawayPostgres, ThrowawayRedis, throwaway_stores
from scripts.assistant_servers import (
    REPO_ROOT,
    TEST_RASA_API_TOKEN,
    TEST_TWILIO_AUTH_TOKEN,
    WEB_TEST_ORIGIN,
    assistant_environment,
    create_staff_account,
    free_port,
    launch_action_server,
    launch_rasa_server,
    launch_web_app,
    migrate,
    production_endpoint_environment,
    require_model,
    stop_processes,
    wait_until_up,
)

STAFF_USERNAME = "soak-staff"
PRODUCTION_ENDPOINTS = REPO_ROOT / "endpoints.production.yml"


@dataclass
class Server:
    """One server process that can be killed and started again on the same port."""

    name: str
    port: int
    health_path: str
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_answering(self) -> bool:
        try:
            return requests.get(self.url + self.health_path, timeout=5).status_code < 500
        except requests.RequestException:
            return False

    def resident_memory_mb(self) -> float:
        """Resident memory of the process and its children (Linux /proc), in MB."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        return process_tree_rss_kb(self.process.pid) / 1024


def process_tree_rss_kb(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += process_tree_rss_kb(int(child))
    return total


@dataclass
class SoakCluster:
    """Running servers and stores, with the handles the scenarios need to break them."""

    postgres: ThrowawayPostgres
    redis: ThrowawayRedis
    rasa_servers: list[Server]
    action_servers: list[Server]
    web_server: Server
    env: dict
    database_url: str
    tracker_database_url: str
    workdir: Path
    staff_username: str = STAFF_USERNAME
    staff_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    web_origin: str = WEB_TEST_ORIGIN
    twilio_auth_token: str = TEST_TWILIO_AUTH_TOKEN
    rasa_api_token: str = TEST_RASA_API_TOKEN

    @property
    def rasa_urls(self) -> list[str]:
        return [server.url for server in self.rasa_servers]

    @property
    def action_urls(self) -> list[str]:
        return [server.url for server in self.action_servers]

    @property
    def web_url(self) -> str:
        return self.web_server.url

    def servers(self) -> list[Server]:
        return [*self.rasa_servers, *self.action_servers, self.web_server]

    def resident_memory_mb(self) -> dict[str, float]:
        return {server.name: round(server.resident_memory_mb(), 1) for server in self.servers()}

    def all_answering(self) -> dict[str, bool]:
        return {server.name: server.is_answering() for server in self.servers()}

    def kill(self, server: Server) -> None:
        """SIGKILL: what a crash or an out-of-memory kill does, with no clean shutdown."""
        if server.process and server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)

    def start(self, server: Server, timeout: float = 300) -> None:
        """Starts the server again on its port and waits until it answers."""
        server.process = self.launch(server)
        wait_until_up(server.url + server.health_path, server.process, server.log_path, timeout)

    def launch(self, server: Server) -> subprocess.Popen:
        index = int(server.name.rsplit("_", 1)[-1]) if server.name[-1].isdigit() else 0
        if server.name.startswith("rasa"):
            env = self.rasa_environment(index)
            return launch_rasa_server(server.port, PRODUCTION_ENDPOINTS, env, server.log_path)
        if server.name.startswith("action"):
            return launch_action_server(server.port, self.env, server.log_path)
        return launch_web_app(server.port, self.web_environment(), server.log_path)

    def rasa_environment(self, index: int) -> dict:
        """Rasa server ``index`` calls action server ``index`` (as one machine of several would)."""
        action_url = f"{self.action_servers[index].url}/webhook"
        return dict(self.env, ACTION_SERVER_URL=action_url)

    def web_environment(self) -> dict:
        return dict(
            self.env,
            TRACKER_DATABASE_URL=self.tracker_database_url,
            RASA_URL=self.rasa_urls[0],
        )

    def stop_all(self) -> None:
        stop_processes([server.process for server in self.servers() if server.process])


def create_database(server_url: str, name: str) -> str:
    """A new database on the throwaway server; its URL."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def cluster_environment(
    postgres: ThrowawayPostgres, redis: ThrowawayRedis
) -> tuple[dict, str, str]:
    """The servers' shared environment, as docker-compose.yml sets it, and the two databases."""
    database_url = create_database(postgres.url, "hsg")
    tracker_database_url = create_database(postgres.url, "hsg_conversations")
    env = assistant_environment(database_url)
    env.update(production_endpoint_environment(tracker_database_url, redis.url, key_prefix="soak"))
    env.update(
        ACTION_SERVER_TOKEN=uuid.uuid4().hex,
        CONVERSATION_ID_SECRET=uuid.uuid4().hex,
        FLASK_SECRET_KEY=secrets.token_hex(32),
        RATE_LIMIT_STORAGE_URI=f"{redis.url}/1",
        SOCKETIO_REDIS_URL=f"{redis.url}/2",
    )
    return env, database_url, tracker_database_url


@contextlib.contextmanager
def start_soak_cluster(workdir: Path, rasa_servers: int = 2) -> Iterator[SoakCluster]:
    """Starts the stores and every server; stops and deletes them all afterwards."""
    require_model()
    workdir.mkdir(parents=True, exist_ok=True)
    with throwaway_stores() as (postgres, redis):
        env, database_url, tracker_database_url = cluster_environment(postgres, redis)
        migrate(env)
        cluster = SoakCluster(
            postgres=postgres,
            redis=redis,
            rasa_servers=[
                Server(f"rasa_{index}", free_port(), "/", workdir / f"rasa_{index}.log")
                for index in range(rasa_servers)
            ],
            action_servers=[
                Server(f"action_{index}", free_port(), "/health", workdir / f"action_{index}.log")
                for index in range(rasa_servers)
            ],
            web_server=Server("web", free_port(), "/staff/login", workdir / "web.log"),
            env=env,
            database_url=database_url,
            tracker_database_url=tracker_database_url,
            workdir=workdir,
        )
        create_staff_account(env, cluster.staff_username, cluster.staff_password)
        try:
            for server in cluster.servers():
                server.process = cluster.launch(server)
            for server in cluster.servers():
                wait_until_up(server.url + server.health_path, server.process, server.log_path, 300)
            yield cluster
        finally:
            cluster.stop_all()
