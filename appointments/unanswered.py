"""Messages the assistant could not answer, or that asked for a person: kept for the insights page.

The texts are health information: only admins read them (web/staff), and the retention purge
deletes them after RETENTION_DAYS (appointments/retention.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appointments.models import UnansweredMessage, utc_now

# What the assistant did with the message.
FALLBACK = "fallback"  # the likely topics as buttons ("is it one of these?")
REPHRASE = "rephrase"  # "could you say it another way?"
PHONE_LINE = "phone_line"  # not understood twice in a row: the phone
OUT_OF_SCOPE = "out_of_scope"
HANDOFF = "handoff"  # asked for a person
KIND_LABELS = {
    FALLBACK: "Offered likely topics",
    REPHRASE: "Asked to rephrase",
    PHONE_LINE: "Not understood twice",
    OUT_OF_SCOPE: "Out of scope",
    HANDOFF: "Asked for a person",
}
# A longer message is cut: enough to see what was asked, and the channel refuses over 1,000.
MAX_TEXT_LENGTH = 1000


def record_unanswered(
    session: Session, *, kind: str, channel: str, text: str, now: datetime | None = None
) -> None:
    """Adds one message; an empty text (a tapped button with no words) is not worth keeping."""
    if kind not in KIND_LABELS:
        raise ValueError(f"unknown kind {kind!r}")
    text = (text or "").strip()
    if not text or text.startswith("/"):
        return
    session.add(
        UnansweredMessage(
            occurred_at=now or utc_now(), kind=kind, channel=channel, text=text[:MAX_TEXT_LENGTH]
        )
    )


def unanswered_since(session: Session, since: datetime | None = None) -> list[UnansweredMessage]:
    """Oldest first, from ``since`` (None: all)."""
    statement = select(UnansweredMessage)
    if since is not None:
        statement = statement.where(UnansweredMessage.occurred_at >= since)
    return list(
        session.scalars(statement.order_by(UnansweredMessage.occurred_at, UnansweredMessage.id))
    )


def purge_unanswered(session: Session, cutoff: datetime, dry_run: bool = False) -> int:
    """Deletes (or counts) messages older than ``cutoff``."""
    ids = list(
        session.scalars(select(UnansweredMessage.id).where(UnansweredMessage.occurred_at < cutoff))
    )
    if ids and not dry_run:
        session.execute(delete(UnansweredMessage).where(UnansweredMessage.id.in_(ids)))
    return len(ids)
