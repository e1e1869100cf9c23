"""The action server as compose runs it: behind a shared secret, and quiet about patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import requests

from action_server import TOKEN_HEADER, InsecureBindError, is_loopback, serve
from appointments.requests import count_appointment_requests
from scripts.assistant_servers import (
    base_environment,
    free_port,
    launch_action_server,
    migrate,
    stop_processes,
    wait_until_up,
)

TOKEN = "test-action-server-token"  # noqa: S105 (a test-only value)


def forged_submission(name: str) -> dict:
    """What a forger would post: Rasa's action call for the submit action with invented slots."""
    slots = {
        "full_name": name,
        "date_of_birth": "1990-03-04",
        "phone": "+12015550123",
        "email": "ana@example.com",
        "last_period": "not_applicable",
        "preferred_times": "mornings",
        "possibly_pregnant": "no",
        "contrast_allergy": "no",
        "pelvic_infection": "no",
        "referring_doctor": "Dr. Patel",
        "contact_method": "text",
    }
    return {
        "next_action": "action_submit_appointment_request",
        "sender_id": "forged",
        "version": "3.6.21",
        "tracker": {"sender_id": "forged", "slots": slots, "events": [], "latest_message": {}},
        "domain": {"responses": {}, "slots": {}, "forms": {}},
    }


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    workdir = tmp_path_factory.mktemp("action-server")
    database_url = f"sqlite:///{workdir / 'appointments.db'}"
    env = base_environment()
    # `make run` used to export Rasa's 64 kB body limit to the action server as well.
    env.update(DATABASE_URL=database_url, ACTION_SERVER_TOKEN=TOKEN, SANIC_REQUEST_MAX_SIZE="65536")
    migrate(env)
    port = free_port()
    log = workdir / "action_server.log"
    process = launch_action_server(port, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log, timeout=120)
        yield url, database_url, log
    finally:
        stop_processes([process])


def test_a_call_without_the_secret_is_refused_and_stores_nothing(action_server) -> None:
    url, database_url, _ = action_server
    call = forged_submission("Forged Name")

    refused = {
        "no token": requests.post(f"{url}/webhook", json=call, timeout=30),
        "wrong token": requests.post(
            f"{url}/webhook", json=call, headers={TOKEN_HEADER: "guess"}, timeout=30
        ),
        "token as a query parameter": requests.post(
            f"{url}/webhook", params={"token": TOKEN}, json=call, timeout=30
        ),
        "list of actions": requests.get(f"{url}/actions", timeout=30),
    }

    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 403)
    assert count_appointment_requests(url=database_url) == 0
    assert requests.get(f"{url}/health", timeout=30).status_code == 200


def test_with_the_secret_the_action_server_answers(action_server) -> None:
    url, _, _ = action_server

    response = requests.get(f"{url}/actions", headers={TOKEN_HEADER: TOKEN}, timeout=30)

    assert response.status_code == 200
    assert {"name": "action_submit_appointment_request"} in response.json()


def test_a_long_conversation_reaches_the_action_server_past_rasas_body_limit(
    action_server,
) -> None:
    # Found by the soak suite: with SANIC_REQUEST_MAX_SIZE=65536 in its environment the action
    # server refused every call once the tracker passed 64 kB (turn 5 of the request form).
    url, _, _ = action_server
    call = forged_submission("Ana Ruiz")
    call["next_action"] = "action_session_start"
    call["tracker"]["events"] = [
        {"event": "bot", "text": "an earlier answer " * 50, "timestamp": float(turn)}
        for turn in range(200)
    ]
    body = json.dumps(call)
    assert len(body) > 150_000

    response = requests.post(f"{url}/webhook", data=body, headers={TOKEN_HEADER: TOKEN}, timeout=30)

    assert response.status_code == 200, response.text
    assert any(event["event"] == "session_started" for event in response.json()["events"])


def test_an_action_error_never_echoes_or_logs_the_tracker(action_server) -> None:
    url, _, log = action_server
    call = forged_submission("Ana Secretname")
    # Slots as a list: the action's dict(tracker.slots) fails with the name in the exception.
    call["tracker"]["slots"] = ["Ana Secretname"]

    response = requests.post(
        f"{url}/webhook", data=json.dumps(call), headers={TOKEN_HEADER: TOKEN}, timeout=30
    )

    assert response.status_code == 500
    assert "Secretname" not in response.text
    assert "Secretname" not in log.read_text()


def test_it_refuses_to_listen_beyond_loopback_without_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACTION_SERVER_TOKEN", raising=False)

    with pytest.raises(InsecureBindError):
        serve("actions", "0.0.0.0", free_port())  # noqa: S104 - the case under test
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")  # noqa: S104
