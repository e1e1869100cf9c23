"""The outbox and flags in the data layer, on SQLite and PostgreSQL: planning with scheduling,
re-planning, cancelling, opt-out, claiming by one worker only, delivery statuses and flags."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from appointments import outbox
from appointments.audit import AuditFilters, list_audit_events
from appointments.database import get_engine, migrate, session_scope
from appointments.models import AppointmentRequest, OutboundMessage, RequestFlag
from appointments.request_review import (
    StatusChangeError,
    change_status,
    reschedule,
)
from appointments.requests import set_sms_opt_out, update_sms_delivery_status
from outreach.plan import plan_messages
from tests.appointments.staff_factories import add_request
from tests.appointments.test_staff_schema import _alembic_config

NEW_YORK = ZoneInfo("America/New_York")


def _appointment(days: int = 10) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)


def _schedule(url: str, reference: str, appointment_at: datetime, expected: str = "contacted"):
    planned = [
        (message.kind, message.due_at, message.useful_until)
        for message in plan_messages(appointment_at, NEW_YORK, datetime.now(timezone.utc))
    ]
    return change_status(
        reference,
        to_status="scheduled",
        expected_status=expected,
        note="",
        staff_username="alice",
        appointment_at=appointment_at,
        planned=planned,
        url=url,
    )


def _rows(url: str, reference: str) -> list[OutboundMessage]:
    with session_scope(url) as session:
        request = outbox.request_by_reference(session, reference)
        return outbox.messages_of(session, request.id)


def test_migration_0004_adds_the_outreach_tables_and_goes_back(database_url: str) -> None:
    tables = set(inspect(get_engine(database_url)).get_table_names())
    assert {"outbound_messages", "request_flags"} <= tables
    unique = {
        tuple(constraint["column_names"])
        for constraint in inspect(get_engine(database_url)).get_unique_constraints(
            "outbound_messages"
        )
    }
    assert ("request_id", "kind", "appointment_version") in unique

    command.downgrade(_alembic_config(database_url), "0003")
    inspector = inspect(get_engine(database_url))
    assert "outbound_messages" not in inspector.get_table_names()
    assert "appointment_at" not in {
        c["name"] for c in inspector.get_columns("appointment_requests")
    }
    migrate(database_url)


def test_scheduling_needs_a_time_and_plans_four_texts_for_a_text_patient(database_url: str) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    with pytest.raises(StatusChangeError, match="date and time"):
        change_status(
            reference,
            to_status="scheduled",
            expected_status="contacted",
            note="",
            staff_username="alice",
            url=database_url,
        )
    appointment_at = _appointment()
    _schedule(database_url, reference, appointment_at)

    rows = _rows(database_url, reference)
    assert [row.kind for row in rows] == ["confirmation", "cycle_check", "preparation", "checkin"]
    assert {row.state for row in rows} == {"planned"}
    assert {row.appointment_version for row in rows} == {1}
    with session_scope(database_url) as session:
        request = outbox.request_by_reference(session, reference)
        assert request.appointment_at == appointment_at
    events = list_audit_events(AuditFilters(request_reference=reference), url=database_url).items
    assert "4 texts planned" in events[0].detail


def test_a_patient_who_asked_for_a_call_gets_no_texts(database_url: str) -> None:
    reference = add_request(database_url, status="contacted", contact_method="call")
    _schedule(database_url, reference, _appointment())
    assert _rows(database_url, reference) == []


def test_the_same_text_cannot_be_planned_twice_for_one_appointment(database_url: str) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    _schedule(database_url, reference, _appointment())
    with pytest.raises(IntegrityError), session_scope(database_url) as session:
        request = outbox.request_by_reference(session, reference)
        now = datetime.now(timezone.utc)
        outbox.plan(session, request, [("confirmation", now, now)], now)


def test_rescheduling_cancels_what_is_pending_and_plans_again(database_url: str) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    _schedule(database_url, reference, _appointment(10))
    moved_to = _appointment(14)
    planned = [
        (m.kind, m.due_at, m.useful_until)
        for m in plan_messages(moved_to, NEW_YORK, datetime.now(timezone.utc))
    ]
    assert (
        reschedule(
            reference,
            appointment_at=moved_to,
            expected_version=1,
            planned=planned,
            staff_username="bob",
            url=database_url,
        )
        == 4
    )
    rows = _rows(database_url, reference)
    current = [row for row in rows if row.appointment_version == 2]
    old = [row for row in rows if row.appointment_version == 1]
    assert {row.state for row in current} == {"planned"} and len(current) == 4
    assert {row.state for row in old} == {"cancelled"}
    assert {row.reason for row in old} == {"Cancelled: the appointment was rescheduled."}
    # A second member of staff working from the page they loaded before is refused.
    with pytest.raises(StatusChangeError):
        reschedule(
            reference,
            appointment_at=moved_to,
            expected_version=1,
            planned=planned,
            staff_username="carol",
            url=database_url,
        )


def test_cancelling_the_appointment_cancels_its_pending_texts(database_url: str) -> None:
    reference = add_request(database_url, status="contacted", contact_method="text")
    _schedule(database_url, reference, _appointment())
    change_status(
        reference,
        to_status="cancelled",
        expected_status="scheduled",
        note="",
        staff_username="alice",
        url=database_url,
    )
    rows = _rows(database_url, reference)
    assert {row.state for row in rows} == {"cancelled"}
    assert {row.reason for row in rows} == {"Cancelled: the appointment was cancelled."}


def test_stop_cancels_pending_texts_and_an_opted_out_number_gets_none_planned(
    database_url: str,
) -> None:
    reference = add_request(
        database_url, status="contacted", contact_method="text", phone_e164="+12015550177"
    )
    _schedule(database_url, reference, _appointment())
    set_sms_opt_out("+12015550177", True, url=database_url)
    assert {row.state for row in _rows(database_url, reference)} == {"cancelled"}
    assert "STOP" in _rows(database_url, reference)[0].reason

    other = add_request(
        database_url, status="contacted", contact_method="text", phone_e164="+12015550177"
    )
    _schedule(database_url, other, _appointment())
    assert {row.state for row in _rows(database_url, other)} == {"cancelled"}


def _end(url: str, reference: str, to_status: str) -> None:
    change_status(
        reference,
        to_status=to_status,
        expected_status="scheduled",
        note="",
        staff_username="alice",
        url=url,
    )


def _states(url: str, reference: str) -> dict[tuple[str, int], str]:
    return {(row.kind, row.appointment_version): row.state for row in _rows(url, reference)}


def test_start_plans_again_the_texts_stop_cancelled_that_are_still_wanted(
    database_url: str,
) -> None:
    phone = "+12015550178"
    kinds = ("confirmation", "cycle_check", "preparation", "checkin")
    still_scheduled, ended, completed, moved, other_number = (
        add_request(database_url, status="contacted", contact_method="text", phone_e164=number)
        for number in (phone, phone, phone, phone, "+12015550179")
    )
    for reference in (still_scheduled, ended, completed, moved, other_number):
        _schedule(database_url, reference, _appointment())
    set_sms_opt_out(phone, True, url=database_url)
    set_sms_opt_out("+12015550179", True, url=database_url)
    # While the number is opted out: one request ends, one test is done, one is moved.
    _end(database_url, ended, "cancelled")
    _end(database_url, completed, "completed")
    moved_to = _appointment(days=12)
    reschedule(
        moved,
        appointment_at=moved_to,
        expected_version=1,
        planned=[
            (m.kind, m.due_at, m.useful_until)
            for m in plan_messages(moved_to, NEW_YORK, datetime.now(timezone.utc))
        ],
        staff_username="bob",
        url=database_url,
    )
    with session_scope(database_url) as session:
        request = outbox.request_by_reference(session, still_scheduled)
        prep = next(r for r in outbox.messages_of(session, request.id) if r.kind == "preparation")
        prep.useful_until = datetime.now(timezone.utc) - timedelta(minutes=1)
    before_start = datetime.now(timezone.utc)

    set_sms_opt_out(phone, False, url=database_url)

    assert _states(database_url, still_scheduled) == {
        ("confirmation", 1): "planned",
        ("cycle_check", 1): "planned",
        ("preparation", 1): "cancelled",  # no longer of use
        ("checkin", 1): "planned",
    }
    assert set(_states(database_url, ended).values()) == {"cancelled"}
    assert _states(database_url, completed) == {
        (kind, 1): "planned" if kind == "checkin" else "cancelled" for kind in kinds
    }
    assert _states(database_url, moved) == {
        **{(kind, 1): "cancelled" for kind in kinds},
        **{(kind, 2): "planned" for kind in kinds},
    }
    assert set(_states(database_url, other_number).values()) == {"cancelled"}
    replanned = {r.kind: r for r in _rows(database_url, still_scheduled) if r.state == "planned"}
    assert {r.reason for r in replanned.values()} == {""}
    # The confirmation, due during the opt-out, goes now; the others keep their time.
    assert replanned["confirmation"].next_attempt_at >= before_start
    for kind in ("cycle_check", "checkin"):
        assert replanned[kind].next_attempt_at == replanned[kind].due_at > before_start
    with session_scope(database_url) as session:
        due = outbox.due_ids(session, datetime.now(timezone.utc), 50)
    assert replanned["confirmation"].id in due


def _due_confirmation(url: str) -> int:
    reference = add_request(url, status="contacted", contact_method="text")
    _schedule(url, reference, _appointment())
    return next(row.id for row in _rows(url, reference) if row.kind == "confirmation")


def test_a_row_is_claimed_once(database_url: str) -> None:
    message_id = _due_confirmation(database_url)
    now = datetime.now(timezone.utc)
    with session_scope(database_url) as session:
        assert message_id in outbox.due_ids(session, now, 10)
        first = outbox.claim(session, message_id, "worker-a", now)
    with session_scope(database_url) as session:
        second = outbox.claim(session, message_id, "worker-b", now)
    assert first is not None and first.kind == "confirmation"
    assert second is None
    with session_scope(database_url) as session:
        assert message_id not in outbox.due_ids(session, now, 10)


def test_two_workers_claiming_at_once_get_each_row_once(database_url: str) -> None:
    ids = [_due_confirmation(database_url) for _ in range(6)]
    now = datetime.now(timezone.utc)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        start.wait()
        for message_id in ids:
            with session_scope(database_url) as session:
                if outbox.claim(session, message_id, name, now) is not None:
                    claimed[name].append(message_id)

    threads = [threading.Thread(target=work, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)


def test_delivery_statuses_move_forward_only_and_failures_flag_the_request(
    database_url: str,
) -> None:
    message_id = _due_confirmation(database_url)
    now = datetime.now(timezone.utc)
    with session_scope(database_url) as session:
        outbox.claim(session, message_id, "w", now)
        outbox.mark_sent(session, message_id, "SM" + "1" * 32, "queued", now)
    assert update_sms_delivery_status("SM" + "1" * 32, "sent", url=database_url) == "sent"
    assert (
        update_sms_delivery_status("SM" + "1" * 32, "undelivered", "30003", url=database_url)
        == "undelivered"
    )
    # A late "sent" callback does not undo the final state.
    assert update_sms_delivery_status("SM" + "1" * 32, "sent", url=database_url) == "undelivered"
    assert update_sms_delivery_status("SM" + "9" * 32, "delivered", url=database_url) is None
    with session_scope(database_url) as session:
        row = session.get(OutboundMessage, message_id)
        assert "30003" in row.reason
        flags = outbox.open_flags(session, row.request_id)
        assert [flag.reason for flag in flags] == [outbox.DELIVERY_FAILED]
        assert "confirmation" in flags[0].raised_by
        assert outbox.count_flagged_requests(session) == 1
        assert outbox.clear_flags(session, row.request_id, "alice", now) == 1
        assert outbox.count_flagged_requests(session) == 0
    with session_scope(database_url) as session:
        cleared = session.execute(select(RequestFlag)).scalar_one()
        assert cleared.cleared_by == "alice"


def test_times_handed_over_count_claimed_and_sent_rows_only(database_url: str) -> None:
    first, second = _due_confirmation(database_url), _due_confirmation(database_url)
    now = datetime.now(timezone.utc)
    with session_scope(database_url) as session:
        phone = session.get(OutboundMessage, first).phone_e164
        outbox.claim(session, first, "w", now)
        assert len(outbox.handed_over_times(session, phone, now - timedelta(days=7))) == 1
        assert (
            outbox.handed_over_times(session, phone, now - timedelta(days=7), excluding=first) == []
        )
        outbox.claim(session, second, "w", now)
        outbox.release(session, second, now + timedelta(hours=1), "Waiting", now)
        assert len(outbox.handed_over_times(session, phone, now - timedelta(days=7))) == 1
        assert session.execute(select(AppointmentRequest)).scalars().first() is not None


def test_a_text_twilio_refused_does_not_count_towards_the_limits(database_url: str) -> None:
    message_id = _due_confirmation(database_url)
    now = datetime.now(timezone.utc)
    with session_scope(database_url) as session:
        phone = session.get(OutboundMessage, message_id).phone_e164
        outbox.claim(session, message_id, "w", now)
        outbox.record_attempt_failed(session, message_id, now)
        outbox.finish(session, message_id, outbox.FAILED, "Failed: refused", now)
        assert outbox.handed_over_times(session, phone, now - timedelta(days=7)) == []
