"""Scheduling from a request's page: the date and time it needs (clinic time), the planned texts
with their states, rescheduling, cancelling, flags, the flagged filter and count; all audited."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from appointments import outbox
from appointments.audit import AuditFilters, list_audit_events
from appointments.database import session_scope
from appointments.models import utc_now
from tests.appointments.staff_factories import add_request

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def app(app):
    app.config["STAFF_TIMEZONE"] = "America/New_York"
    return app


def _schedule(client, reference: str, day: str = "2030-05-10", at: str = "09:30"):
    page = f"/staff/requests/{reference}"
    return client.post_form(
        page,
        f"{page}/status",
        {
            "expected_status": "contacted",
            "to_status": "scheduled",
            "note": "",
            "appointment_date": day,
            "appointment_time": at,
        },
    )


def _request(url: str, reference: str):
    with session_scope(url) as session:
        return outbox.request_by_reference(session, reference)


def _texts(url: str, reference: str):
    with session_scope(url) as session:
        return outbox.messages_of(session, outbox.request_by_reference(session, reference).id)


def _actions(url: str, reference: str) -> list[tuple[str, str]]:
    page = list_audit_events(AuditFilters(request_reference=reference), url=url)
    return [(event.action, event.detail) for event in reversed(page.items)]


def test_scheduling_without_a_date_and_time_is_refused_and_changes_nothing(
    signed_in, database_url
) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    page = f"/staff/requests/{reference}"
    response = signed_in.post_form(
        page, f"{page}/status", {"expected_status": "contacted", "to_status": "scheduled"}
    )
    assert response.status_code == 400
    assert "Enter the appointment&#39;s date and time" in response.get_data(as_text=True)
    assert _request(database_url, reference).status == "contacted"
    assert _texts(database_url, reference) == []


def test_scheduling_takes_clinic_time_and_shows_the_planned_texts(signed_in, database_url) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    response = _schedule(signed_in, reference)
    assert response.status_code == 302

    request = _request(database_url, reference)
    # 9:30 in New York in May is 13:30 UTC.
    assert request.appointment_at == datetime(2030, 5, 10, 13, 30, tzinfo=timezone.utc)
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "2030-05-10 09:30 EDT" in html
    for label in (
        "Confirmation",
        "Cycle and pregnancy check",
        "Day-before preparation",
        "Day-after check-in",
    ):
        assert label in html
    assert "2030-05-07 10:00 EDT" in html  # the cycle check, 3 days before at 10:00
    assert ("change_status", "contacted -> scheduled; 4 texts planned") in _actions(
        database_url, reference
    )


def test_a_patient_who_asked_for_a_call_gets_no_texts_and_staff_see_why(
    signed_in, database_url
) -> None:
    reference = add_request(database_url, status="contacted", contact_method="call")
    _schedule(signed_in, reference)
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "No texts: the patient asked to be contacted by call." in html


def test_rescheduling_replans_and_a_stale_form_is_refused(signed_in, database_url) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    _schedule(signed_in, reference)
    page = f"/staff/requests/{reference}"
    fields = {
        "expected_version": "1",
        "appointment_date": "2030-05-17",
        "appointment_time": "14:00",
    }
    response = signed_in.post_form(page, f"{page}/appointment", fields)
    assert response.status_code == 302
    html = signed_in.get(page).get_data(as_text=True)
    assert "Rescheduled; 4 texts planned." in html
    assert "2030-05-17 14:00 EDT" in html
    assert "Cancelled: the appointment was rescheduled." in html
    states = sorted((row.appointment_version, row.state) for row in _texts(database_url, reference))
    assert states == [(1, "cancelled")] * 4 + [(2, "planned")] * 4
    assert ("reschedule", "appointment moved; 4 texts planned") in _actions(database_url, reference)

    # A colleague's page still shows version 1: refused, nothing moves.
    signed_in.post_form(page, f"{page}/appointment", {**fields, "appointment_date": "2030-06-01"})
    assert _request(database_url, reference).appointment_at.astimezone(NEW_YORK).day == 17


def test_cancelling_cancels_the_pending_texts(signed_in, database_url) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    _schedule(signed_in, reference)
    page = f"/staff/requests/{reference}"
    signed_in.post_form(
        page, f"{page}/status", {"expected_status": "scheduled", "to_status": "cancelled"}
    )
    assert {row.state for row in _texts(database_url, reference)} == {"cancelled"}
    assert "Cancelled: the appointment was cancelled." in signed_in.get(page).get_data(as_text=True)


def test_flags_show_on_the_page_in_the_filter_and_count_and_can_be_cleared(
    signed_in, database_url
) -> None:
    flagged = add_request(database_url, status="scheduled", contact_method="text")
    quiet = add_request(database_url, status="scheduled", contact_method="text")
    with session_scope(database_url) as session:
        request = outbox.request_by_reference(session, flagged)
        outbox.raise_flag(
            session,
            request.id,
            outbox.AFTERCARE_CONCERN,
            'Replied "Fever, heavy bleeding, bad or worse pain, or a reaction" to the checkin text',
            utc_now(),
        )

    listed = signed_in.get("/staff/requests?flagged=y").get_data(as_text=True)
    assert flagged in listed and quiet not in listed
    assert "Flagged <strong>1</strong>" in listed
    page = f"/staff/requests/{flagged}"
    html = signed_in.get(page).get_data(as_text=True)
    assert "Aftercare concern" in html
    assert "Fever, heavy bleeding" in html

    response = signed_in.post_form(page, f"{page}/flags/clear")
    assert response.status_code == 302
    listed = signed_in.get("/staff/requests?flagged=y").get_data(as_text=True)
    assert flagged not in listed
    assert "Flagged <strong>0</strong>" in listed
    assert ("clear_flags", "1 flag(s) cleared") in _actions(database_url, flagged)
