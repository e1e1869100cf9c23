"""The staff inbox and insights pages without a Rasa server: who may see what, what is audited,
what a second member of staff sees, and that nothing is claimed when Rasa cannot be reached.
(Taking over and handing back with the real servers: tests/e2e/test_takeover_e2e.py.)
"""

from __future__ import annotations

import csv
import io

import pytest

from appointments import audit, handoffs, unanswered
from appointments.database import session_scope
from appointments.models import StaffAuditEvent
from appointments.staff_accounts import create_staff_user
from tests.appointments.staff_factories import PASSWORD

PHONE = "+12015550177"


@pytest.fixture(autouse=True)
def _no_rasa_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9: every call to Rasa's API fails at once.
    monkeypatch.setenv("RASA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RASA_API_TOKEN", "test-token")


@pytest.fixture
def waiting(database_url: str) -> int:
    with session_scope(database_url) as session:
        return handoffs.record_handoff_need(session, f"sms:{PHONE}", handoffs.WARNING_SIGN).id


def _actions(database_url: str) -> list[tuple[str, str | None, str]]:
    from sqlalchemy import select

    with session_scope(database_url) as session:
        rows = session.scalars(select(StaffAuditEvent).order_by(StaffAuditEvent.id)).all()
        return [(row.action, row.staff_username, row.detail) for row in rows]


def test_anonymous_visitors_get_nothing_of_the_inbox(client, database_url, waiting) -> None:
    for path in [
        "/staff/inbox",
        "/staff/inbox.json",
        f"/staff/inbox/{waiting}",
        f"/staff/inbox/{waiting}/messages.json",
        "/staff/insights",
    ]:
        response = client.get(path)
        assert response.status_code == 302 and "/staff/login" in response.location, path
        assert b"Warning sign" not in response.data
    for action in ("take-over", "message", "hand-back", "warning-answer"):
        response = client.client.post(f"/staff/inbox/{waiting}/{action}", data={"text": "hi"})
        assert response.status_code in (302, 400) and b"Warning sign" not in response.data
    with session_scope(database_url) as session:
        assert handoffs.get_handoff(session, waiting).status == handoffs.WAITING


def test_the_inbox_lists_the_conversation_without_its_id_and_is_audited(
    signed_in, database_url, waiting
) -> None:
    page = signed_in.get("/staff/inbox").get_data(as_text=True)
    assert f"Conversation #{waiting}" in page and "Warning sign or symptom report" in page
    assert "SMS" in page and 'id="inbox-count"' in page
    data = signed_in.get("/staff/inbox.json").get_json()
    assert data["waiting"] == 1 and data["conversations"][0]["status"] == "waiting"
    assert PHONE not in page and PHONE not in str(data)
    assert ("view_inbox", "alice", "1 conversation(s)") in _actions(database_url)
    # The count in the navigation, on every staff page.
    assert 'id="inbox-count" aria-label="conversations waiting">1<' in signed_in.get(
        "/staff/requests"
    ).get_data(as_text=True)


def test_nothing_is_claimed_when_rasa_cannot_be_reached(signed_in, database_url, waiting) -> None:
    page = f"/staff/inbox/{waiting}"
    response = signed_in.post_form(page, f"{page}/take-over", follow_redirects=True)
    assert "could not be reached, so nothing was sent" in response.get_data(as_text=True)
    with session_scope(database_url) as session:
        row = handoffs.get_handoff(session, waiting)
        assert row.status == handoffs.WAITING and row.held_by is None
    assert audit.TAKE_OVER not in [action for action, _, _ in _actions(database_url)]


def test_a_second_member_of_staff_sees_who_holds_it_and_cannot_take_it(
    signed_in, database_url, waiting
) -> None:
    with session_scope(database_url) as session:
        handoffs.take_over(session, waiting, "bob")
    page = f"/staff/inbox/{waiting}"
    html = signed_in.get(page).get_data(as_text=True)
    assert "bob is answering this conversation" in html
    assert 'id="take-over"' not in html and 'id="send-message"' not in html
    response = signed_in.post_form(page, f"{page}/take-over", follow_redirects=True)
    assert "bob is already answering this conversation" in response.get_data(as_text=True)
    response = signed_in.post_form(
        page, f"{page}/message", {"text": "hello"}, follow_redirects=True
    )
    assert "bob is answering this conversation" in response.get_data(as_text=True)
    polled = signed_in.get(f"{page}/messages.json").get_json()
    assert polled["held_by"] == "bob" and polled["holds_it"] is False
    actions = _actions(database_url)
    assert ("view_conversation", "alice", f"conversation #{waiting} (SMS)") in actions
    assert ("take_over_refused", "alice", f"conversation #{waiting}, held by bob") in actions


def _add_unanswered(database_url: str) -> None:
    with session_scope(database_url) as session:
        for text in ["where do i park", "is there parking at the clinic", "=cmd|' /C calc'!A0"]:
            unanswered.record_unanswered(session, kind="rephrase", channel="twilio", text=text)


def test_insights_are_for_admins_only(signed_in, database_url) -> None:
    _add_unanswered(database_url)
    response = signed_in.get("/staff/insights")
    assert response.status_code == 403 and b"parking" not in response.data
    export = signed_in.post_form("/staff/requests", "/staff/insights/export")
    assert export.status_code == 403 and b"parking" not in export.data
    refused = [detail for action, _, detail in _actions(database_url) if action == "access_denied"]
    assert refused == ["GET /staff/insights", "POST /staff/insights/export"]


def test_an_admin_sees_groups_and_exports_the_texts_audited(client, database_url) -> None:
    create_staff_user("root", PASSWORD, role="admin", url=database_url)
    assert client.login("root").status_code == 302
    _add_unanswered(database_url)
    html = client.get("/staff/insights").get_data(as_text=True)
    assert "is there parking at the clinic" in html and "where do i park" in html
    assert "3 message(s)" in html
    export = client.post_form("/staff/insights", "/staff/insights/export")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert {row["text"] for row in rows} == {
        "where do i park",
        "is there parking at the clinic",
        "'=cmd|' /C calc'!A0",
    }
    parking = {row["group"] for row in rows if "park" in row["text"]}
    assert len(parking) == 1 and rows[0]["channel"] == "SMS"
    actions = _actions(database_url)
    assert any(a == "view_insights" and "3 message(s) in 2 group(s)" in d for a, _, d in actions)
    assert ("export_insights", "root", "CSV of 3 unanswered message(s), last 12 weeks") in actions


def test_the_pages_polling_does_not_keep_a_session_alive(signed_in, monkeypatch, waiting) -> None:
    from web.staff import views

    start = views._now_seconds()
    for minutes in (10, 20, 29):
        monkeypatch.setattr(views, "_now_seconds", lambda minutes=minutes: start + minutes * 60)
        assert signed_in.get("/staff/inbox.json").status_code == 200
        assert signed_in.get(f"/staff/inbox/{waiting}/messages.json").status_code == 200
    monkeypatch.setattr(views, "_now_seconds", lambda: start + 31 * 60)
    response = signed_in.get("/staff/inbox.json")
    assert response.status_code == 302 and "/staff/login" in response.location


def test_a_waiting_conversation_can_be_closed_without_joining_audited(
    signed_in, database_url, waiting
) -> None:
    page = f"/staff/inbox/{waiting}"
    response = signed_in.post_form(page, f"{page}/close", follow_redirects=True)
    assert "Closed without joining" in response.get_data(as_text=True)
    assert signed_in.get("/staff/inbox.json").get_json()["conversations"] == []
    assert ("inbox_closed", "alice", f"conversation #{waiting} (SMS)") in _actions(database_url)
    again = signed_in.post_form(page, f"{page}/close", follow_redirects=True)
    assert "already left the inbox" in again.get_data(as_text=True)
