"""The multi-server set-up's files agree with each other, and the web app runs under gunicorn.

docker-compose.yml is not started here (no Docker engine on these machines); the processes it
runs are, in tests/e2e/test_scale_out.py and below.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from scripts.assistant_servers import (
    REPO_ROOT,
    VENV_BIN,
    base_environment,
    free_port,
    migrate,
    stop_processes,
    wait_until_up,
)

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PRODUCTION_ENDPOINTS = (REPO_ROOT / "endpoints.production.yml").read_text()


def test_every_variable_of_the_production_endpoints_is_set_for_rasa() -> None:
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", PRODUCTION_ENDPOINTS))
    assert needed, "endpoints.production.yml reads its settings from the environment"
    assert needed <= set(SERVICES["rasa"]["environment"])


def test_rasa_runs_with_the_production_endpoints_and_several_replicas() -> None:
    command = SERVICES["rasa"]["command"]
    assert command[command.index("--endpoints") + 1] == "endpoints.production.yml"
    assert SERVICES["rasa"]["deploy"]["replicas"] >= 2
    assert SERVICES["actions"]["deploy"]["replicas"] >= 2


def test_the_conversations_database_is_created_where_rasa_looks_for_it() -> None:
    init_script = (REPO_ROOT / "deploy" / "postgres-init.sh").read_text()
    tracker_database = SERVICES["rasa"]["environment"]["TRACKER_DB_NAME"]
    assert f"CREATE DATABASE {tracker_database} " in init_script
    assert SERVICES["web"]["environment"]["TRACKER_DATABASE_URL"].endswith(f"/{tracker_database}")


def test_mounted_files_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            # deploy/certs/ holds the clinic's own certificate, never committed.
            if source.startswith("./") and source != "./deploy/certs":
                assert (REPO_ROOT / source).is_file(), source


def test_only_the_chat_socket_and_the_sms_webhook_reach_rasa_through_the_proxy() -> None:
    nginx = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    rasa_locations = re.findall(r"location (\S+) \{[^}]*?proxy_pass http://rasa;", nginx)
    assert sorted(rasa_locations) == ["/socket.io/", "/webhooks/twilio/"]


@pytest.fixture(scope="module")
def gunicorn_web_app(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = base_environment()
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'appointments.db'}",
        FLASK_SECRET_KEY="test-only-secret-key",  # noqa: S105 (a test-only value)
    )
    migrate(env)
    command = [
        arg if arg != "0.0.0.0:8000" else f"127.0.0.1:{port}" for arg in SERVICES["web"]["command"]
    ]
    log = Path(workdir / "gunicorn.log")
    process = subprocess.Popen(
        [str(VENV_BIN / command[0]), *command[1:]],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log, timeout=60)
        yield url
    finally:
        stop_processes([process])


def test_gunicorn_serves_the_clinic_page_and_guards_the_staff_area(gunicorn_web_app: str) -> None:
    page = requests.get(f"{gunicorn_web_app}/", timeout=10)
    assert page.status_code == 200
    assert "Neighborhood Radiology Services" in page.text
    staff = requests.get(f"{gunicorn_web_app}/staff/", timeout=10, allow_redirects=False)
    assert staff.status_code in (302, 303)
    assert "login" in staff.headers["Location"]
