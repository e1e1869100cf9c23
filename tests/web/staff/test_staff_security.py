"""Staff-area security: headers, CSRF on every form, no third-party requests, quiet logs."""

from __future__ import annotations

import logging
import re

import pytest

from tests.appointments.staff_factories import add_request


def test_security_headers_on_every_staff_page(signed_in, database_url) -> None:
    reference = add_request(database_url)
    for path in ["/staff/requests", f"/staff/requests/{reference}", "/staff/requests/HSG-ZZZZZZ"]:
        headers = signed_in.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "form-action 'self'" in csp and "script-src 'self';" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in headers


def test_login_page_has_the_headers_too(client) -> None:
    headers = client.get("/staff/login").headers
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_hsts_over_https_only(app, staff_user) -> None:
    client = app.test_client()
    response = client.get("/staff/login", base_url="https://staff.example")
    expected = "max-age=31536000; includeSubDomains"
    assert response.headers["Strict-Transport-Security"] == expected
    assert "Strict-Transport-Security" not in client.get("/staff/login").headers


def test_public_page_keeps_its_own_policy(client) -> None:
    csp = client.get("/").headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" not in csp


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/staff/login", {"username": "alice", "password": "correct horse battery staple"}),
        ("/staff/logout", {}),
        ("/staff/requests/search", {"q": "Ana"}),
        ("/staff/requests/export", {}),
    ],
)
def test_every_form_needs_its_csrf_token(app, staff_user, path: str, data: dict) -> None:
    from tests.web.staff.conftest import StaffClient

    client = StaffClient(app.test_client())
    if path != "/staff/login":
        client.login(staff_user)
    for token in (None, "", "not-a-token"):
        form = dict(data) if token is None else {**data, "csrf_token": token}
        response = client.client.post(path, data=form)
        assert response.status_code == 400, (path, token)
        assert "did not come from this site" in response.get_data(as_text=True)
    # Signed in (or not) exactly as before.
    expected = 302 if path == "/staff/login" else 200
    assert client.get("/staff/requests").status_code == expected


def test_every_post_form_on_every_page_has_a_token(app, signed_in_admin, database_url) -> None:
    app.config["STAFF_PAGE_SIZE"] = 1
    reference = add_request(database_url)
    add_request(database_url)
    pages = {
        path: signed_in_admin.get(path).get_data(as_text=True)
        for path in ["/staff/requests", f"/staff/requests/{reference}", "/staff/audit"]
    }
    # A search's page (with its posted paging and filter forms) is the answer to a post.
    pages["search"] = signed_in_admin.post_form(
        "/staff/requests", "/staff/requests/search", {"q": "Ana"}
    ).get_data(as_text=True)
    assert "Older &rarr;</button>" in pages["search"]
    for path, html in pages.items():
        forms = re.findall(r"<form[^>]*>.*?</form>", html, re.S)
        for form in forms:
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (path, form[:80])


def test_pages_load_nothing_from_other_sites(client, signed_in_admin, database_url) -> None:
    reference = add_request(database_url)
    for path in ["/staff/login", "/staff/requests", f"/staff/requests/{reference}", "/staff/audit"]:
        html = signed_in_admin.get(path).get_data(as_text=True)
        for url in re.findall(r'(?:href|src|action)="([^"]*)"', html):
            assert url.startswith(("/", "#")), (path, url)


def test_stylesheet_is_served_without_signing_in(client) -> None:
    response = client.get("/staff/static/staff.css")
    assert response.status_code == 200
    assert b"system-ui" in response.data


def test_no_patient_details_in_logs(signed_in_admin, database_url, tracker_url, caplog) -> None:
    reference = add_request(
        database_url,
        full_name="Philippa Logwatcher",
        phone_e164="+12015550166",
        email="philippa@example.org",
        conversation_id="+12015550166",
    )
    caplog.set_level(logging.DEBUG)
    signed_in_admin.post_form("/staff/requests", "/staff/requests/search", {"q": "Logwatcher"})
    signed_in_admin.get("/staff/requests")
    page = f"/staff/requests/{reference}"
    signed_in_admin.post_form(
        page,
        f"{page}/status",
        {"expected_status": "new", "to_status": "contacted", "note": "Spoke to Philippa"},
    )
    export = signed_in_admin.post_form(
        "/staff/requests", "/staff/requests/export", {"q": "Logwatcher"}
    )
    assert b"Logwatcher" in export.data
    signed_in_admin.logout()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    for detail in ("Philippa", "Logwatcher", "2015550166", "philippa@example.org"):
        assert detail not in logged


def test_unreachable_database_gives_a_calm_page(tracker_url) -> None:
    from tests.web.staff.conftest import StaffClient
    from web.app import create_app

    app = create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "TRACKER_DATABASE_URL": tracker_url,
        }
    )
    response = StaffClient(app.test_client()).login("alice")
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "The appointment database cannot be reached right now." in page
    assert "Traceback" not in page and "127.0.0.1" not in page
