"""Take over, write, hand back, and return idle holds to the inbox: the database and Rasa together.

Each step claims or changes the inbox row (compare-and-set, appointments/handoffs.py) and calls
the Rasa server's HTTP API (rasa_http) inside the same database transaction, with its audit
event: if Rasa cannot be reached, the claim is rolled back and nothing was told to the patient.

- Take over: ``pause`` (Rasa predicts and runs nothing for the conversation, also after a restart:
  the flag is rebuilt from the stored events; actions/session.py carries it into a new session),
  then "a member of our team has joined" as a bot event sent on the patient's channel.
- A staff message: a bot event whose metadata names the member of staff, sent the same way.
- Hand back: ``resume``, any active form closed (her next message is read afresh, not as the
  answer to a question asked before the talk), and "I'm the chat bot again".
- Idle: a held conversation whose holder has not written for TAKEOVER_IDLE_MINUTES goes back to
  the inbox as waiting, and the assistant answers again in the meantime (with the phone and 911),
  rather than leave the patient talking to nobody.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from appointments import audit
from appointments import handoffs as store
from appointments.database import session_scope
from appointments.models import HandoffRequest, utc_now
from handoff import texts
from rasa_http import RasaApiError, append_events

logger = logging.getLogger(__name__)

IDLE_MINUTES_ENV = "TAKEOVER_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 15
# The widget and one SMS both take this much comfortably (Twilio splits longer texts).
MAX_STAFF_MESSAGE_LENGTH = 1000
CHANNEL_LABELS = {"socketio": "web chat", "twilio": "SMS", "rest": "REST"}

__all__ = ["HoldError", "RasaApiError"]
HoldError = store.HoldError


class TakeoverSettingError(ValueError):
    """TAKEOVER_IDLE_MINUTES is not a positive whole number."""


def idle_timeout(value: str | None = None) -> timedelta:
    """How long a held conversation may go without a staff message (env TAKEOVER_IDLE_MINUTES)."""
    text = os.environ.get(IDLE_MINUTES_ENV, "") if value is None else value
    if not text.strip():
        return timedelta(minutes=DEFAULT_IDLE_MINUTES)
    try:
        minutes = int(text.strip())
    except ValueError:
        minutes = 0
    if minutes < 1:
        raise TakeoverSettingError(
            f"{IDLE_MINUTES_ENV} must be a positive whole number, not {text!r}"
        )
    return timedelta(minutes=minutes)


@dataclass(frozen=True)
class Conversation:
    """What a staff page shows of an inbox row (the conversation id stays on the server)."""

    id: int
    conversation_id: str
    channel: str
    reason: str
    request_reference: str | None
    status: str
    created_at: datetime
    held_by: str | None

    @property
    def reason_label(self) -> str:
        return store.REASON_LABELS.get(self.reason, self.reason)

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS.get(self.channel, self.channel)


def _view(row: HandoffRequest) -> Conversation:
    return Conversation(
        id=row.id,
        conversation_id=row.conversation_id,
        channel=row.channel,
        reason=row.reason,
        request_reference=row.request_reference,
        status=row.status,
        created_at=row.created_at,
        held_by=row.held_by,
    )


def _bot(text: str, staff_username: str | None = None) -> dict[str, Any]:
    # The metadata tells the transcript (and anyone reading the tracker) who wrote it.
    metadata = {"staff": staff_username} if staff_username else {"handoff": True}
    return {"event": "bot", "text": text, "metadata": metadata, "timestamp": time.time()}


def _send(row: HandoffRequest, events: list[dict[str, Any]]) -> None:
    append_events(
        row.conversation_id, events, output_channel=row.channel, execute_side_effects=True
    )


def _detail(row: HandoffRequest, extra: str = "") -> str:
    # The row's number and channel only: the conversation id of an SMS is her phone number.
    return f"conversation #{row.id} ({CHANNEL_LABELS.get(row.channel, row.channel)}){extra}"


def _resume_events(message: str) -> list[dict[str, Any]]:
    return [
        {"event": "resume"},
        {"event": "active_loop", "name": None},
        {"event": "slot", "name": "requested_slot", "value": None},
        _bot(message),
    ]


def inbox(url: str | None = None) -> list[Conversation]:
    with session_scope(url) as session:
        return [_view(row) for row in store.list_open_handoffs(session)]


def waiting_count(url: str | None = None) -> int:
    with session_scope(url) as session:
        return store.count_waiting(session)


def conversation(handoff_id: int, url: str | None = None) -> Conversation | None:
    with session_scope(url) as session:
        row = store.get_handoff(session, handoff_id)
        return _view(row) if row else None


def take_over(handoff_id: int, staff_username: str, url: str | None = None) -> Conversation:
    """Holds the conversation for ``staff_username``, pauses the assistant, tells the patient."""
    try:
        with session_scope(url) as session:
            row, claimed_now = store.take_over(session, handoff_id, staff_username)
            if claimed_now:
                _send(
                    row, [{"event": "pause"}, _bot(texts.render(texts.STAFF_JOINED, row.channel))]
                )
                audit.add_audit_event(
                    session,
                    action=audit.TAKE_OVER,
                    staff_username=staff_username,
                    request_reference=row.request_reference,
                    detail=_detail(row),
                )
            return _view(row)
    except store.HoldError as error:
        audit.record_audit_event(
            action=audit.TAKE_OVER_REFUSED,
            staff_username=staff_username,
            detail=f"conversation #{handoff_id}, held by {error.holder or 'nobody'}",
            url=url,
        )
        raise


def send_staff_message(
    handoff_id: int, staff_username: str, text: str, url: str | None = None
) -> None:
    """Sends ``text`` to the patient on her channel, from the member of staff who holds her chat."""
    text = text.strip()
    if not text:
        raise ValueError("The message is empty.")
    if len(text) > MAX_STAFF_MESSAGE_LENGTH:
        raise ValueError(f"Messages can be at most {MAX_STAFF_MESSAGE_LENGTH} characters.")
    with session_scope(url) as session:
        row = store.note_staff_activity(session, handoff_id, staff_username)
        _send(row, [_bot(text, staff_username)])
        audit.add_audit_event(
            session,
            action=audit.STAFF_MESSAGE,
            staff_username=staff_username,
            request_reference=row.request_reference,
            detail=_detail(row, f", {len(text)} characters"),
        )


def send_warning_signs_answer(handoff_id: int, staff_username: str, url: str | None = None) -> None:
    """The assistant's own escalation answer, sent by the holder when she reports a warning sign.

    While a person holds the chat the assistant answers nothing, so the staff page marks a
    reported warning sign and offers this button: the same answer the assistant gives.
    """
    with session_scope(url) as session:
        row = store.note_staff_activity(session, handoff_id, staff_username)
        _send(row, [_bot(texts.render(texts.WARNING_SIGNS, row.channel), staff_username)])
        audit.add_audit_event(
            session,
            action=audit.STAFF_MESSAGE,
            staff_username=staff_username,
            request_reference=row.request_reference,
            detail=_detail(row, ", the warning-signs answer"),
        )


def hand_back(handoff_id: int, staff_username: str, url: str | None = None) -> None:
    """Closes the row, resumes the assistant and tells the patient she is back with it."""
    with session_scope(url) as session:
        row = store.hand_back(session, handoff_id, staff_username)
        _send(row, _resume_events(texts.render(texts.ASSISTANT_BACK, row.channel)))
        audit.add_audit_event(
            session,
            action=audit.HAND_BACK,
            staff_username=staff_username,
            request_reference=row.request_reference,
            detail=_detail(row),
        )


def close_without_joining(handoff_id: int, staff_username: str, url: str | None = None) -> None:
    """Takes a waiting conversation out of the inbox without joining it (the assistant is not
    paused, so nothing is said to the patient): e.g. a question about warning signs, answered."""
    with session_scope(url) as session:
        row = store.close_waiting(session, handoff_id, staff_username)
        audit.add_audit_event(
            session,
            action=audit.CLOSE_WITHOUT_JOINING,
            staff_username=staff_username,
            request_reference=row.request_reference,
            detail=_detail(row),
        )


def release_idle_holds(
    idle_for: timedelta, now: datetime | None = None, url: str | None = None
) -> int:
    """Returns every idle held conversation to the inbox (assistant resumed); how many."""
    now = now or utc_now()
    released = 0
    with session_scope(url) as session:
        candidates = store.idle_holds(session, idle_for, now)
    for handoff_id in candidates:
        try:
            with session_scope(url) as session:
                holder = store.hold_state(session, handoff_id)
                row = store.release_idle_hold(session, handoff_id, idle_for, now)
                if row is None:
                    continue
                _send(row, _resume_events(texts.render(texts.STAFF_STEPPED_AWAY, row.channel)))
                minutes = int(idle_for.total_seconds() // 60)
                audit.add_audit_event(
                    session,
                    action=audit.HOLD_RELEASED,
                    staff_username=None,
                    request_reference=row.request_reference,
                    detail=_detail(
                        row, f", held by {holder.held_by if holder else '?'}, idle {minutes} min"
                    ),
                )
                released += 1
        except RasaApiError as error:
            # Kept as held; the next sweep tries again.
            logger.warning("Could not return an idle conversation to the inbox: %s", error)
    return released
