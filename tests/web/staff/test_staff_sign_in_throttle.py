"""Sign-in throttling per client address, and lockouts that only hold for the guessing address."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from appointments.audit import AuditFilters, list_audit_events
from appointments.staff_accounts import MAX_FAILED_LOGINS
from tests.appointments.staff_factories import PASSWORD
from tests.web.staff.conftest import StaffClient
from web.app import create_app

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
WRONG = "not the password at all"
SIGN_IN_EVENTS = {"login", "login_failed", "account_locked", "login_while_locked"}


def _sign_in(client: StaffClient, address: str, password: str, username: str = "alice"):
    return client.post_form(
        "/staff/login",
        "/staff/login",
        {"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _sign_in_events(database_url: str) -> list[tuple[str, str]]:
    page = list_audit_events(AuditFilters(), per_page=500, url=database_url)
    return [(e.action, e.detail) for e in reversed(page.items) if e.action in SIGN_IN_EVENTS]


def _app(database_url: str, tracker_url: str, **config: object) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "throttle-tests",
            "DATABASE_URL": database_url,
            "TRACKER_DATABASE_URL": tracker_url,
            **config,
        }
    )


def test_twenty_wrong_passwords_from_one_address_do_not_keep_the_owner_out(
    app, staff_user, database_url
) -> None:
    attacker = StaffClient(app.test_client())

    statuses = [_sign_in(attacker, ATTACKER, WRONG).status_code for _ in range(20)]
    owner = StaffClient(app.test_client())
    owner_response = _sign_in(owner, OWNER, PASSWORD)

    # 10 posts a minute per address; the rest never reach the password check.
    assert statuses == [401] * 10 + [429] * 10
    assert owner_response.status_code == 302
    assert owner.get("/staff/requests").status_code == 200
    assert _sign_in(attacker, ATTACKER, PASSWORD).status_code == 429
    events = _sign_in_events(database_url)
    from_attacker = [action for action, detail in events if ATTACKER in detail]
    assert from_attacker == ["login_failed"] * 4 + ["account_locked"] + ["login_while_locked"] * 5
    assert events[-1] == ("login", f"from {OWNER}")


def test_a_lockout_holds_only_for_the_address_that_caused_it(app, staff_user) -> None:
    attacker = StaffClient(app.test_client())
    for _ in range(MAX_FAILED_LOGINS):
        assert _sign_in(attacker, ATTACKER, WRONG).status_code == 401

    assert _sign_in(attacker, ATTACKER, PASSWORD).status_code == 401
    assert _sign_in(StaffClient(app.test_client()), OWNER, PASSWORD).status_code == 302
    # The owner's success lifts nothing for the guessing address.
    assert _sign_in(StaffClient(app.test_client()), ATTACKER, PASSWORD).status_code == 401


def test_a_throttled_sign_in_gets_a_calm_page(app, staff_user) -> None:
    client = StaffClient(app.test_client())
    for _ in range(10):
        _sign_in(client, ATTACKER, WRONG, username="nobody")

    response = _sign_in(client, ATTACKER, WRONG, username="nobody")

    page = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Too many sign-in attempts have come from your network" in page
    assert 'name="csrf_token"' in page and "Traceback" not in page
    assert WRONG not in page
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    # Only posts are counted: the form itself still opens.
    assert client.get("/staff/login", environ_base={"REMOTE_ADDR": ATTACKER}).status_code == 200


def test_the_hourly_budget_counts_too(database_url, tracker_url, staff_user) -> None:
    app = _app(database_url, tracker_url, STAFF_SIGN_IN_LIMITS="10/minute;3/hour")
    client = StaffClient(app.test_client())

    statuses = [_sign_in(client, ATTACKER, WRONG, "nobody").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    assert 60 < int(_sign_in(client, ATTACKER, WRONG, "nobody").headers["Retry-After"]) <= 3600


def test_storage_comes_from_rate_limit_storage_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "x")
    monkeypatch.delenv("RATE_LIMIT_STORAGE_URI", raising=False)
    assert create_app().config["RATE_LIMIT_STORAGE_URI"] == "memory://"

    monkeypatch.setenv("RATE_LIMIT_STORAGE_URI", "redis://127.0.0.1:1/0")
    assert create_app().config["RATE_LIMIT_STORAGE_URI"] == "redis://127.0.0.1:1/0"


def test_unreachable_storage_does_not_stop_anyone_signing_in(
    database_url, tracker_url, staff_user, caplog
) -> None:
    app = _app(database_url, tracker_url, RATE_LIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    caplog.set_level(logging.WARNING)

    response = _sign_in(StaffClient(app.test_client()), OWNER, PASSWORD)

    assert response.status_code == 302
    assert "Sign-in throttle storage unreachable" in caplog.text


def test_several_web_servers_count_together_in_redis(database_url, tracker_url, staff_user) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("TEST_REDIS_URL is not set; CI sets it to the machine's Redis")
    # An address of this test's own, so that other runs' counts in the same Redis do not mix in.
    address = f"2001:db8::{uuid.uuid4().hex[:4]}"
    servers = [_app(database_url, tracker_url, RATE_LIMIT_STORAGE_URI=redis_url) for _ in (1, 2)]
    clients = [StaffClient(server.test_client()) for server in servers]

    statuses: list[int] = []
    for attempt in range(11):
        response: TestResponse = _sign_in(clients[attempt % 2], address, WRONG, "nobody")
        statuses.append(response.status_code)

    assert statuses == [401] * 10 + [429]


def test_behind_a_proxy_each_client_address_is_counted_not_the_proxys(
    database_url, tracker_url, staff_user
) -> None:
    app = _app(database_url, tracker_url, PROXY_COUNT=1)
    proxy = "10.0.0.2"

    def through_proxy(client_address: str, password: str):
        return StaffClient(app.test_client()).post_form(
            "/staff/login",
            "/staff/login",
            {"username": "alice", "password": password},
            environ_base={"REMOTE_ADDR": proxy},
            headers={"X-Forwarded-For": client_address, "X-Forwarded-Proto": "https"},
        )

    statuses = [through_proxy(ATTACKER, WRONG).status_code for _ in range(11)]

    assert statuses == [401] * 10 + [429]
    assert through_proxy(OWNER, PASSWORD).status_code == 302
    assert _sign_in_events(database_url)[-1] == ("login", f"from {OWNER}")
