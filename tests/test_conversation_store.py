"""Rasa's SQL tracker store as configured here: its database errors never quote a patient's words."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from conversation_store import QuietSQLTrackerStore

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
