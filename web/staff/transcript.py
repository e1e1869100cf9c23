"""A request's conversation, read (read-only) from the Rasa server's SQL tracker store."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from appointments.database import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_TRACKER_DATABASE = REPO_ROOT / "var" / "conversations.db"
MAX_MESSAGES = 500
CONNECT_TIMEOUT_SECONDS = 5

# The columns we read of Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent).
EVENTS = Table(
    "events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255)),
    Column("type_name", String(255)),
    Column("timestamp", Float),
    Column("data", Text),
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class TranscriptUnavailableError(Exception):
    """The tracker store could not be read; the request itself is unaffected."""


@dataclass(frozen=True)
class TranscriptMessage:
    speaker: str  # "patient" or "assistant"
    text: str
    sent_at: datetime | None
    buttons: tuple[str, ...] = ()

    @property
    def is_button_payload(self) -> bool:
        """A tapped button arrives as its payload, e.g. "/affirm", rather than typed words."""
        return self.speaker == "patient" and self.text.startswith("/")


def tracker_database_url() -> str:
    """Env TRACKER_DATABASE_URL, else the SQLite file endpoints.yml points Rasa at."""
    return os.environ.get("TRACKER_DATABASE_URL") or f"sqlite:///{DEFAULT_TRACKER_DATABASE}"


def _read_only_engine(url_text: str) -> Engine:
    url = make_url(url_text)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise TranscriptUnavailableError("no tracker database file configured")
        # mode=ro: never create, migrate or otherwise write to the Rasa server's database.
        uri = f"file:{quote(str(Path(url.database).resolve()))}?mode=ro"
        return create_engine(
            "sqlite://",
            future=True,
            hide_parameters=True,
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        )
    connect_args = {}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg2":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return create_engine(
        url, future=True, hide_parameters=True, pool_pre_ping=True, connect_args=connect_args
    )


def _engine(url_text: str) -> Engine:
    with _engines_lock:
        if url_text not in _engines:
            _engines[url_text] = _read_only_engine(url_text)
        return _engines[url_text]


def _message(type_name: str, timestamp: float | None, data_text: str | None) -> TranscriptMessage:
    try:
        data = json.loads(data_text or "{}")
    except ValueError:
        data = {}
    sent_at = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else None
    text = data.get("text") or ""
    if type_name == "user":
        return TranscriptMessage("patient", text, sent_at)
    buttons = (data.get("data") or {}).get("buttons") or []
    titles = tuple(str(button.get("title", "")) for button in buttons if isinstance(button, dict))
    return TranscriptMessage("assistant", text, sent_at, titles)


def load_transcript(conversation_id: str, url: str | None = None) -> list[TranscriptMessage]:
    """The patient's and the assistant's messages in order (the first MAX_MESSAGES of them).

    Raises TranscriptUnavailableError when the store cannot be reached or read.
    """
    statement = (
        select(EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data)
        .where(EVENTS.c.sender_id == conversation_id, EVENTS.c.type_name.in_(("user", "bot")))
        .order_by(EVENTS.c.id)
        .limit(MAX_MESSAGES)
    )
    try:
        with _engine(url or tracker_database_url()).connect() as connection:
            rows = connection.execute(statement).all()
    except (SQLAlchemyError, OSError) as error:
        # The type only: a driver's message may quote the conversation id (a phone on SMS).
        logger.warning("Could not read the conversation store: %s", type(error).__name__)
        raise TranscriptUnavailableError(type(error).__name__) from error
    messages = [_message(*row) for row in rows]
    # Bot events with only buttons or an image have no text; there is nothing to show for them.
    return [message for message in messages if message.text or message.buttons]


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
