"""The staff inbox's rows: conversations that need a person, who holds one, hand-backs, idle holds.

Every function takes a session from the caller, so a change and its audit event commit together.
Holding is a compare-and-set on the row's status: of two members of staff taking over the same
conversation at once, exactly one UPDATE matches, and the other learns who holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from appointments.models import AppointmentRequest, HandoffRequest, utc_now

WAITING = "waiting"
HELD = "held"
CLOSED = "closed"
OPEN_STATUSES = (WAITING, HELD)

# Why a conversation needs a person, most urgent first: a later, more urgent reason replaces
# the row's reason, a less urgent one leaves it.
WARNING_SIGN = "warning_sign"
ASKED_FOR_PERSON = "asked_for_person"
NOT_UNDERSTOOD_TWICE = "not_understood_twice"
CHECKIN_REPLY_FLAGGED = "checkin_reply_flagged"
REASON_LABELS = {
    WARNING_SIGN: "Warning sign or symptom report",
    ASKED_FOR_PERSON: "Asked for a person",
    CHECKIN_REPLY_FLAGGED: "Check-in reply flagged (see the request)",
    NOT_UNDERSTOOD_TWICE: "Not understood twice in a row",
}
REASON_URGENCY = {reason: rank for rank, reason in enumerate(REASON_LABELS)}
CHANNEL_OF_PREFIX = {"web": "socketio", "sms": "twilio", "rest": "rest"}


class HoldError(Exception):
    """The conversation cannot be taken over or handed back by this member of staff."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


def channel_of(conversation_id: str) -> str:
    """The Rasa channel name of a server-issued conversation id (channels/: web:, sms:, rest:)."""
    prefix, _, _ = conversation_id.partition(":")
    return CHANNEL_OF_PREFIX.get(prefix, "unknown")


def latest_request_reference(session: Session, conversation_id: str) -> str | None:
    """The reference of the conversation's newest appointment request, if it made one."""
    return session.scalar(
        select(AppointmentRequest.reference)
        .where(AppointmentRequest.conversation_id == conversation_id)
        .order_by(AppointmentRequest.created_at.desc(), AppointmentRequest.id.desc())
        .limit(1)
    )


def open_handoff(session: Session, conversation_id: str) -> HandoffRequest | None:
    """The conversation's row in the inbox (waiting or held), if it has one."""
    return session.scalar(
        select(HandoffRequest)
        .where(
            HandoffRequest.conversation_id == conversation_id,
            HandoffRequest.status.in_(OPEN_STATUSES),
        )
        .order_by(HandoffRequest.id.desc())
        .limit(1)
    )


def record_handoff_need(
    session: Session, conversation_id: str, reason: str, now: datetime | None = None
) -> HandoffRequest:
    """Puts the conversation in the inbox, or refreshes its open row (a more urgent reason wins)."""
    if reason not in REASON_LABELS:
        raise ValueError(f"unknown hand-off reason {reason!r}")
    now = now or utc_now()
    row = open_handoff(session, conversation_id)
    reference = latest_request_reference(session, conversation_id)
    if row is None:
        row = HandoffRequest(
            conversation_id=conversation_id,
            channel=channel_of(conversation_id),
            reason=reason,
            request_reference=reference,
            status=WAITING,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    else:
        if REASON_URGENCY[reason] < REASON_URGENCY.get(row.reason, len(REASON_URGENCY)):
            row.reason = reason
        row.request_reference = row.request_reference or reference
        row.updated_at = now
    session.flush()
    return row


def get_handoff(session: Session, handoff_id: int) -> HandoffRequest | None:
    return session.get(HandoffRequest, handoff_id)


def list_open_handoffs(session: Session) -> list[HandoffRequest]:
    """The inbox: waiting and held conversations, newest first."""
    return list(
        session.scalars(
            select(HandoffRequest)
            .where(HandoffRequest.status.in_(OPEN_STATUSES))
            .order_by(HandoffRequest.created_at.desc(), HandoffRequest.id.desc())
        )
    )


def count_waiting(session: Session) -> int:
    """Conversations waiting for someone to take them over (the navigation's count)."""
    return session.scalar(
        select(func.count()).select_from(HandoffRequest).where(HandoffRequest.status == WAITING)
    )


def take_over(
    session: Session, handoff_id: int, staff_username: str, now: datetime | None = None
) -> tuple[HandoffRequest, bool]:
    """Claims the conversation for ``staff_username``; raises HoldError naming the holder if taken.

    Returns the row and whether it was claimed now: holding it already is not an error (a
    second tab, a retried click), but the patient must not be told twice.
    """
    now = now or utc_now()
    claimed = session.execute(
        update(HandoffRequest)
        .where(HandoffRequest.id == handoff_id, HandoffRequest.status == WAITING)
        .values(status=HELD, held_by=staff_username, held_since=now, last_staff_activity_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    row = session.get(HandoffRequest, handoff_id)
    if row is None:
        raise HoldError("There is no such conversation in the inbox.")
    session.refresh(row)
    if claimed == 1:
        return row, True
    if row.status == HELD and row.held_by == staff_username:
        return row, False
    if row.status == HELD:
        raise HoldError(f"{row.held_by} is already answering this conversation.", row.held_by)
    raise HoldError("This conversation has been handed back and left the inbox.")


def require_holder(session: Session, handoff_id: int, staff_username: str) -> HandoffRequest:
    """The row, if ``staff_username`` holds it; else HoldError (with the holder, if any)."""
    row = session.get(HandoffRequest, handoff_id)
    if row is None:
        raise HoldError("There is no such conversation in the inbox.")
    session.refresh(row)
    if row.status != HELD:
        raise HoldError("Take the conversation over first.")
    if row.held_by != staff_username:
        raise HoldError(f"{row.held_by} is answering this conversation.", row.held_by)
    return row


def note_staff_activity(
    session: Session, handoff_id: int, staff_username: str, now: datetime | None = None
) -> HandoffRequest:
    """A message from the holder: the idle timeout starts again."""
    row = require_holder(session, handoff_id, staff_username)
    row.last_staff_activity_at = now or utc_now()
    session.flush()
    return row


def hand_back(
    session: Session, handoff_id: int, staff_username: str, now: datetime | None = None
) -> HandoffRequest:
    """Closes the holder's row: the conversation leaves the inbox, the assistant answers again."""
    now = now or utc_now()
    closed = session.execute(
        update(HandoffRequest)
        .where(
            HandoffRequest.id == handoff_id,
            HandoffRequest.status == HELD,
            HandoffRequest.held_by == staff_username,
        )
        .values(status=CLOSED, closed_at=now, closed_by=staff_username)
        .execution_options(synchronize_session=False)
    ).rowcount
    if closed != 1:
        require_holder(session, handoff_id, staff_username)
        raise HoldError("This conversation could not be handed back.")
    row = session.get(HandoffRequest, handoff_id)
    session.refresh(row)
    return row


def close_waiting(
    session: Session, handoff_id: int, staff_username: str, now: datetime | None = None
) -> HandoffRequest:
    """Closes a waiting row without taking it over (nothing for a person to do); HoldError if held."""
    now = now or utc_now()
    closed = session.execute(
        update(HandoffRequest)
        .where(HandoffRequest.id == handoff_id, HandoffRequest.status == WAITING)
        .values(status=CLOSED, closed_at=now, closed_by=staff_username)
        .execution_options(synchronize_session=False)
    ).rowcount
    row = session.get(HandoffRequest, handoff_id)
    if row is None:
        raise HoldError("There is no such conversation in the inbox.")
    session.refresh(row)
    if closed != 1:
        if row.status == HELD:
            raise HoldError(f"{row.held_by} is answering this conversation.", row.held_by)
        raise HoldError("This conversation has already left the inbox.")
    return row


def idle_holds(session: Session, idle_for: timedelta, now: datetime | None = None) -> list[int]:
    """Ids of held conversations whose holder has not acted for ``idle_for``."""
    cutoff = (now or utc_now()) - idle_for
    return list(
        session.scalars(
            select(HandoffRequest.id).where(
                HandoffRequest.status == HELD, HandoffRequest.last_staff_activity_at <= cutoff
            )
        )
    )


def release_idle_hold(
    session: Session, handoff_id: int, idle_for: timedelta, now: datetime | None = None
) -> HandoffRequest | None:
    """Puts an idle held conversation back in the inbox as waiting; None if it was not idle.

    Compare-and-set as well: a holder who acts at the same moment keeps the conversation.
    """
    now = now or utc_now()
    released = session.execute(
        update(HandoffRequest)
        .where(
            HandoffRequest.id == handoff_id,
            HandoffRequest.status == HELD,
            HandoffRequest.last_staff_activity_at <= now - idle_for,
        )
        .values(status=WAITING, held_by=None, held_since=None, last_staff_activity_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if released != 1:
        return None
    row = session.get(HandoffRequest, handoff_id)
    session.refresh(row)
    return row


@dataclass(frozen=True)
class HoldState:
    """What the conversation page and its polling need to know about the row."""

    status: str
    held_by: str | None


def hold_state(session: Session, handoff_id: int) -> HoldState | None:
    row = session.get(HandoffRequest, handoff_id)
    if row is None:
        return None
    session.refresh(row)
    return HoldState(row.status, row.held_by)
