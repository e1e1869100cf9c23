"""Moving a request through the workflow from its page: each change, its history and its audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from appointments.audit import AuditFilters, list_audit_events
from appointments.database import session_scope
from appointments.models import AppointmentRequest
from tests.appointments.staff_factories import add_request


def _status(url: str, reference: str) -> str:
    with session_scope(url) as session:
        return session.execute(
            select(AppointmentRequest.status).where(AppointmentRequest.reference == reference)
        ).scalar_one()


def _change(client, reference: str, expected: str, to_status: str, note: str = ""):
    page = f"/staff/requests/{reference}"
    fields = {"expected_status": expected, "to_status": to_status, "note": note}
    if to_status == "scheduled":
        # Scheduling needs the appointment's date and time (clinic time).
        fields.update(appointment_date="2030-05-10", appointment_time="09:30")
    return client.post_form(page, f"{page}/status", fields)


def _change_events(url: str, reference: str) -> list[tuple]:
    page = list_audit_events(
        AuditFilters(action="change_status", request_reference=reference), url=url
    )
    return [(e.staff_username, e.detail) for e in reversed(page.items)]


def test_new_contacted_scheduled_completed_with_notes_history_and_audit(
    signed_in, database_url
) -> None:
    reference = add_request(database_url)
    steps = [
        ("new", "contacted", "Left a voicemail <b>twice</b>"),
        ("contacted", "scheduled", ""),
        ("scheduled", "completed", "Exam done, no issues"),
    ]

    for expected, to_status, note in steps:
        response = _change(signed_in, reference, expected, to_status, note)
        assert response.status_code == 302
        assert response.location == f"/staff/requests/{reference}"
        assert _status(database_url, reference) == to_status
        page = signed_in.get(response.location).get_data(as_text=True)
        assert f"Marked {to_status}." in page

    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    history = html[html.index("<h3>History</h3>") :]
    assert history.index("New &rarr; Contacted") < history.index("Contacted &rarr; Scheduled")
    assert history.index("Contacted &rarr; Scheduled") < history.index("Scheduled &rarr; Completed")
    assert "Left a voicemail &lt;b&gt;twice&lt;/b&gt;" in history
    assert "Exam done, no issues" in history
    assert history.count("<strong>alice</strong>") == 3
    assert "This request is closed: completed." in html
    assert 'name="to_status"' not in html
    assert _change_events(database_url, reference) == [
        ("alice", "new -> contacted (with a note)"),
        ("alice", "contacted -> scheduled"),
        ("alice", "scheduled -> completed (with a note)"),
    ]


@pytest.mark.parametrize("end", ["declined", "cancelled"])
def test_declined_or_cancelled(signed_in, database_url, end: str) -> None:
    reference = add_request(database_url, status="contacted")
    assert _change(signed_in, reference, "contacted", end, "Patient chose another clinic")
    assert _status(database_url, reference) == end
    assert _change_events(database_url, reference) == [
        ("alice", f"contacted -> {end} (with a note)")
    ]


def test_the_form_offers_only_the_next_steps(signed_in, database_url) -> None:
    reference = add_request(database_url, status="contacted")
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    form = html[html.index('name="to_status"') : html.index("</select>")]
    assert [
        s
        for s in ("new", "contacted", "scheduled", "completed", "declined", "cancelled")
        if f'value="{s}"' in form
    ] == ["scheduled", "declined", "cancelled"]


def test_a_step_outside_the_workflow_is_refused(signed_in, database_url) -> None:
    reference = add_request(database_url)
    response = _change(signed_in, reference, "new", "completed")
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert _status(database_url, reference) == "new"
    assert _change_events(database_url, reference) == []


def test_a_colleagues_change_in_the_meantime_is_reported(signed_in, database_url) -> None:
    reference = add_request(database_url)
    _change(signed_in, reference, "new", "contacted")

    # The form was loaded while the request was still new.
    response = _change(signed_in, reference, "new", "declined")

    assert response.status_code == 302
    page = signed_in.get(response.location).get_data(as_text=True)
    assert "Someone else changed this request&#39;s status in the meantime" in page
    assert _status(database_url, reference) == "contacted"


def test_an_over_long_note_is_refused(signed_in, database_url) -> None:
    reference = add_request(database_url)
    response = _change(signed_in, reference, "new", "contacted", "x" * 2001)
    assert response.status_code == 400
    assert "Field cannot be longer than 2000 characters." in response.get_data(as_text=True)
    assert _status(database_url, reference) == "new"


def test_status_change_needs_a_valid_csrf_token(app, signed_in, database_url) -> None:
    reference = add_request(database_url)
    data = {"expected_status": "new", "to_status": "contacted"}
    path = f"/staff/requests/{reference}/status"

    missing = signed_in.client.post(path, data=data)
    forged = signed_in.client.post(path, data={**data, "csrf_token": "forged"})

    assert missing.status_code == forged.status_code == 400
    assert "This form has expired or did not come from this site" in missing.get_data(as_text=True)
    assert _status(database_url, reference) == "new"


def test_a_token_from_another_session_is_refused(app, signed_in, database_url) -> None:
    from tests.web.staff.conftest import StaffClient, csrf_token

    reference = add_request(database_url)
    other = StaffClient(app.test_client())
    other.login("alice")
    token_of_other_session = csrf_token(other.get(f"/staff/requests/{reference}"))

    response = signed_in.client.post(
        f"/staff/requests/{reference}/status",
        data={
            "expected_status": "new",
            "to_status": "contacted",
            "csrf_token": token_of_other_session,
        },
    )

    assert response.status_code == 400
    assert _status(database_url, reference) == "new"


def test_status_change_on_an_unknown_request_is_not_found(signed_in, database_url) -> None:
    reference = add_request(database_url)
    response = signed_in.post_form(
        f"/staff/requests/{reference}",
        "/staff/requests/HSG-ZZZZZZ/status",
        {"expected_status": "new", "to_status": "contacted"},
    )
    assert response.status_code == 404
