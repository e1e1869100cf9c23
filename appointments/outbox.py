"""The outbox of planned texts and the flags that bring staff in: data functions on a caller's session.

A text moves planned -> claimed -> sent -> delivered (or failed / undelivered), or ends cancelled,
dropped or not_sent; the reason column says why, for staff. Claiming is a compare-and-set from
planned to claimed (on PostgreSQL after ``SELECT ... FOR UPDATE SKIP LOCKED``), so of two
workers only one ever sends a given row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from appointments.models import (
    AppointmentRequest,
    OutboundMessage,
    RequestFlag,
    SmsOptOut,
)

PLANNED = "planned"
CLAIMED = "claimed"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
UNDELIVERED = "undelivered"
CANCELLED = "cancelled"
DROPPED = "dropped"
NOT_SENT = "not_sent"
STATES = (PLANNED, CLAIMED, SENT, DELIVERED, FAILED, UNDELIVERED, CANCELLED, DROPPED, NOT_SENT)
STATE_LABELS = {
    PLANNED: "Planned",
    CLAIMED: "Sending",
    SENT: "Sent",
    DELIVERED: "Delivered",
    FAILED: "Failed",
    UNDELIVERED: "Undelivered",
    CANCELLED: "Cancelled",
    DROPPED: "Dropped",
    NOT_SENT: "Not sent",
}
# Twilio's message statuses (status callbacks and API answers), as outbox states.
TWILIO_STATES = {
    "accepted": SENT,
    "scheduled": SENT,
    "queued": SENT,
    "sending": SENT,
    "sent": SENT,
    "delivered": DELIVERED,
    "read": DELIVERED,
    "failed": FAILED,
    "undelivered": UNDELIVERED,
    "canceled": CANCELLED,
}
# A later status never overwrites a final one (callbacks may arrive out of order).
FINAL_STATES = (DELIVERED, FAILED, UNDELIVERED, CANCELLED, DROPPED, NOT_SENT)

CYCLE_CHECK_FAILED = "cycle_check_failed"
AFTERCARE_CONCERN = "aftercare_concern"
DELIVERY_FAILED = "delivery_failed"
CHANGE_REQUESTED = "change_requested"
FLAG_LABELS = {
    CYCLE_CHECK_FAILED: "Cycle check failed",
    AFTERCARE_CONCERN: "Aftercare concern",
    DELIVERY_FAILED: "Delivery failed",
    CHANGE_REQUESTED: "Asked to change the date",
}
MAX_REASON_LENGTH = 200
# The kinds of text (outreach/plan.py plans them); stored in outbound_messages.kind.
CONFIRMATION_KIND = "confirmation"
CYCLE_CHECK_KIND = "cycle_check"
PREPARATION_KIND = "preparation"
CHECKIN_KIND = "checkin"
OPTED_OUT_REASON = "Cancelled: the patient replied STOP (opted out)."
# A request's texts go out while it is scheduled. Ending it cancels those not yet sent, but for
# the kinds kept here: a completed test keeps its day-after check-in, which is what it is for.
SCHEDULED_STATUS = "scheduled"
KEPT_WHEN_ENDED = {"completed": (CHECKIN_KIND,)}
MAX_RAISED_BY_LENGTH = 320


@dataclass(frozen=True)
class ClaimedMessage:
    """A row the caller's worker now owns and must send, or give back."""

    id: int
    request_id: int
    reference: str
    kind: str
    phone_e164: str
    due_at: datetime
    useful_until: datetime
    attempts: int
    appointment_at: datetime

    @classmethod
    def of(cls, row: OutboundMessage, request: AppointmentRequest) -> ClaimedMessage:
        """The claimed ``row`` with what sending it needs from its ``request``."""
        return cls(
            id=row.id,
            request_id=row.request_id,
            reference=request.reference,
            kind=row.kind,
            phone_e164=row.phone_e164,
            due_at=row.due_at,
            useful_until=row.useful_until,
            attempts=row.attempts,
            appointment_at=request.appointment_at,
        )


def plan(
    session: Session,
    request: AppointmentRequest,
    messages: Iterable[tuple[str, datetime, datetime]],
    now: datetime,
) -> list[OutboundMessage]:
    """Adds the texts (kind, due, useful until) of the request's current appointment version.

    A number that opted out gets its rows cancelled at once, so staff see why nothing goes out.
    """
    opted_out = is_opted_out(session, request.phone_e164)
    rows = []
    for kind, due_at, useful_until in messages:
        row = OutboundMessage(
            request_id=request.id,
            kind=kind,
            appointment_version=request.appointment_version,
            phone_e164=request.phone_e164,
            state=CANCELLED if opted_out else PLANNED,
            due_at=due_at,
            useful_until=useful_until,
            next_attempt_at=due_at,
            attempts=0,
            reason=OPTED_OUT_REASON if opted_out else "",
            context_recorded=False,
            updated_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def cancel_pending(
    session: Session,
    request_id: int,
    reason: str,
    now: datetime,
    keep_kinds: Sequence[str] = (),
) -> int:
    """Cancels the request's texts not yet handed to Twilio (but ``keep_kinds``); returns how many."""
    return session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.request_id == request_id,
            OutboundMessage.state == PLANNED,
            OutboundMessage.kind.not_in(keep_kinds),
        )
        .values(state=CANCELLED, reason=reason[:MAX_REASON_LENGTH], updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def cancel_pending_for_phone(session: Session, phone_e164: str, reason: str, now: datetime) -> int:
    """Cancels every text still planned for this number (it opted out)."""
    return session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.phone_e164 == phone_e164, OutboundMessage.state == PLANNED)
        .values(state=CANCELLED, reason=reason[:MAX_REASON_LENGTH], updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def replan_after_opt_in(session: Session, phone_e164: str, now: datetime) -> int:
    """Plans again the texts that STOP cancelled for this number and that are still wanted (it
    replied START); returns how many.

    Still wanted: of use until later than now, for the request's current appointment, and of a
    request still scheduled (or a completed test's check-in). A text whose time passed during
    the opt-out goes now; the worker still keeps to quiet hours and the daily limit.
    """
    rows = session.execute(
        select(OutboundMessage, AppointmentRequest.status)
        .join(AppointmentRequest, AppointmentRequest.id == OutboundMessage.request_id)
        .where(
            OutboundMessage.phone_e164 == phone_e164,
            OutboundMessage.state == CANCELLED,
            OutboundMessage.reason == OPTED_OUT_REASON,
            OutboundMessage.useful_until > now,
            OutboundMessage.appointment_version == AppointmentRequest.appointment_version,
        )
    ).all()
    replanned = 0
    for row, status in rows:
        if status != SCHEDULED_STATUS and row.kind not in KEPT_WHEN_ENDED.get(status, ()):
            continue
        row.state = PLANNED
        row.reason = ""
        row.next_attempt_at = max(row.due_at, now)
        row.claimed_at = row.claimed_by = None
        row.updated_at = now
        replanned += 1
    session.flush()
    return replanned


def is_opted_out(session: Session, phone_e164: str) -> bool:
    return bool(
        session.execute(
            select(SmsOptOut.opted_out).where(SmsOptOut.phone_e164 == phone_e164)
        ).scalar_one_or_none()
    )


def due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Planned rows whose time has come, oldest first (not locked: claim() decides)."""
    return list(
        session.execute(
            select(OutboundMessage.id)
            .where(OutboundMessage.state == PLANNED, OutboundMessage.next_attempt_at <= now)
            .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
            .limit(limit)
        ).scalars()
    )


def claim(session: Session, message_id: int, worker: str, now: datetime) -> ClaimedMessage | None:
    """Makes the row ``worker``'s if it is still planned and due; None if another worker has it.

    On PostgreSQL the row is locked first (SKIP LOCKED: a row another worker holds is skipped,
    never waited for), and the number's texts are serialised with a transaction-scoped advisory
    lock, so that two workers never both see room under the day's limit for the same patient.
    On SQLite the conditional UPDATE takes the database's single write lock, which does the same.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = session.execute(
            select(OutboundMessage.id, OutboundMessage.phone_e164)
            .where(
                OutboundMessage.id == message_id,
                OutboundMessage.state == PLANNED,
                OutboundMessage.next_attempt_at <= now,
            )
            .with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return None
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:phone))"), {"phone": locked.phone_e164}
        )
    changed = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.state == PLANNED,
            OutboundMessage.next_attempt_at <= now,
        )
        .values(state=CLAIMED, claimed_at=now, claimed_by=worker[:64], updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        return None
    row, request = session.execute(
        select(OutboundMessage, AppointmentRequest)
        .join(AppointmentRequest, AppointmentRequest.id == OutboundMessage.request_id)
        .where(OutboundMessage.id == message_id)
    ).one()
    return ClaimedMessage.of(row, request)


def handed_over_times(
    session: Session, phone_e164: str, since: datetime, excluding: int | None = None
) -> list[datetime]:
    """When automated texts to this number were handed to Twilio (or are being), since ``since``.

    A text Twilio refused was never sent and does not count; one it took and later failed to
    deliver does (the patient's phone may still have shown it).
    """
    handed_at = func.coalesce(OutboundMessage.sent_at, OutboundMessage.claimed_at)
    statement = select(handed_at).where(
        OutboundMessage.phone_e164 == phone_e164,
        or_(OutboundMessage.sent_at.is_not(None), OutboundMessage.state == CLAIMED),
        handed_at >= since,
    )
    if excluding is not None:
        statement = statement.where(OutboundMessage.id != excluding)
    return list(session.execute(statement).scalars())


def _set(session: Session, message_id: int, now: datetime, **values) -> None:
    if "reason" in values:
        values["reason"] = values["reason"][:MAX_REASON_LENGTH]
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id)
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def release(session: Session, message_id: int, until: datetime, reason: str, now: datetime) -> None:
    """Gives a claimed row back to wait until ``until`` (quiet hours, daily limit, retry)."""
    _set(
        session,
        message_id,
        now,
        state=PLANNED,
        next_attempt_at=until,
        reason=reason,
        claimed_at=None,
        claimed_by=None,
    )


def finish(session: Session, message_id: int, state: str, reason: str, now: datetime) -> None:
    """Ends a row without sending it: dropped, cancelled, not_sent, or failed for good."""
    _set(session, message_id, now, state=state, reason=reason)


def record_attempt_failed(session: Session, message_id: int, now: datetime) -> int:
    """Counts a failed send; returns the attempts so far."""
    row = session.get(OutboundMessage, message_id)
    row.attempts += 1
    row.updated_at = now
    session.flush()
    return row.attempts


def mark_sent(
    session: Session, message_id: int, sid: str, twilio_status: str, now: datetime
) -> None:
    """Twilio accepted the text: its SID, Twilio's status, and the time it was handed over."""
    row = session.get(OutboundMessage, message_id)
    row.attempts += 1
    row.twilio_sid = sid
    row.twilio_status = twilio_status[:16]
    state = TWILIO_STATES.get(twilio_status, SENT)
    row.state = state
    row.sent_at = now
    row.reason = ""
    row.updated_at = now
    if state in (FAILED, UNDELIVERED):
        raise_flag(session, row.request_id, DELIVERY_FAILED, _kind_text(row.kind), now)
    session.flush()


def stale_claims(session: Session, older_than: datetime) -> list[ClaimedMessage]:
    """Rows claimed before ``older_than`` and never finished: a worker stopped mid-send."""
    rows = session.execute(
        select(OutboundMessage, AppointmentRequest)
        .join(AppointmentRequest, AppointmentRequest.id == OutboundMessage.request_id)
        .where(OutboundMessage.state == CLAIMED, OutboundMessage.claimed_at < older_than)
    ).all()
    return [ClaimedMessage.of(row, request) for row, request in rows]


def reclaim(
    session: Session, message_id: int, claimed_before: datetime, worker: str, now: datetime
) -> datetime | None:
    """Takes over a stale claim (compare-and-set on its claim time); returns the old claim time."""
    row = session.get(OutboundMessage, message_id)
    if row is None or row.state != CLAIMED or row.claimed_at is None:
        return None
    old = row.claimed_at
    changed = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.state == CLAIMED,
            OutboundMessage.claimed_at == old,
            OutboundMessage.claimed_at < claimed_before,
        )
        .values(claimed_at=now, claimed_by=worker[:64], updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return old if changed == 1 else None


def update_delivery_status(
    session: Session, sid: str, twilio_status: str, error_code: str, now: datetime
) -> OutboundMessage | None:
    """A status callback: the row with this SID moves on, never back from a final state.

    A failed or undelivered text raises the "delivery failed" flag on its request.
    """
    row = session.execute(
        select(OutboundMessage).where(OutboundMessage.twilio_sid == sid)
    ).scalar_one_or_none()
    if row is None:
        return None
    state = TWILIO_STATES.get(twilio_status)
    if state is None or row.state in FINAL_STATES:
        return row
    row.twilio_status = twilio_status[:16]
    row.state = state
    row.updated_at = now
    if state in (FAILED, UNDELIVERED):
        row.reason = f"Twilio: {twilio_status}" + (f" (error {error_code})" if error_code else "")
        raise_flag(session, row.request_id, DELIVERY_FAILED, _kind_text(row.kind), now)
    session.flush()
    return row


def messages_needing_context(session: Session, limit: int = 20) -> list[OutboundMessage]:
    """Sent texts whose conversation has not yet been told about them (Rasa was down)."""
    return list(
        session.execute(
            select(OutboundMessage)
            .where(
                OutboundMessage.context_recorded.is_(False),
                OutboundMessage.twilio_sid.is_not(None),
            )
            .order_by(OutboundMessage.sent_at)
            .limit(limit)
        ).scalars()
    )


def mark_context_recorded(session: Session, message_id: int, now: datetime) -> None:
    _set(session, message_id, now, context_recorded=True)


def messages_of(session: Session, request_id: int) -> list[OutboundMessage]:
    """The request's texts, by appointment version then due time."""
    return list(
        session.execute(
            select(OutboundMessage)
            .where(OutboundMessage.request_id == request_id)
            .order_by(
                OutboundMessage.appointment_version.desc(),
                OutboundMessage.due_at,
                OutboundMessage.id,
            )
        ).scalars()
    )


def _kind_text(kind: str) -> str:
    return f"The {kind.replace('_', ' ')} text"


def raise_flag(
    session: Session, request_id: int, reason: str, raised_by: str, now: datetime
) -> RequestFlag:
    """Flags the request for staff, with the reply (or the text) that raised it."""
    if reason not in FLAG_LABELS:
        raise ValueError(f"unknown flag reason {reason!r}")
    flag = RequestFlag(
        request_id=request_id,
        reason=reason,
        raised_by=raised_by[:MAX_RAISED_BY_LENGTH],
        raised_at=now,
    )
    session.add(flag)
    session.flush()
    return flag


def raise_flag_by_reference(
    session: Session, reference: str, reason: str, raised_by: str, now: datetime
) -> RequestFlag | None:
    request_id = session.execute(
        select(AppointmentRequest.id).where(AppointmentRequest.reference == reference)
    ).scalar_one_or_none()
    if request_id is None:
        return None
    return raise_flag(session, request_id, reason, raised_by, now)


def open_flags(session: Session, request_id: int) -> list[RequestFlag]:
    return list(
        session.execute(
            select(RequestFlag)
            .where(RequestFlag.request_id == request_id, RequestFlag.cleared_at.is_(None))
            .order_by(RequestFlag.raised_at, RequestFlag.id)
        ).scalars()
    )


def clear_flags(session: Session, request_id: int, staff_username: str, now: datetime) -> int:
    return session.execute(
        update(RequestFlag)
        .where(RequestFlag.request_id == request_id, RequestFlag.cleared_at.is_(None))
        .values(cleared_at=now, cleared_by=staff_username[:64])
        .execution_options(synchronize_session=False)
    ).rowcount


def flagged_request_ids(session: Session) -> Sequence[int]:
    return list(
        session.execute(
            select(RequestFlag.request_id).where(RequestFlag.cleared_at.is_(None)).distinct()
        ).scalars()
    )


def count_flagged_requests(session: Session) -> int:
    return session.execute(
        select(func.count(func.distinct(RequestFlag.request_id))).where(
            RequestFlag.cleared_at.is_(None)
        )
    ).scalar_one()


def latest_request_for_phone(session: Session, phone_e164: str) -> AppointmentRequest | None:
    """The scheduled request a reply from this number most likely answers."""
    return session.execute(
        select(AppointmentRequest)
        .where(
            AppointmentRequest.phone_e164 == phone_e164,
            AppointmentRequest.appointment_at.is_not(None),
        )
        .order_by(AppointmentRequest.appointment_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def request_by_reference(session: Session, reference: str) -> AppointmentRequest | None:
    return session.execute(
        select(AppointmentRequest).where(AppointmentRequest.reference == reference)
    ).scalar_one_or_none()


def request_by_id(session: Session, request_id: int) -> AppointmentRequest | None:
    return session.get(AppointmentRequest, request_id)


def conversation_known(session: Session, phone_e164: str, conversation_id: str) -> bool:
    """Whether this number's SMS conversation exists: the patient wrote by SMS, or a text was
    already recorded in it."""
    wrote = session.execute(
        select(AppointmentRequest.id)
        .where(AppointmentRequest.conversation_id == conversation_id)
        .limit(1)
    ).first()
    recorded = session.execute(
        select(OutboundMessage.id)
        .where(
            OutboundMessage.phone_e164 == phone_e164,
            OutboundMessage.context_recorded.is_(True),
        )
        .limit(1)
    ).first()
    return wrote is not None or recorded is not None
