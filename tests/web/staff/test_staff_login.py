"""Signing in and out of the staff area: redirects, wrong passwords, lockout, timeout, cookies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from appointments.audit import AuditFilters, list_audit_events
from appointments.database import session_scope
from appointments.models import StaffUser
from appointments.staff_accounts import MAX_FAILED_LOGINS, unlock
from tests.appointments.staff_factories import PASSWORD, add_request
from web.staff import views

LOGIN_FAILED = "did not match, or the account is locked"


def _audit(database_url: str, action: str | None = None) -> list[tuple]:
    page = list_audit_events(AuditFilters(action=action), url=database_url)
    return [(e.action, e.staff_username, e.request_reference, e.detail) for e in page.items]


@pytest.mark.parametrize(
    "path", ["/staff/", "/staff/requests", "/staff/requests/HSG-ABCDEF", "/staff/audit"]
)
def test_anonymous_pages_redirect_to_login(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/staff/login?next=")


@pytest.mark.parametrize(
    "path",
    [
        "/staff/requests/export",
        "/staff/requests/search",
        "/staff/requests/HSG-ABCDEF/status",
        "/staff/logout",
    ],
)
def test_anonymous_posts_do_nothing_and_redirect_to_login(client, path: str) -> None:
    response = client.post_form("/staff/login", path, {"to_status": "contacted"})
    assert response.status_code == 302
    assert response.location == "/staff/login"
    assert b"reference" not in response.data  # no CSV


def test_no_account_exists_until_one_is_created(client, database_url: str) -> None:
    with session_scope(database_url) as session:
        assert session.execute(select(func.count()).select_from(StaffUser)).scalar_one() == 0
    for username, password in [("admin", "admin"), ("admin", "password"), ("staff", "staff")]:
        assert client.login(username, password).status_code == 401


def test_login_page_has_labelled_fields_and_no_error(client) -> None:
    page = client.get("/staff/login").get_data(as_text=True)
    assert '<label for="username">Username</label>' in page
    assert '<label for="password">Password</label>' in page
    assert 'autocomplete="current-password"' in page
    assert LOGIN_FAILED not in page


def test_right_password_signs_in_and_is_audited(client, staff_user, database_url) -> None:
    response = client.login(staff_user)

    assert response.status_code == 302 and response.location == "/staff/requests"
    assert client.get("/staff/requests").status_code == 200
    assert _audit(database_url, "login") == [("login", "alice", None, "from 127.0.0.1")]


def test_login_goes_on_to_the_page_asked_for(client, staff_user, database_url) -> None:
    reference = add_request(database_url)
    first = client.get(f"/staff/requests/{reference}")
    login_page = client.get(first.location)
    assert f'value="/staff/requests/{reference}"' in login_page.get_data(as_text=True)

    response = client.post_form(
        first.location,
        "/staff/login",
        {"username": staff_user, "password": PASSWORD, "next": f"/staff/requests/{reference}"},
    )

    assert response.location == f"/staff/requests/{reference}"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/staff/", "//evil.example/staff/", "/elsewhere", "javascript:alert(1)"],
)
def test_login_never_redirects_off_the_staff_area(client, staff_user, target: str) -> None:
    response = client.post_form(
        "/staff/login",
        "/staff/login",
        {"username": staff_user, "password": PASSWORD, "next": target},
    )
    assert response.location == "/staff/requests"


def test_wrong_password_is_refused_with_a_generic_message(client, staff_user, database_url) -> None:
    response = client.login(staff_user, "not the password")

    assert response.status_code == 401
    assert LOGIN_FAILED in response.get_data(as_text=True)
    assert "not the password" not in response.get_data(as_text=True)
    assert client.get("/staff/requests").status_code == 302
    assert _audit(database_url) == [
        ("login_failed", "alice", None, "wrong password from 127.0.0.1 (1 of 5 before a lockout)")
    ]


def test_unknown_name_gets_the_same_message_and_is_not_recorded(client, database_url) -> None:
    response = client.login("my secret password", "whatever it is")

    assert response.status_code == 401
    assert LOGIN_FAILED in response.get_data(as_text=True)
    assert _audit(database_url) == [
        ("login_failed", None, None, "unknown or deactivated account, from 127.0.0.1")
    ]


def test_empty_form_is_refused(client) -> None:
    response = client.post_form("/staff/login", "/staff/login", {"username": "", "password": ""})
    assert response.status_code == 400
    assert "Enter your username and password." in response.get_data(as_text=True)


def test_lockout_after_five_failures_then_unlock(client, staff_user, database_url) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        assert client.login(staff_user, "not the password").status_code == 401

    locked = client.login(staff_user, PASSWORD)

    assert locked.status_code == 401
    assert LOGIN_FAILED in locked.get_data(as_text=True)
    assert client.get("/staff/requests").status_code == 302
    actions = [event[0] for event in _audit(database_url)]
    assert actions == ["login_while_locked", "account_locked"] + ["login_failed"] * 4

    unlock(staff_user, url=database_url)
    assert client.login(staff_user, PASSWORD).status_code == 302


def test_lockout_holds_across_browsers_at_one_address(app, staff_user) -> None:
    from tests.web.staff.conftest import StaffClient

    for _ in range(MAX_FAILED_LOGINS):
        StaffClient(app.test_client()).login(staff_user, "not the password")
    assert StaffClient(app.test_client()).login(staff_user, PASSWORD).status_code == 401


def test_logout_ends_the_session_and_every_copy_of_its_cookie(app, signed_in, database_url) -> None:
    cookie = signed_in.client.get_cookie("session")
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    assert copy.get("/staff/requests").status_code == 200

    response = signed_in.logout()

    assert response.location == "/staff/login"
    assert "You have signed out." in signed_in.get("/staff/login").get_data(as_text=True)
    assert signed_in.get("/staff/requests").status_code == 302
    assert copy.get("/staff/requests").status_code == 302
    assert _audit(database_url, "logout") == [("logout", "alice", None, "")]


def test_logout_needs_a_post_with_a_csrf_token(signed_in) -> None:
    assert signed_in.get("/staff/logout").status_code == 405
    assert signed_in.client.post("/staff/logout").status_code == 400
    assert signed_in.get("/staff/requests").status_code == 200


def test_session_times_out_after_thirty_minutes_without_activity(
    signed_in, monkeypatch: pytest.MonkeyPatch, database_url
) -> None:
    start = views._now_seconds()
    monkeypatch.setattr(views, "_now_seconds", lambda: start + 29 * 60)
    assert signed_in.get("/staff/requests").status_code == 200
    # Activity restarts the clock: 58 minutes after signing in, but 29 after the last page.
    monkeypatch.setattr(views, "_now_seconds", lambda: start + 58 * 60)
    assert signed_in.get("/staff/requests").status_code == 200

    monkeypatch.setattr(views, "_now_seconds", lambda: start + 58 * 60 + 30 * 60 + 1)
    response = signed_in.get("/staff/requests?status=new")

    assert response.status_code == 302
    assert response.location.startswith("/staff/login?next=")
    login_page = signed_in.get(response.location).get_data(as_text=True)
    assert "signed out after 30 minutes without activity" in login_page
    assert signed_in.get("/staff/requests").status_code == 302
    assert _audit(database_url, "session_expired") == [("session_expired", "alice", None, "")]


def test_session_cookie_is_httponly_samesite_and_expires_with_the_timeout(
    client, staff_user
) -> None:
    response = client.login(staff_user)
    cookie = next(
        header for header in response.headers.getlist("Set-Cookie") if header.startswith("session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie
    # Local http in the tests; SESSION_COOKIE_SECURE=true adds Secure (test_staff_settings.py).
    assert "Secure" not in cookie
    stored = client.client.get_cookie("session")
    assert stored.expires is not None


def test_timeout_can_be_configured(database_url, tracker_url, staff_user, monkeypatch) -> None:
    from tests.web.staff.conftest import StaffClient
    from web.app import create_app

    app = create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": database_url,
            "TRACKER_DATABASE_URL": tracker_url,
            "STAFF_SESSION_TIMEOUT": timedelta(minutes=5),
        }
    )
    client = StaffClient(app.test_client())
    client.login(staff_user)
    start = views._now_seconds()
    monkeypatch.setattr(views, "_now_seconds", lambda: start + 5 * 60 + 1)

    assert client.get("/staff/requests").status_code == 302
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(minutes=5)


def test_signed_in_visit_to_login_goes_to_the_list(signed_in) -> None:
    assert signed_in.get("/staff/login").location == "/staff/requests"
