"""Fixtures for the staff area: the web app on a migrated database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), staff accounts, and a test client that signs in like a browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appointments.database import dispose_engines
from tests.appointments.staff_factories import PASSWORD, use_cheap_password_hashing
from web.app import create_app
from web.staff import transcript

CSRF_FIELD = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"'
)


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)


@pytest.fixture(autouse=True)
def _dispose_engines_after_test() -> Iterator[None]:
    # Engines are cached per database URL, and every test has its own.
    yield
    dispose_engines()
    transcript.dispose_engines()


@pytest.fixture
def tracker_url(tmp_path: Path) -> str:
    """Where the app looks for Rasa's tracker store; no file there unless a test makes one."""
    return f"sqlite:///{tmp_path / 'conversations.db'}"


@pytest.fixture
def app(database_url: str, tracker_url: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "staff-tests-secret-key",
            "DATABASE_URL": database_url,
            "TRACKER_DATABASE_URL": tracker_url,
            "STAFF_TIMEZONE": "UTC",
        }
    )


def csrf_token(response: TestResponse) -> str:
    match = CSRF_FIELD.search(response.get_data(as_text=True))
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


class StaffClient:
    """A test client that posts forms the way a browser does, with the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs) -> TestResponse:
        return self.client.get(path, **kwargs)

    def post_form(self, page: str, action: str, data: dict | None = None, **kwargs) -> TestResponse:
        """Opens ``page``, then posts ``data`` to ``action`` with that page's CSRF token."""
        token = csrf_token(self.client.get(page))
        return self.client.post(action, data={**(data or {}), "csrf_token": token}, **kwargs)

    def login(self, username: str, password: str = PASSWORD) -> TestResponse:
        return self.post_form(
            "/staff/login", "/staff/login", {"username": username, "password": password}
        )

    def logout(self) -> TestResponse:
        return self.post_form("/staff/requests", "/staff/logout")


@pytest.fixture
def client(app: Flask) -> StaffClient:
    return StaffClient(app.test_client())


@pytest.fixture
def staff_user(database_url: str) -> str:
    from appointments.staff_accounts import create_staff_user

    return create_staff_user("alice", PASSWORD, role="staff", url=database_url).username


@pytest.fixture
def admin_user(database_url: str) -> str:
    from appointments.staff_accounts import create_staff_user

    return create_staff_user("root", PASSWORD, role="admin", url=database_url).username


@pytest.fixture
def signed_in(client: StaffClient, staff_user: str) -> StaffClient:
    response = client.login(staff_user)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def signed_in_admin(client: StaffClient, admin_user: str) -> StaffClient:
    assert client.login(admin_user).status_code == 302
    return client
