"""Retention: what a purge deletes and keeps, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine, make_url

from appointments import outbox, retention
from appointments.audit import AuditFilters, list_audit_events
from appointments.database import migrate, session_scope
from appointments.models import (
    AppointmentRequest,
    OutboundMessage,
    RequestFlag,
    RequestStatusChange,
)
from appointments.retention import PurgeCounts, RetentionSettingError, purge, retention_days
from tests.appointments.staff_factories import add_request

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
DAYS = 365
CUTOFF = NOW - timedelta(days=DAYS)
LONG_AGO = datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)
LATELY = datetime(2026, 5, 20, 9, 0, tzinfo=timezone.utc)
# Rasa's own table (rasa/core/tracker_store.py), created as its SQLTrackerStore creates it.
RASA_EVENTS = SQLTrackerStore.SQLEvent.__table__


@pytest.fixture
def tracker_engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """Rasa's tracker store: an SQLite file of its own, or the test's PostgreSQL schema."""
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'conversations.db'}"
    else:
        url = database_url
    engine = create_engine(url, future=True)
    RASA_EVENTS.create(engine)
    yield engine
    engine.dispose()


def session_events(started: datetime, question: str = "does an hsg hurt?") -> list[Event]:
    """One Rasa session as the Rasa server logs it: session start, disclaimer, a question."""
    at = started.timestamp()
    return [
        ActionExecuted("action_session_start", timestamp=at),
        BotUttered("General information only.", timestamp=at + 0.1),
        SessionStarted(timestamp=at + 0.2),
        ActionExecuted("action_listen", timestamp=at + 0.3),
        UserUttered(question, intent={"name": "pain", "confidence": 0.9}, timestamp=at + 5),
        ActionExecuted("utter_pain", timestamp=at + 6),
        BotUttered("Most people feel cramping.", timestamp=at + 6.1),
    ]


def write_conversation(engine: Engine, sender_id: str, *sessions: list[Event]) -> None:
    """Rows as SQLTrackerStore.save writes them."""
    rows = []
    for event in [event for session in sessions for event in session]:
        data = event.as_dict()
        rows.append(
            {
                "sender_id": sender_id,
                "type_name": event.type_name,
                "timestamp": data.get("timestamp"),
                "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
                "action_name": data.get("name"),
                "data": json.dumps(data),
            }
        )
    with engine.begin() as connection:
        connection.execute(RASA_EVENTS.insert(), rows)


def add_status_change(url: str, reference: str, to_status: str, changed_at: datetime) -> None:
    with session_scope(url) as session:
        request_id = session.execute(
            select(AppointmentRequest.id).where(AppointmentRequest.reference == reference)
        ).scalar_one()
        session.add(
            RequestStatusChange(
                request_id=request_id,
                from_status="new",
                to_status=to_status,
                note="",
                staff_username="alice",
                changed_at=changed_at,
            )
        )


def references(url: str) -> set[str]:
    with session_scope(url) as session:
        return set(session.execute(select(AppointmentRequest.reference)).scalars())


def status_change_count(url: str) -> int:
    with session_scope(url) as session:
        return session.execute(select(func.count()).select_from(RequestStatusChange)).scalar_one()


def conversation_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(RASA_EVENTS.c.sender_id).distinct()).scalars())


def run(url: str, engine: Engine, dry_run: bool = False) -> PurgeCounts:
    with engine.begin() as tracker, session_scope(url) as session:
        return purge(session, tracker, days=DAYS, now=NOW, dry_run=dry_run)


def purge_events(url: str) -> list:
    return list_audit_events(AuditFilters(action=retention.PURGE), url=url).items


@pytest.fixture
def stores(database_url: str, tracker_engine: Engine) -> dict[str, str]:
    """Requests and conversations on both sides of the period; the name says what should stay."""
    url, engine = database_url, tracker_engine
    made = {
        "gone_completed": add_request(
            url, created_at=LONG_AGO, status="completed", conversation_id="web:gone-completed"
        ),
        "gone_declined": add_request(
            url,
            created_at=CUTOFF - timedelta(minutes=1),
            status="declined",
            conversation_id="sms:+15550000001",
        ),
        "gone_cancelled": add_request(
            url, created_at=LONG_AGO, status="cancelled", conversation_id="sms:+15550000003"
        ),
        "kept_recent_change": add_request(
            url, created_at=LONG_AGO, status="cancelled", conversation_id="web:recent-change"
        ),
        "kept_open_old": add_request(
            url, created_at=LONG_AGO, status="scheduled", conversation_id="sms:+15550000003"
        ),
        "kept_new_old": add_request(
            url, created_at=LONG_AGO, status="new", conversation_id="web:new-old"
        ),
        "kept_closed_recently": add_request(
            url,
            created_at=CUTOFF + timedelta(minutes=1),
            status="completed",
            conversation_id="web:closed-recently",
        ),
    }
    for to_status, days_later in (("contacted", 1), ("scheduled", 5), ("completed", 20)):
        add_status_change(
            url, made["gone_completed"], to_status, LONG_AGO + timedelta(days=days_later)
        )
    add_status_change(url, made["kept_recent_change"], "cancelled", LATELY)

    write_conversation(engine, "web:gone-completed", session_events(LONG_AGO))
    write_conversation(engine, "web:idle", session_events(LONG_AGO), session_events(LONG_AGO))
    # A returning SMS patient: the old request goes, the recent conversation stays.
    write_conversation(engine, "sms:+15550000001", session_events(LONG_AGO), session_events(LATELY))
    # Also the conversation of a kept (open) request: it stays however old it is.
    write_conversation(engine, "sms:+15550000003", session_events(LONG_AGO))
    write_conversation(engine, "web:recent-change", session_events(LONG_AGO))
    write_conversation(engine, "web:new-old", session_events(LONG_AGO))
    write_conversation(engine, "web:recent", session_events(LATELY))
    return made


def test_purge_deletes_exactly_the_closed_and_idle(
    database_url: str, tracker_engine: Engine, stores: dict[str, str]
) -> None:
    counts = run(database_url, tracker_engine)

    assert counts == PurgeCounts(requests=3, status_changes=3, conversations=2, events=21)
    assert references(database_url) == {
        reference for name, reference in stores.items() if name.startswith("kept_")
    }
    # Only the kept request's own history is left.
    assert status_change_count(database_url) == 1
    assert conversation_ids(tracker_engine) == {
        "sms:+15550000001",
        "sms:+15550000003",
        "web:recent-change",
        "web:new-old",
        "web:recent",
    }


def test_the_purge_is_audited_with_counts_only(
    database_url: str, tracker_engine: Engine, stores: dict[str, str]
) -> None:
    run(database_url, tracker_engine)

    [event] = purge_events(database_url)
    assert event.staff_username is None
    assert event.request_reference is None
    assert event.detail == (
        "retention 365 days: requests 3, status changes 3, conversations 2 (events 21), unanswered messages 0, inbox rows 0"
    )


def test_a_second_purge_deletes_nothing(
    database_url: str, tracker_engine: Engine, stores: dict[str, str]
) -> None:
    run(database_url, tracker_engine)
    kept_requests, kept_conversations = references(database_url), conversation_ids(tracker_engine)

    assert run(database_url, tracker_engine) == PurgeCounts()

    assert references(database_url) == kept_requests
    assert conversation_ids(tracker_engine) == kept_conversations
    assert [event.detail for event in purge_events(database_url)] == [
        "retention 365 days: requests 0, status changes 0, conversations 0 (events 0), unanswered messages 0, inbox rows 0",
        "retention 365 days: requests 3, status changes 3, conversations 2 (events 21), unanswered messages 0, inbox rows 0",
    ]


def test_a_dry_run_counts_and_changes_nothing(
    database_url: str, tracker_engine: Engine, stores: dict[str, str]
) -> None:
    counts = run(database_url, tracker_engine, dry_run=True)

    assert counts == PurgeCounts(requests=3, status_changes=3, conversations=2, events=21)
    assert references(database_url) == set(stores.values())
    assert status_change_count(database_url) == 4
    assert len(conversation_ids(tracker_engine)) == 7
    assert purge_events(database_url) == []


def test_without_a_tracker_store_only_requests_are_purged(
    database_url: str, stores: dict[str, str]
) -> None:
    with session_scope(database_url) as session:
        counts = purge(session, None, days=DAYS, now=NOW)
    assert counts == PurgeCounts(requests=3, status_changes=3)


def test_conversations_written_by_rasa_itself_are_purged(sqlite_url: str, tmp_path: Path) -> None:
    migrate(sqlite_url)
    tracker_url = f"sqlite:///{tmp_path / 'rasa.db'}"
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "rasa.db"))
    for sender_id, started in (("web:idle", LONG_AGO), ("web:recent", LATELY)):
        tracker = DialogueStateTracker.from_events(sender_id, session_events(started))
        asyncio.run(store.save(tracker))
    store.engine.dispose()

    counts = retention.run_purge(days=DAYS, url=sqlite_url, tracker_url=tracker_url)

    assert (counts.conversations, counts.events) == (1, 7)
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "rasa.db"))
    assert asyncio.run(store.retrieve("web:idle")) is None
    assert asyncio.run(store.retrieve("web:recent")) is not None
    store.engine.dispose()


def test_a_missing_tracker_database_is_not_created(sqlite_url: str, tmp_path: Path) -> None:
    migrate(sqlite_url)
    missing = tmp_path / "no-conversations-yet.db"
    counts = retention.run_purge(days=DAYS, url=sqlite_url, tracker_url=f"sqlite:///{missing}")
    assert counts == PurgeCounts()
    assert not missing.exists()


@pytest.mark.parametrize(("value", "days"), [(None, 365), ("", 365), (" 30 ", 30), ("1", 1)])
def test_retention_days_default_and_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None, days: int
) -> None:
    if value is None:
        monkeypatch.delenv("RETENTION_DAYS", raising=False)
    else:
        monkeypatch.setenv("RETENTION_DAYS", value)
    assert retention_days() == days


@pytest.mark.parametrize("value", ["0", "-5", "a year", "1.5", "365d"])
def test_retention_days_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(RetentionSettingError, match="RETENTION_DAYS must be a positive whole"):
        retention_days(value)


def test_the_command_purges_and_prints_the_counts(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrate(sqlite_url)
    now = datetime.now(timezone.utc)
    old = add_request(sqlite_url, created_at=now - timedelta(days=40), status="declined")
    recent = add_request(sqlite_url, created_at=now - timedelta(days=20), status="declined")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TRACKER_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    monkeypatch.setenv("RETENTION_DAYS", "30")

    assert retention.main(["purge", "--dry-run"]) == 0
    assert capsys.readouterr().out == (
        "Would delete: requests 1, status changes 0, conversations 0 (events 0), unanswered messages 0, inbox rows 0; "
        "retention 30 days.\n"
    )
    assert references(sqlite_url) == {old, recent}

    assert retention.main(["purge"]) == 0
    assert capsys.readouterr().out.startswith("Deleted: requests 1,")
    assert references(sqlite_url) == {recent}


def test_the_command_refuses_a_bad_setting(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RETENTION_DAYS", "0")
    assert retention.main(["purge"]) == 2
    assert "RETENTION_DAYS must be a positive whole number of days" in capsys.readouterr().err


def test_a_purged_request_takes_its_texts_and_flags_with_it(
    database_url: str, tracker_engine: Engine
) -> None:
    gone = add_request(database_url, created_at=LONG_AGO, status="completed", contact_method="text")
    kept = add_request(database_url, created_at=LONG_AGO, status="scheduled", contact_method="text")
    with session_scope(database_url) as session:
        for reference in (gone, kept):
            request = outbox.request_by_reference(session, reference)
            outbox.plan(session, request, [("checkin", LONG_AGO, LONG_AGO)], LONG_AGO)
            outbox.raise_flag(session, request.id, outbox.DELIVERY_FAILED, "text", LONG_AGO)

    run(database_url, tracker_engine)

    assert references(database_url) == {kept}
    with session_scope(database_url) as session:
        assert session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(RequestFlag)).scalar_one() == 1
