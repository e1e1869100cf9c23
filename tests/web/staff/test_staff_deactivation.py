"""Deactivating an account signs its sessions out at once; reactivating lets it sign in again."""

from __future__ import annotations

from appointments.audit import AuditFilters, list_audit_events
from appointments.database import session_scope
from appointments.staff_accounts import deactivate_staff_user, reactivate_staff_user
from tests.web.staff.conftest import StaffClient

LOGIN_FAILED = "did not match, or the account is locked"


def _deactivate(database_url: str, username: str) -> None:
    with session_scope(database_url) as session:
        deactivate_staff_user(session, username, detail="on the command line")


def test_a_signed_in_member_of_staff_is_signed_out_on_their_next_request(
    app, signed_in, database_url
) -> None:
    copy = StaffClient(app.test_client())
    copy.client.set_cookie("session", signed_in.client.get_cookie("session").value)
    assert copy.get("/staff/requests").status_code == 200

    _deactivate(database_url, "alice")

    for client in (signed_in, copy):
        response = client.get("/staff/requests")
        assert response.status_code == 302
        assert response.location.startswith("/staff/login?next=")
    # Nothing is done for a deactivated account's forms either.
    refused = signed_in.client.post("/staff/requests/search", data={"q": "Ana"})
    assert refused.status_code == 302 and refused.location == "/staff/login"


def test_a_deactivated_account_cannot_sign_in_until_reactivated(
    client, staff_user, database_url
) -> None:
    _deactivate(database_url, staff_user)

    refused = client.login(staff_user)

    assert refused.status_code == 401
    assert LOGIN_FAILED in refused.get_data(as_text=True)
    with session_scope(database_url) as session:
        reactivate_staff_user(session, staff_user, detail="on the command line")
    assert client.login(staff_user).status_code == 302
    assert client.get("/staff/requests").status_code == 200
    actions = [e.action for e in list_audit_events(AuditFilters(), url=database_url).items]
    assert actions == [
        "view_list",
        "login",
        "account_reactivated",
        "login_failed",
        "account_deactivated",
    ]
