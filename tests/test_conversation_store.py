"""Rasa's SQL tracker store as configured here: its database errors never quote a patient's words."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from conversation_store import QuietSQLTrackerStore
from scripts.assistant_servers import scratch_postgres_database

PATIENT_WORDS = "my name is Ana Secretname and I am bleeding"


def test_a_failed_save_does_not_carry_the_patients_words(tmp_path: Path) -> None:
    store = QuietSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE events"))
    tracker = DialogueStateTracker("sms:+12015550123", slots=[])
    tracker.update(UserUttered(PATIENT_WORDS))

    with pytest.raises(sa.exc.OperationalError) as failure:
        asyncio.run(store.save(tracker))

    assert "no such table: events" in str(failure.value)
    assert "Secretname" not in str(failure.value)
    assert "hidden" in str(failure.value)


def test_it_still_keeps_conversations(tmp_path: Path) -> None:
    store = QuietSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    tracker = DialogueStateTracker("web:abc", slots=[])
    tracker.update(UserUttered("does an hsg hurt"))

    asyncio.run(store.save(tracker))

    kept = asyncio.run(store.retrieve("web:abc"))
    assert [event.text for event in kept.events if isinstance(event, UserUttered)] == [
        "does an hsg hurt"
    ]


def test_sqlite_commits_append_to_a_write_ahead_log(tmp_path: Path) -> None:
    # A turn's commit then costs no fsync of the database; PostgreSQL is left as it is.
    store = QuietSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    tracker = DialogueStateTracker("web:abc", slots=[])
    tracker.update(UserUttered("does an hsg hurt"))
    asyncio.run(store.save(tracker))
    # WAL is a property of the file: the staff pages' read-only connection finds it too.
    with sqlite3.connect(tmp_path / "t.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_keeps_its_connection_so_a_turn_does_not_checkpoint(tmp_path: Path) -> None:
    # Closing the last connection to a WAL database folds the log into the database and
    # deletes it: without a pool every turn paid that. The log outlives the turn now.
    store = QuietSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    tracker = DialogueStateTracker("web:abc", slots=[])
    tracker.update(UserUttered("does an hsg hurt"))

    asyncio.run(store.save(tracker))

    assert (tmp_path / "t.db-wal").exists()
    assert store.engine.hide_parameters
    store.engine.dispose()
    assert not (tmp_path / "t.db-wal").exists()


def stores_on(url: str) -> tuple[SQLTrackerStore, QuietSQLTrackerStore]:
    """Rasa's own SQL tracker store and this project's, on the same database."""
    parts = sa.engine.make_url(url)
    settings = dict(
        dialect="sqlite" if parts.get_backend_name() == "sqlite" else "postgresql",
        host=parts.host,
        port=parts.port,
        db=parts.database,
        username=parts.username,
        password=parts.password,
    )
    return SQLTrackerStore(DOMAIN, **settings), QuietSQLTrackerStore(DOMAIN, **settings)


@pytest.fixture(params=["sqlite", "postgres"])
def tracker_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for the tracker stores: a SQLite file, or one on TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'conversations.db'}"
        return
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    with scratch_postgres_database(server_url) as url:
        yield url


DOMAIN = Domain.from_dict(
    {"intents": ["pain"], "slots": {"phone": {"type": "any", "mappings": [{"type": "custom"}]}}}
)


def a_conversation_in_two_sessions(sender_id: str) -> list[list[Event]]:
    """Three turns' new events: a first session, then a second one started later."""
    return [
        [
            SessionStarted(timestamp=1.0),
            ActionExecuted("action_listen", timestamp=1.1),
            UserUttered("does it hurt?", {"name": "pain", "confidence": 0.9}, timestamp=2.0),
        ],
        [
            ActionExecuted("utter_pain", timestamp=2.1),
            SlotSet("phone", "2015550123", timestamp=2.2),
        ],
        [
            ActionExecuted("action_session_start", timestamp=9.0),
            SessionStarted(timestamp=9.0),
            SlotSet("phone", "2015550123", timestamp=9.0),
            ActionExecuted("action_listen", timestamp=9.1),
            UserUttered("and after?", {"name": "pain", "confidence": 0.8}, timestamp=10.0),
        ],
    ]


def saved_turn_by_turn(store: SQLTrackerStore, sender_id: str) -> None:
    tracker = DialogueStateTracker(sender_id, slots=DOMAIN.slots)
    for new_events in a_conversation_in_two_sessions(sender_id):
        for event in new_events:
            tracker.update(event)
        asyncio.run(store.save(tracker))
        # As Rasa does: the next turn starts from what the store gives back.
        tracker = asyncio.run(store.retrieve(sender_id))


def stored_rows(store: SQLTrackerStore) -> list[tuple]:
    table = store.SQLEvent.__table__
    columns = [c for c in table.c if c.name != "id"]
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(*columns).order_by(table.c.id))]


def test_turns_are_stored_and_read_back_as_rasas_own_store_does(tracker_database_url: str) -> None:
    rasas, ours = stores_on(tracker_database_url)

    saved_turn_by_turn(rasas, "web:rasas")
    saved_turn_by_turn(ours, "web:ours")

    rows = stored_rows(ours)
    assert [row[1:] for row in rows if row[0] == "web:ours"] == [
        row[1:] for row in rows if row[0] == "web:rasas"
    ]
    assert len([row for row in rows if row[0] == "web:ours"]) == 10
    for sender_id in ("web:rasas", "web:ours"):
        expected = asyncio.run(rasas.retrieve(sender_id))
        read = asyncio.run(ours.retrieve(sender_id))
        assert list(read.events) == list(expected.events)
        # The latest session only: from the event stamped with its start.
        assert [type(event) for event in read.events][:3] == [
            ActionExecuted,
            SessionStarted,
            SlotSet,
        ]
        assert read.get_slot("phone") == "2015550123"
    full = asyncio.run(ours.retrieve_full_tracker("web:ours"))
    assert len(full.events) == 10
    assert asyncio.run(ours.retrieve("web:nobody")) is None
