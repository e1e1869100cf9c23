"""Starts the real Rasa server and action server on free ports, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests

from channels.conversation_ids import rest_conversation_id

REPO_ROOT = Path(__file__).resolve().parent.parent
# HSG_MODEL lets a developer test a model trained elsewhere without touching models/.
MODEL = Path(os.environ.get("HSG_MODEL", REPO_ROOT / "models" / "hsg-assistant.tar.gz"))
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log_path.read_text()[-4000:]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not start in {timeout}s:\n{log_path.read_text()[-4000:]}")


@dataclass
class Assistant:
    """A running Rasa server + action server pair, talked to over HTTP like a channel would."""

    rasa_url: str
    action_url: str
    database_url: str
    tracker_database_url: str
    env: dict
    workdir: Path
    processes: dict = field(default_factory=dict)

    def send(self, text: str, sender: str | None = None) -> list[dict]:
        """Posts to the REST channel and returns the bot's messages."""
        response = requests.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender or new_sender(), "message": text},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def reply_text(self, text: str, sender: str | None = None) -> str:
        return "\n".join(message.get("text", "") for message in self.send(text, sender))

    @staticmethod
    def conversation_id(sender: str) -> str:
        """The conversation a REST sender is kept under (channels/rest_api.py)."""
        return rest_conversation_id(sender)


# The web app's origin, the only one Rasa allows (CORS): a free port, so `make run` never clashes.
WEB_TEST_ORIGIN = f"http://localhost:{free_port()}"
# The SMS channel refuses every post without a token; tests sign their posts with this one.
TEST_TWILIO_AUTH_TOKEN = "test-twilio-auth-token"  # noqa: S105 (a test-only value)
# Rasa's HTTP API (tracker events) answers only to this token in tests.
TEST_RASA_API_TOKEN = "test-rasa-api-token"  # noqa: S105 (a test-only value)


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def base_environment() -> dict:
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(REPO_ROOT),
        # Every test talks from 127.0.0.1: the per-address limit would count them all as one
        # visitor. Tests of the limit itself set it back.
        RATE_LIMIT_PER_ADDRESS="100000/minute",
    )
    return env


def migrate(env: dict) -> None:
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "appointments.database", "migrate"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )


def launch_action_server(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "action_server", "--host", "127.0.0.1"]
        + ["--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def launch_rasa_server(
    port: int, endpoints: Path, env: dict, log_path: Path, model: Path = MODEL
) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "rasa"), "run", "--model", str(model)]
        + ["--interface", "127.0.0.1", "--port", str(port)]
        + ["--endpoints", str(endpoints), "--credentials", str(REPO_ROOT / "credentials.yml")]
        + ["--cors", env["WEB_ORIGIN"]]
        + ["--enable-api", "--auth-token", env["RASA_API_TOKEN"]],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def create_staff_account(env: dict, username: str, password: str, role: str = "staff") -> None:
    """`python -m web.staff.accounts create` as `make staff-user` runs it; an existing name is kept."""
    created = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "web.staff.accounts", "create", username, "--role", role],
        cwd=REPO_ROOT,
        env={**env, "STAFF_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if created.returncode != 0 and "exists" not in created.stderr:
        raise RuntimeError(f"could not create staff account {username!r}: {created.stderr}")


def web_app_environment(assistant: Assistant, **extra: str) -> dict:
    """The web app's environment on the assistant's two databases, with its own session key."""
    env = base_environment()
    env.update(
        DATABASE_URL=assistant.database_url,
        TRACKER_DATABASE_URL=assistant.tracker_database_url,
        # Set here so that the test never writes a key file into the repository's var/.
        FLASK_SECRET_KEY=secrets.token_hex(32),
        **extra,
    )
    return env


def launch_web_app(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "web.app", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


@contextlib.contextmanager
def start_web_app(env: dict, log_path: Path, port: int | None = None) -> Iterator[str]:
    """`python -m web.app` as `make run` starts it, on ``env``'s databases; yields its URL."""
    port = port or free_port()
    process = launch_web_app(port, env, log_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/staff/login", process, log_path, timeout=60)
        yield url
    finally:
        stop_processes([process])


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def assistant_environment(database_url: str, extra_env: dict | None = None) -> dict:
    env = base_environment()
    env.update(
        DATABASE_URL=database_url,
        TWILIO_AUTH_TOKEN=TEST_TWILIO_AUTH_TOKEN,
        RASA_API_TOKEN=TEST_RASA_API_TOKEN,
        WEB_ORIGIN=WEB_TEST_ORIGIN,
    )
    env.update(extra_env or {})
    return env


def require_model(model: Path = MODEL) -> None:
    if not model.exists():
        raise FileNotFoundError(f"{model} is missing: run `make train` (make test does it first)")


@contextlib.contextmanager
def start_assistant(
    workdir: Path, database_url: str, extra_env: dict | None = None, model: Path = MODEL
) -> Iterator[Assistant]:
    """Starts both servers with their own ports, tracker store and appointments database."""
    require_model(model)
    workdir.mkdir(parents=True, exist_ok=True)
    action_port, rasa_port = free_port(), free_port()
    tracker_db = workdir / "conversations.db"
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{action_port}/webhook"\n'
        "tracker_store:\n  type: conversation_store.QuietSQLTrackerStore\n"
        f'  dialect: "sqlite"\n  db: "{tracker_db}"\n'
    )
    env = assistant_environment(database_url, extra_env)
    migrate(env)
    processes = []
    try:
        action_log, rasa_log = workdir / "action_server.log", workdir / "rasa_server.log"
        action_server = launch_action_server(action_port, env, action_log)
        processes.append(action_server)
        rasa_server = launch_rasa_server(rasa_port, endpoints, env, rasa_log, model)
        processes.append(rasa_server)
        action_url = f"http://127.0.0.1:{action_port}"
        rasa_url = f"http://127.0.0.1:{rasa_port}"
        wait_until_up(f"{action_url}/health", action_server, action_log, timeout=120)
        wait_until_up(f"{rasa_url}/", rasa_server, rasa_log, timeout=300)
        yield Assistant(
            rasa_url=rasa_url,
            action_url=action_url,
            database_url=database_url,
            tracker_database_url=f"sqlite:///{tracker_db}",
            env=env,
            workdir=workdir,
            processes={"action_server": action_server, "rasa_server": rasa_server},
        )
    finally:
        stop_processes(processes)


@dataclass
class ScaledOutAssistant:
    """Several Rasa servers, each with its own action server, sharing PostgreSQL and Redis."""

    rasa_urls: list[str]
    rasa_servers: list[subprocess.Popen]
    action_servers: list[subprocess.Popen]
    database_url: str
    tracker_database_url: str

    def send(self, server: int, text: str, sender: str) -> list[dict]:
        response = requests.post(
            f"{self.rasa_urls[server]}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def reply_text(self, server: int, text: str, sender: str) -> str:
        return "\n".join(message.get("text", "") for message in self.send(server, text, sender))

    def stop_rasa_server(self, server: int) -> None:
        stop_processes([self.rasa_servers[server]])


def production_endpoint_environment(
    tracker_database_url: str, redis_url: str, key_prefix: str
) -> dict:
    """The variables endpoints.production.yml reads, from a PostgreSQL URL and a Redis URL."""
    from urllib.parse import urlsplit

    from sqlalchemy.engine import make_url

    tracker = make_url(tracker_database_url)
    redis = urlsplit(redis_url)
    return {
        "TRACKER_DB_HOST": tracker.host or "127.0.0.1",
        "TRACKER_DB_PORT": str(tracker.port or 5432),
        "TRACKER_DB_NAME": tracker.database,
        "TRACKER_DB_USER": tracker.username or "",
        "TRACKER_DB_PASSWORD": tracker.password or "",
        "REDIS_HOST": redis.hostname or "127.0.0.1",
        "REDIS_PORT": str(redis.port or 6379),
        "REDIS_DB": redis.path.strip("/") or "0",
        "REDIS_PASSWORD": redis.password or "",
        "REDIS_KEY_PREFIX": key_prefix,
    }


@contextlib.contextmanager
def start_scaled_out(
    workdir: Path, postgres_server_url: str, redis_url: str, servers: int = 2
) -> Iterator[ScaledOutAssistant]:
    """Starts `servers` Rasa servers with endpoints.production.yml, each with an action server.

    Requests and conversations go to two scratch databases on the PostgreSQL server.
    """
    require_model()
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(scratch_postgres_database(postgres_server_url))
        tracker_database_url = stack.enter_context(scratch_postgres_database(postgres_server_url))
        shared_env = assistant_environment(database_url)
        shared_env.update(
            production_endpoint_environment(
                tracker_database_url, redis_url, key_prefix=f"test{uuid.uuid4().hex[:8]}"
            )
        )
        # As in compose: the action servers refuse calls without the secret Rasa sends.
        shared_env.update(
            ACTION_SERVER_TOKEN=uuid.uuid4().hex, CONVERSATION_ID_SECRET=uuid.uuid4().hex
        )
        migrate(shared_env)
        rasa_servers: list[subprocess.Popen] = []
        action_servers: list[subprocess.Popen] = []
        stack.callback(lambda: stop_processes(rasa_servers + action_servers))
        rasa_urls, waits = [], []
        for index in range(servers):
            action_port, rasa_port = free_port(), free_port()
            env = dict(shared_env, ACTION_SERVER_URL=f"http://127.0.0.1:{action_port}/webhook")
            action_log = workdir / f"action_server_{index}.log"
            action_servers.append(launch_action_server(action_port, env, action_log))
            waits.append((f"http://127.0.0.1:{action_port}/health", action_servers[-1], action_log))
            rasa_log = workdir / f"rasa_server_{index}.log"
            endpoints = REPO_ROOT / "endpoints.production.yml"
            rasa_servers.append(launch_rasa_server(rasa_port, endpoints, env, rasa_log))
            rasa_urls.append(f"http://127.0.0.1:{rasa_port}")
            waits.append((f"{rasa_urls[-1]}/", rasa_servers[-1], rasa_log))
        for url, process, log in waits:
            wait_until_up(url, process, log, timeout=300)
        yield ScaledOutAssistant(
            rasa_urls=rasa_urls,
            rasa_servers=rasa_servers,
            action_servers=action_servers,
            database_url=database_url,
            tracker_database_url=tracker_database_url,
        )


@contextlib.contextmanager
def scratch_postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on the TEST_DATABASE_URL server, so other tests' tables never clash."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"hsg_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
