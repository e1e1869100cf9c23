"""The staff inbox's rows on SQLite and PostgreSQL: recording, one holder at a time, idle holds."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from appointments import handoffs
from appointments.database import session_scope
from appointments.models import HandoffRequest
from tests.appointments.staff_factories import add_request

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)


def _record(url: str, conversation_id: str, reason: str, now: datetime = NOW) -> int:
    with session_scope(url) as session:
        return handoffs.record_handoff_need(session, conversation_id, reason, now=now).id


def test_a_need_is_recorded_once_per_open_conversation_and_the_most_urgent_reason_wins(
    database_url,
) -> None:
    first = _record(database_url, "web:abc", handoffs.NOT_UNDERSTOOD_TWICE)
    again = _record(database_url, "web:abc", handoffs.WARNING_SIGN, NOW + timedelta(minutes=1))
    later = _record(database_url, "web:abc", handoffs.ASKED_FOR_PERSON, NOW + timedelta(minutes=2))
    assert first == again == later
    with session_scope(database_url) as session:
        row = session.get(HandoffRequest, first)
        assert row.reason == handoffs.WARNING_SIGN
        assert row.channel == "socketio" and row.status == handoffs.WAITING
        assert row.created_at == NOW
        assert handoffs.count_waiting(session) == 1


def test_the_request_reference_is_found_and_channels_follow_the_id(database_url) -> None:
    reference = add_request(database_url, conversation_id="sms:+12015550123", channel="sms")
    handoff_id = _record(database_url, "sms:+12015550123", handoffs.ASKED_FOR_PERSON)
    with session_scope(database_url) as session:
        row = session.get(HandoffRequest, handoff_id)
        assert row.request_reference == reference
        assert row.channel == "twilio"


def test_two_staff_members_cannot_hold_one_conversation(database_url) -> None:
    handoff_id = _record(database_url, "web:one", handoffs.ASKED_FOR_PERSON)
    with session_scope(database_url) as session:
        row, claimed = handoffs.take_over(session, handoff_id, "alice")
        assert claimed and row.held_by == "alice"
    with session_scope(database_url) as session:
        with pytest.raises(handoffs.HoldError) as refused:
            handoffs.take_over(session, handoff_id, "bob")
        assert refused.value.holder == "alice"
        assert "alice" in str(refused.value)
    with session_scope(database_url) as session:
        # Her second click is not a second claim.
        assert handoffs.take_over(session, handoff_id, "alice")[1] is False
        with pytest.raises(handoffs.HoldError):
            handoffs.note_staff_activity(session, handoff_id, "bob")
        with pytest.raises(handoffs.HoldError):
            handoffs.hand_back(session, handoff_id, "bob")


def test_simultaneous_take_overs_have_exactly_one_winner(database_url) -> None:
    handoff_id = _record(database_url, "web:race", handoffs.ASKED_FOR_PERSON)
    results: dict[str, object] = {}
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        barrier.wait()
        try:
            with session_scope(database_url) as session:
                results[name] = handoffs.take_over(session, handoff_id, name)[1]
        except handoffs.HoldError as error:
            results[name] = error

    threads = [threading.Thread(target=claim, args=(f"staff{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, result in results.items() if result is True]
    assert len(winners) == 1, results
    for name, result in results.items():
        if name not in winners:
            assert isinstance(result, handoffs.HoldError) and result.holder == winners[0]


def test_hand_back_closes_the_row_and_a_new_need_opens_a_new_one(database_url) -> None:
    handoff_id = _record(database_url, "web:two", handoffs.ASKED_FOR_PERSON)
    with session_scope(database_url) as session:
        handoffs.take_over(session, handoff_id, "alice")
    with session_scope(database_url) as session:
        row = handoffs.hand_back(session, handoff_id, "alice")
        assert row.status == handoffs.CLOSED and row.closed_by == "alice"
        assert handoffs.count_waiting(session) == 0
        assert handoffs.list_open_handoffs(session) == []
    assert _record(database_url, "web:two", handoffs.ASKED_FOR_PERSON) != handoff_id


def test_an_idle_hold_returns_to_the_inbox_with_a_controlled_clock(database_url) -> None:
    handoff_id = _record(database_url, "web:idle", handoffs.ASKED_FOR_PERSON)
    idle = timedelta(minutes=15)
    with session_scope(database_url) as session:
        handoffs.take_over(session, handoff_id, "alice", now=NOW)
    with session_scope(database_url) as session:
        handoffs.note_staff_activity(session, handoff_id, "alice", now=NOW + timedelta(minutes=10))
    with session_scope(database_url) as session:
        assert handoffs.idle_holds(session, idle, NOW + timedelta(minutes=24)) == []
        assert (
            handoffs.release_idle_hold(session, handoff_id, idle, NOW + timedelta(minutes=24))
            is None
        )
        assert handoffs.idle_holds(session, idle, NOW + timedelta(minutes=25)) == [handoff_id]
        row = handoffs.release_idle_hold(session, handoff_id, idle, NOW + timedelta(minutes=25))
        assert row.status == handoffs.WAITING and row.held_by is None
    with session_scope(database_url) as session:
        # Back in the inbox: someone else can take it now.
        assert handoffs.take_over(session, handoff_id, "bob")[0].held_by == "bob"
