"""Unanswered messages for the insights page: stored, read, and purged with the retention rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from appointments import handoffs, retention, unanswered
from appointments.database import session_scope

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_messages_are_kept_without_button_payloads_and_cut_to_length(database_url) -> None:
    with session_scope(database_url) as session:
        unanswered.record_unanswered(
            session, kind="rephrase", channel="twilio", text=" hmm?? ", now=NOW
        )
        unanswered.record_unanswered(
            session, kind="fallback", channel="socketio", text="/pain", now=NOW
        )
        unanswered.record_unanswered(
            session, kind="handoff", channel="socketio", text="x" * 5000, now=NOW
        )
    with session_scope(database_url) as session:
        rows = unanswered.unanswered_since(session)
        assert [(row.kind, row.text[:5], len(row.text)) for row in rows] == [
            ("rephrase", "hmm??", 5),
            ("handoff", "xxxxx", unanswered.MAX_TEXT_LENGTH),
        ]


def test_the_purge_deletes_old_unanswered_messages_and_closed_inbox_rows(database_url) -> None:
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=10)
    with session_scope(database_url) as session:
        unanswered.record_unanswered(
            session, kind="rephrase", channel="twilio", text="old one", now=old
        )
        unanswered.record_unanswered(
            session, kind="rephrase", channel="twilio", text="new one", now=recent
        )
        closed = handoffs.record_handoff_need(
            session, "sms:+12015550100", "asked_for_person", now=old
        )
        handoffs.take_over(session, closed.id, "alice", now=old)
        handoffs.hand_back(session, closed.id, "alice", now=old)
        # Still waiting however old: a person has not answered it yet.
        handoffs.record_handoff_need(session, "sms:+12015550101", "asked_for_person", now=old)
    with session_scope(database_url) as session:
        counts = retention.purge(session, None, days=365, now=NOW)
    assert counts.unanswered_messages == 1 and counts.handoffs == 1
    with session_scope(database_url) as session:
        assert [row.text for row in unanswered.unanswered_since(session)] == ["new one"]
        assert [row.conversation_id for row in handoffs.list_open_handoffs(session)] == [
            "sms:+12015550101"
        ]
