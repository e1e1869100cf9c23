"""A request's conversation, read (read-only) from the Rasa server's SQL tracker store.

A conversation id can hold many Rasa sessions (on SMS it is the patient's number for years), so
a request's page shows the session in which the request was confirmed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import and_, create_engine, or_, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

# The tracker store's location and table are defined once, in the data layer.
from appointments.retention import TRACKER_EVENTS as EVENTS
from appointments.retention import tracker_database_url

logger = logging.getLogger(__name__)

# A session longer than this shows its latest messages only.
MAX_MESSAGES = 500
CONNECT_TIMEOUT_SECONDS = 5
# Rasa starts each session with this action, which logs its messages (the disclaimer) and then
# a session_started event.
SESSION_START_ACTION = "action_session_start"
SESSION_STARTED = "session_started"

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


@dataclass(frozen=True)
class _Session:
    first_event_id: int
    started_at: float


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


def _sessions(connection: Connection, conversation_id: str) -> list[_Session]:
    """The conversation's sessions in order, each from its action_session_start event on.

    A session_started event without that action before it starts its session itself.
    """
    markers = connection.execute(
        select(EVENTS.c.id, EVENTS.c.type_name, EVENTS.c.timestamp)
        .where(
            EVENTS.c.sender_id == conversation_id,
            or_(
                EVENTS.c.type_name == SESSION_STARTED,
                and_(EVENTS.c.type_name == "action", EVENTS.c.action_name == SESSION_START_ACTION),
            ),
        )
        .order_by(EVENTS.c.id)
    ).all()
    sessions = []
    start_action = None
    for event_id, type_name, timestamp in markers:
        if type_name == SESSION_STARTED:
            first_id, started_at = start_action or (event_id, timestamp)
            sessions.append(_Session(first_id, started_at or 0.0))
            start_action = None
        else:
            start_action = (event_id, timestamp)
    return sessions


def _session_span(sessions: list[_Session], at: datetime | None) -> tuple[int | None, int | None]:
    """First event id and the next session's first id (None: open-ended) of the session at ``at``.

    The latest session started at or before ``at`` (``None``: the latest session). Before the
    first session start, the events before it.
    """
    moment = at.timestamp() if at is not None else float("inf")
    started = [number for number, session in enumerate(sessions) if session.started_at <= moment]
    if not started:
        return None, sessions[0].first_event_id if sessions else None
    number = started[-1]
    following = sessions[number + 1].first_event_id if number + 1 < len(sessions) else None
    return sessions[number].first_event_id, following


def _message_rows(
    connection: Connection, conversation_id: str, span: tuple[int | None, int | None]
) -> list[tuple]:
    """The span's user and bot events, the latest MAX_MESSAGES of them, oldest first."""
    first_id, next_session_id = span
    statement = select(EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data).where(
        EVENTS.c.sender_id == conversation_id, EVENTS.c.type_name.in_(("user", "bot"))
    )
    if first_id is not None:
        statement = statement.where(EVENTS.c.id >= first_id)
    if next_session_id is not None:
        statement = statement.where(EVENTS.c.id < next_session_id)
    rows = connection.execute(statement.order_by(EVENTS.c.id.desc()).limit(MAX_MESSAGES)).all()
    return list(reversed(rows))


def load_transcript(
    conversation_id: str, url: str | None = None, *, confirmed_at: datetime | None = None
) -> list[TranscriptMessage]:
    """The patient's and the assistant's messages, in order, of the session at ``confirmed_at``.

    That is the session in which the request was confirmed, not the conversation id's first
    one: a returning SMS patient has many. ``confirmed_at`` None: the latest session.
    Raises TranscriptUnavailableError when the store cannot be reached or read.
    """
    try:
        with _engine(url or tracker_database_url()).connect() as connection:
            span = _session_span(_sessions(connection, conversation_id), confirmed_at)
            rows = _message_rows(connection, conversation_id, span)
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


WARNING_SIGNS_INTENT = "warning_signs"


@dataclass(frozen=True)
class LiveMessage:
    """One message of a conversation in the staff inbox, with its event id for polling."""

    event_id: int
    speaker: str  # "patient", "assistant" or "staff"
    text: str
    sent_at: datetime | None
    staff_username: str | None = None
    # A patient message read as a reported warning sign: while a person holds the chat the
    # assistant does not answer it, so the staff page marks it.
    warning_sign: bool = False

    def as_json(self) -> dict:
        return {
            "id": self.event_id,
            "speaker": self.speaker,
            "text": self.text,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "staff": self.staff_username,
            "warning_sign": self.warning_sign,
        }


def _live_message(event_id: int, type_name: str, timestamp: float | None, data_text: str | None):
    message = _message(type_name, timestamp, data_text)
    try:
        data = json.loads(data_text or "{}")
    except ValueError:
        data = {}
    if type_name == "user":
        intent = ((data.get("parse_data") or {}).get("intent") or {}).get("name")
        return LiveMessage(
            event_id,
            "patient",
            message.text,
            message.sent_at,
            warning_sign=intent == WARNING_SIGNS_INTENT,
        )
    staff = (data.get("metadata") or {}).get("staff")
    text = message.text
    if message.buttons:
        text = f"{text}\n[{' | '.join(message.buttons)}]".strip()
    if staff:
        return LiveMessage(event_id, "staff", text, message.sent_at, staff_username=str(staff))
    return LiveMessage(event_id, "assistant", text, message.sent_at)


def live_messages(
    conversation_id: str,
    url: str | None = None,
    *,
    since: datetime | None = None,
    after_event_id: int = 0,
) -> list[LiveMessage]:
    """Messages from the session that was open at ``since`` on, newer than ``after_event_id``.

    The staff inbox polls this (read-only) for the patient's replies while a person holds the
    chat; a new session (after expiry) does not hide what came before it.
    Raises TranscriptUnavailableError when the store cannot be reached or read.
    """
    try:
        with _engine(url or tracker_database_url()).connect() as connection:
            first_id, _ = _session_span(_sessions(connection, conversation_id), since)
            statement = select(
                EVENTS.c.id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data
            ).where(
                EVENTS.c.sender_id == conversation_id,
                EVENTS.c.type_name.in_(("user", "bot")),
                EVENTS.c.id > max(after_event_id, (first_id or 1) - 1),
            )
            rows = connection.execute(
                statement.order_by(EVENTS.c.id.desc()).limit(MAX_MESSAGES)
            ).all()
    except (SQLAlchemyError, OSError) as error:
        logger.warning("Could not read the conversation store: %s", type(error).__name__)
        raise TranscriptUnavailableError(type(error).__name__) from error
    messages = [_live_message(*row) for row in reversed(rows)]
    return [message for message in messages if message.text]
