"""Where Rasa keeps conversations: its SQL tracker store, with patient text kept out of error logs."""

from __future__ import annotations

import itertools
import json
from typing import Any, Dict, Text

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

import rasa_patches


class QuietSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store whose database errors never quote the statement's values.

    Rasa builds its engine without ``hide_parameters``, so an error while saving (a full disk,
    a lost connection) would log the row it tried to write: the patient's own words.
    endpoints.yml names this class as the tracker store's ``type``; its settings are Rasa's.
    On SQLite (``make run``, one machine) it also journals ahead (see ``journal_ahead``) and
    keeps its connections open (see ``pooled_sqlite_engine``).

    Each turn reads the conversation's latest session and appends its new events. Rasa does
    both through ORM queries built afresh each time, so SQLAlchemy traversed and keyed each
    query, and flushed each new event through its unit of work: about a fifth of the server's
    time under load. Here the same statements are built once (``latest_session_statements``)
    and the new events go in as one multi-row insert: the same rows, read and written the same
    way. Reading every session (the staff's full history) stays Rasa's own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Rasa builds the tracker store before its Agent: the patch that keeps the Agent from
        # wrapping it in a FailSafeTrackerStore (rasa_patches, 3.) must be in place by then.
        rasa_patches.install()
        super().__init__(*args, **kwargs)
        # Read by SQLAlchemy whenever it wraps a database error or logs a statement.
        self.engine.hide_parameters = True
        if self.engine.dialect.name == "sqlite":
            url = self.engine.url
            # Connections made while Rasa created the tables predate the settings below.
            self.engine.dispose()
            self.engine = pooled_sqlite_engine(url)
            self.sessionmaker.configure(bind=self.engine)
        self._latest_session, self._latest_session_count = latest_session_statements(
            self.SQLEvent.__table__
        )

    async def _retrieve(
        self, sender_id: Text, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        if fetch_events_from_all_sessions:
            return await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        with self.session_scope() as session:
            rows = session.execute(self._latest_session, {"sender_id": sender_id}).scalars()
            events = [json.loads(data) for data in rows]
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's save: the events since the last stored one, appended in one insert."""
        await self.stream_events(tracker)
        with self.session_scope() as session:
            stored = session.execute(
                self._latest_session_count, {"sender_id": tracker.sender_id}
            ).scalar_one()
            rows = [
                event_row(tracker.sender_id, event)
                for event in itertools.islice(tracker.events, stored, None)
            ]
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            session.commit()


def latest_session_statements(events: sa.Table) -> tuple[sa.sql.Select, sa.sql.Select]:
    """Rasa's query for a conversation's latest session (its data, and its count), built once.

    The events from the last ``session_started`` on, or all of them if there is none, in the
    order they were stored; as in Rasa's ``SQLTrackerStore._event_query``. Built once, a
    statement keeps its cache key, so each turn only binds the sender.
    """
    sender = sa.bindparam("sender_id", type_=events.c.sender_id.type)
    # An alias, or SQLAlchemy would correlate the subquery with the outer query's row.
    starts = events.alias("session_starts")
    session_start = (
        sa.select(sa.func.max(starts.c.timestamp))
        .where(starts.c.sender_id == sender, starts.c.type_name == SessionStarted.type_name)
        .scalar_subquery()
    )
    in_latest_session = sa.and_(
        events.c.sender_id == sender,
        sa.or_(events.c.timestamp >= session_start, session_start.is_(None)),
    )
    data = sa.select(events.c.data).where(in_latest_session).order_by(events.c.id)
    count = sa.select(sa.func.count()).select_from(events).where(in_latest_session)
    return data, count


def event_row(sender_id: Text, event: Any) -> Dict[Text, Any]:
    """The row Rasa's ``SQLTrackerStore.save`` stores for one event."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def pooled_sqlite_engine(url: sa.engine.URL) -> sa.engine.Engine:
    """An engine that keeps its SQLite connections between turns, each journalling ahead.

    SQLAlchemy 1.4 gives a SQLite file no pool: every turn opened a connection, set it up and
    closed it, and closing the last connection to a WAL database checkpoints the log into the
    database and deletes it, so each turn paid the checkpoint that WAL exists to put off
    (measured: a turn's read and save 8.6 ms at p50 without a pool, 6.3 ms with one). Rasa uses
    the engine from its event loop; ``check_same_thread`` off lets the pool hand a connection
    to another thread too, as SQLAlchemy 2.0 does for SQLite files by default.
    """
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.QueuePool,
        connect_args={"check_same_thread": False},
        hide_parameters=True,
    )
    sa.event.listen(engine, "connect", journal_ahead)
    return engine


def journal_ahead(connection: Any, _record: Any) -> None:
    """WAL with synchronous=NORMAL: a turn's commit appends to the log instead of an fsync.

    Rasa commits every turn; in SQLite's default rollback journal that is two fsyncs per turn.
    In WAL mode with NORMAL, commits are only synced at checkpoints: the database stays
    consistent, and a power cut (not a crash of Rasa) can lose the last turns. Readers (the
    staff pages) no longer wait for a writer. PostgreSQL (production) is not affected.
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
