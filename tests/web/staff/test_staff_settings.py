"""The staff area's settings: the secret key file, cookie flags from the environment."""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from appointments.database import REPO_ROOT
from server_secrets import load_secret_key
from web.app import create_app
from web.staff import settings


def test_secret_key_is_generated_once_with_mode_600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "flask_secret_key"
    previous_umask = os.umask(0)
    try:
        first = load_secret_key(path)
    finally:
        os.umask(previous_umask)

    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(path) == first
    assert list(path.parent.iterdir()) == [path]


def test_readable_secret_key_file_is_made_private(tmp_path: Path, caplog) -> None:
    path = tmp_path / "flask_secret_key"
    path.write_text("an existing key")
    path.chmod(0o644)

    assert load_secret_key(path) == "an existing key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_empty_secret_key_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "flask_secret_key"
    path.write_text("")
    path.chmod(0o600)
    with pytest.raises(RuntimeError, match="is empty"):
        load_secret_key(path)


def test_app_takes_the_key_from_the_environment_else_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "var" / "flask_secret_key"
    monkeypatch.setattr(settings, "SECRET_KEY_FILE", path)
    monkeypatch.setenv("FLASK_SECRET_KEY", "from-the-environment")
    assert create_app().secret_key == "from-the-environment"
    assert not path.exists()

    monkeypatch.delenv("FLASK_SECRET_KEY")
    generated = create_app().secret_key
    assert generated == path.read_text() and len(generated) == 64
    assert create_app().secret_key == generated


def test_secret_key_file_is_never_committed() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "var/flask_secret_key"], cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0


def test_cookie_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "x")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("STAFF_SESSION_TIMEOUT_MINUTES", "10")

    config = create_app().config

    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["PERMANENT_SESSION_LIFETIME"] == timedelta(minutes=10)


def test_cookie_defaults_for_local_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "x")
    monkeypatch.delenv("SESSION_COOKIE_SECURE", raising=False)
    monkeypatch.delenv("STAFF_SESSION_TIMEOUT_MINUTES", raising=False)
    config = create_app().config
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["PERMANENT_SESSION_LIFETIME"] == timedelta(minutes=30)


def test_explicit_config_can_tighten_but_the_environment_cannot_loosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLASK_SECRET_KEY", "x")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "false")
    config = create_app({"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_SAMESITE": "Strict"}).config
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_secure_cookie_is_marked_secure(
    database_url, tracker_url, staff_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.web.staff.conftest import StaffClient

    app = create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": database_url,
            "TRACKER_DATABASE_URL": tracker_url,
            "SESSION_COOKIE_SECURE": True,
        }
    )
    client = StaffClient(app.test_client())
    page = client.client.get("/staff/login", base_url="https://localhost")
    from tests.web.staff.conftest import csrf_token

    response = client.client.post(
        "/staff/login",
        base_url="https://localhost",
        data={
            "username": staff_user,
            "password": "correct horse battery staple",
            "csrf_token": csrf_token(page),
        },
    )
    assert response.status_code == 302
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "Secure" in cookie and "HttpOnly" in cookie
