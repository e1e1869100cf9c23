"""The audit log page: admins only (refusals audited); shows who listed, viewed, changed or
exported which request, and is itself audited.
"""

from __future__ import annotations

import html
import re

from appointments.audit import AuditFilters, list_audit_events
from tests.appointments.staff_factories import add_request


def _rows(page: str) -> list[list[str]]:
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_staff_without_the_admin_role_are_refused_and_that_is_audited(
    signed_in, database_url
) -> None:
    response = signed_in.get("/staff/audit?staff_username=root")
    assert response.status_code == 403
    assert "for staff with the admin role" in response.get_data(as_text=True)
    assert "Audit log" not in signed_in.get("/staff/requests").get_data(as_text=True)
    refusals = list_audit_events(AuditFilters(action="access_denied"), url=database_url).items
    # The path only: no query string, and nothing from the page that was refused.
    assert [(e.staff_username, e.detail) for e in refusals] == [("alice", "GET /staff/audit")]
    assert list_audit_events(AuditFilters(action="view_audit_log"), url=database_url).total == 0


def test_admins_see_views_changes_exports_and_logins(app, signed_in_admin, database_url) -> None:
    from tests.web.staff.conftest import StaffClient

    reference = add_request(database_url, full_name="Ana Ruiz")
    alice = StaffClient(app.test_client())
    alice.login("nobody-here", "wrong password")
    page = f"/staff/requests/{reference}"
    signed_in_admin.post_form(
        page, f"{page}/status", {"expected_status": "new", "to_status": "contacted", "note": "Hi"}
    )
    signed_in_admin.post_form("/staff/requests", "/staff/requests/export")

    page_html = signed_in_admin.get("/staff/audit").get_data(as_text=True)

    assert 'aria-current="page">Audit log' in page_html
    rows = [row[1:] for row in _rows(page_html)]
    # Newest first; the status form's page was opened (viewed) once before the change.
    assert rows == [
        ["root", "Exported", reference, "CSV of 1 request(s)"],
        ["root", "Listed requests", "", "page 1 of 1, 1 request(s)"],
        ["root", "Changed status", reference, "new -> contacted (with a note)"],
        ["root", "Viewed request", reference, ""],
        ["(unknown)", "Failed sign-in", "", "unknown or deactivated account, from 127.0.0.1"],
        ["root", "Signed in", "", "from 127.0.0.1"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[0]) for row in _rows(page_html))
    assert "Ana Ruiz" not in page_html


def test_audit_filters(signed_in_admin, database_url) -> None:
    first = add_request(database_url)
    second = add_request(database_url)
    signed_in_admin.get(f"/staff/requests/{first}")
    signed_in_admin.get(f"/staff/requests/{second}")

    by_reference = signed_in_admin.get(f"/staff/audit?reference={first.lower()}")
    by_action = signed_in_admin.get("/staff/audit?action=login")
    by_user = signed_in_admin.get("/staff/audit?staff_username=nobody")
    bad_action = signed_in_admin.get("/staff/audit?action=hacked")

    assert [row[3] for row in _rows(by_reference.get_data(as_text=True))] == [first]
    assert [row[2] for row in _rows(by_action.get_data(as_text=True))] == ["Signed in"]
    assert "0 events." in by_user.get_data(as_text=True)
    assert bad_action.status_code == 200
    assert "Invalid value" in bad_action.get_data(as_text=True)


def test_audit_log_is_paged(signed_in_admin, database_url, app) -> None:
    app.config["STAFF_AUDIT_PAGE_SIZE"] = 2
    reference = add_request(database_url)
    for _ in range(3):
        signed_in_admin.get(f"/staff/requests/{reference}")
    page_html = signed_in_admin.get("/staff/audit?action=view_request").get_data(as_text=True)
    assert "Page 1 of 2" in page_html
    assert 'href="/staff/audit?page=2&amp;action=view_request"' in page_html


def test_viewing_the_audit_log_is_audited_after_the_page_is_read(signed_in_admin) -> None:
    first = signed_in_admin.get("/staff/audit?action=view_audit_log").get_data(as_text=True)
    second = signed_in_admin.get("/staff/audit?action=view_audit_log").get_data(as_text=True)

    assert "0 events." in first
    assert [row[1:] for row in _rows(second)] == [
        ["root", "Viewed audit log", "", "page 1 of 1; action=view_audit_log"]
    ]
