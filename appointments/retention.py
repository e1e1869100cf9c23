"""What is kept and for how long: closed requests, idle conversations, the staff inbox's closed
rows and the insights' unanswered messages, for RETENTION_DAYS."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from appointments import audit
from appointments.database import REPO_ROOT, session_scope
from appointments.models import (
    AppointmentRequest,
    HandoffRequest,
    OutboundMessage,
    RequestFlag,
    RequestStatusChange,
    utc_now,
)
from appointments.request_review import NEXT_STATUSES
from appointments.unanswered import purge_unanswered

DEFAULT_RETENTION_DAYS = 365
DEFAULT_TRACKER_DATABASE = REPO_ROOT / "var" / "conversations.db"
# A status with nowhere to go: the clinic's work on the request is over.
CLOSED_STATUSES = tuple(status for status, following in NEXT_STATUSES.items() if not following)
# Well below SQLite's limit on bound parameters in one statement.
CHUNK_SIZE = 500
TRACKER_CONNECT_TIMEOUT_SECONDS = 10

PURGE = audit.PURGE

# The columns we use of Rasa's SQLTrackerStore table (rasa/core/tracker_store.py, SQLEvent).
TRACKER_EVENTS = Table(
    "events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255)),
    Column("type_name", String(255)),
    Column("timestamp", Float),
    Column("action_name", String(255)),
    Column("data", Text),
)


class RetentionSettingError(ValueError):
    """RETENTION_DAYS is not a positive whole number of days."""


def retention_days(value: str | None = None) -> int:
    """The retention period in days: ``value``, else env RETENTION_DAYS, else 365.

    Refused rather than guessed: a typo must not turn into "delete everything".
    """
    text = os.environ.get("RETENTION_DAYS", "") if value is None else value
    if not text.strip():
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(text.strip())
    except ValueError:
        days = 0
    if days < 1:
        raise RetentionSettingError(
            f"RETENTION_DAYS must be a positive whole number of days, not {text!r}"
        )
    return days


def tracker_database_url() -> str:
    """Env TRACKER_DATABASE_URL, else the SQLite file endpoints.yml points Rasa at."""
    return os.environ.get("TRACKER_DATABASE_URL") or f"sqlite:///{DEFAULT_TRACKER_DATABASE}"


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows a purge deleted (or, in a dry run, would delete)."""

    requests: int = 0
    status_changes: int = 0
    conversations: int = 0
    events: int = 0
    unanswered_messages: int = 0
    handoffs: int = 0

    def summary(self) -> str:
        return (
            f"requests {self.requests}, status changes {self.status_changes}, "
            f"conversations {self.conversations} (events {self.events}), "
            f"unanswered messages {self.unanswered_messages}, inbox rows {self.handoffs}"
        )


def _chunks(values: Sequence, size: int = CHUNK_SIZE) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _expired_requests(session: Session, cutoff: datetime) -> list[int]:
    """Ids of closed requests with no activity since ``cutoff``."""
    recent_change = (
        select(RequestStatusChange.id)
        .where(
            RequestStatusChange.request_id == AppointmentRequest.id,
            RequestStatusChange.changed_at >= cutoff,
        )
        .exists()
    )
    statement = (
        select(AppointmentRequest.id)
        .where(
            AppointmentRequest.status.in_(CLOSED_STATUSES),
            AppointmentRequest.created_at < cutoff,
            ~recent_change,
        )
        .order_by(AppointmentRequest.id)
    )
    return list(session.execute(statement).scalars())


def _count_status_changes(session: Session, request_ids: Sequence[int]) -> int:
    return sum(
        session.execute(
            select(func.count())
            .select_from(RequestStatusChange)
            .where(RequestStatusChange.request_id.in_(chunk))
        ).scalar_one()
        for chunk in _chunks(request_ids)
    )


def _delete_requests(session: Session, request_ids: Sequence[int]) -> None:
    for chunk in _chunks(request_ids):
        # The request's texts and flags go with it (they reference it, and hold its history).
        for table in (RequestStatusChange, OutboundMessage, RequestFlag):
            session.execute(
                delete(table)
                .where(table.request_id.in_(chunk))
                .execution_options(synchronize_session=False)
            )
        session.execute(
            delete(AppointmentRequest)
            .where(AppointmentRequest.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )


def _closed_handoffs(session: Session, cutoff: datetime) -> list[int]:
    """Inbox rows handed back before ``cutoff``: they name the conversation (a phone on SMS)."""
    return list(
        session.scalars(
            select(HandoffRequest.id).where(
                HandoffRequest.status == "closed", HandoffRequest.closed_at < cutoff
            )
        )
    )


def _conversations_of_kept_requests(
    session: Session, conversation_ids: Sequence[str], purged_ids: set[int]
) -> set[str]:
    """Those of ``conversation_ids`` that a request outside ``purged_ids`` still points to."""
    kept: set[str] = set()
    for chunk in _chunks(conversation_ids):
        rows = session.execute(
            select(AppointmentRequest.id, AppointmentRequest.conversation_id).where(
                AppointmentRequest.conversation_id.in_(chunk)
            )
        )
        kept.update(row.conversation_id for row in rows if row.id not in purged_ids)
    return kept


def _idle_conversations(tracker: Connection, cutoff: datetime) -> list[str]:
    """Conversations whose latest event is older than ``cutoff``."""
    statement = (
        select(TRACKER_EVENTS.c.sender_id)
        .group_by(TRACKER_EVENTS.c.sender_id)
        .having(func.max(TRACKER_EVENTS.c.timestamp) < cutoff.timestamp())
        .order_by(TRACKER_EVENTS.c.sender_id)
    )
    return list(tracker.execute(statement).scalars())


def _old_events_of(sender_ids: Sequence[str], cutoff: datetime):
    # Only events before the cutoff: a message arriving during the purge is not taken with them.
    return and_(
        TRACKER_EVENTS.c.sender_id.in_(sender_ids),
        TRACKER_EVENTS.c.timestamp < cutoff.timestamp(),
    )


def _count_events(tracker: Connection, sender_ids: Sequence[str], cutoff: datetime) -> int:
    return sum(
        tracker.execute(
            select(func.count()).select_from(TRACKER_EVENTS).where(_old_events_of(chunk, cutoff))
        ).scalar_one()
        for chunk in _chunks(sender_ids)
    )


def _delete_conversations(tracker: Connection, sender_ids: Sequence[str], cutoff: datetime) -> None:
    for chunk in _chunks(sender_ids):
        tracker.execute(delete(TRACKER_EVENTS).where(_old_events_of(chunk, cutoff)))


def purge(
    session: Session,
    tracker: Connection | None,
    *,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
) -> PurgeCounts:
    """Deletes what is past ``days`` in ``session`` and ``tracker``, and audits it in ``session``.

    Deleted: closed requests (completed, declined, cancelled) with neither their creation nor a
    status change within the period, with their status history; conversations whose latest
    event is older than the period, all their events, unless a kept request points to them.
    Kept: open requests of any age, and the audit log, which gets one event with the counts.

    The caller owns both transactions. Commit ``session`` first: if the tracker's commit then
    fails, the conversations are merely kept until the next purge, never lost while a kept
    request still points to them. ``tracker`` None: the tracker store is left alone.
    """
    if days < 1:
        raise RetentionSettingError(f"the retention period must be at least one day, not {days}")
    cutoff = (now or utc_now()) - timedelta(days=days)
    expired = _expired_requests(session, cutoff)
    purged_ids = set(expired)
    status_changes = _count_status_changes(session, expired)

    conversations: list[str] = []
    if tracker is not None:
        idle = _idle_conversations(tracker, cutoff)
        kept = _conversations_of_kept_requests(session, idle, purged_ids)
        conversations = [sender_id for sender_id in idle if sender_id not in kept]
    handoffs = _closed_handoffs(session, cutoff)
    counts = PurgeCounts(
        requests=len(expired),
        status_changes=status_changes,
        conversations=len(conversations),
        events=_count_events(tracker, conversations, cutoff) if tracker is not None else 0,
        unanswered_messages=purge_unanswered(session, cutoff, dry_run=dry_run),
        handoffs=len(handoffs),
    )
    if dry_run:
        return counts

    _delete_requests(session, expired)
    for chunk in _chunks(handoffs):
        session.execute(
            delete(HandoffRequest)
            .where(HandoffRequest.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    if tracker is not None:
        _delete_conversations(tracker, conversations, cutoff)
    audit.add_audit_event(
        session,
        action=PURGE,
        staff_username=None,
        detail=f"retention {days} days: {counts.summary()}",
    )
    return counts


def _tracker_store_missing(url_text: str) -> bool:
    url = make_url(url_text)
    if url.get_backend_name() != "sqlite":
        return False
    # Never create Rasa's database: no file means no conversations yet.
    return not url.database or url.database == ":memory:" or not Path(url.database).exists()


@contextmanager
def tracker_transaction(url: str | None = None) -> Iterator[Connection | None]:
    """A transaction on the tracker store, or None when it has no conversations table yet."""
    url_text = url or tracker_database_url()
    if _tracker_store_missing(url_text):
        yield None
        return
    connect_args = {}
    parsed = make_url(url_text)
    if parsed.get_backend_name() == "sqlite":
        # Wait for the Rasa server's own writes rather than fail on a locked file.
        connect_args["timeout"] = TRACKER_CONNECT_TIMEOUT_SECONDS
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2":
        connect_args["connect_timeout"] = TRACKER_CONNECT_TIMEOUT_SECONDS
    engine = create_engine(url_text, future=True, hide_parameters=True, connect_args=connect_args)
    try:
        with engine.begin() as connection:
            has_events = inspect(connection).has_table(TRACKER_EVENTS.name)
            yield connection if has_events else None
    finally:
        engine.dispose()


def run_purge(
    *,
    dry_run: bool = False,
    days: int | None = None,
    url: str | None = None,
    tracker_url: str | None = None,
) -> PurgeCounts:
    """One purge over both stores, each in its own transaction (the requests commit first)."""
    days = retention_days() if days is None else days
    # Exiting the with-block closes the inner session (commit) before the tracker's transaction.
    with tracker_transaction(tracker_url) as tracker, session_scope(url) as session:
        return purge(session, tracker, days=days, dry_run=dry_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appointments.retention",
        description=(
            "Delete closed requests and conversations older than RETENTION_DAYS "
            f"(default {DEFAULT_RETENTION_DAYS})."
        ),
    )
    parser.add_argument("command", choices=["purge"])
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
    )
    arguments = parser.parse_args(argv)
    try:
        days = retention_days()
        counts = run_purge(dry_run=arguments.dry_run, days=days)
    except RetentionSettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        # The type only: a driver's message may quote a conversation id (a phone on SMS).
        print(f"error: could not purge: {type(error).__name__}", file=sys.stderr)
        return 1
    verb = "Would delete" if arguments.dry_run else "Deleted"
    print(f"{verb}: {counts.summary()}; retention {days} days.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
