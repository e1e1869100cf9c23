"""Where Rasa keeps conversations: its SQL tracker store, with patient text kept out of error logs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore

import rasa_patches


class QuietSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store whose database errors never quote the statement's values.

    Rasa builds its engine without ``hide_parameters``, so an error while saving (a full disk,
    a lost connection) would log the row it tried to write: the patient's own words.
    endpoints.yml names this class as the tracker store's ``type``; its settings are Rasa's.
    On SQLite (``make run``, one machine) it also journals ahead (see ``journal_ahead``) and
    keeps its connections open (see ``pooled_sqlite_engine``).
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
