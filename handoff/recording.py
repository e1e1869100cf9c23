"""Records that a conversation needs a person, and the messages the assistant could not answer.

Called by the actions (actions/handoff.py, actions/fallback.py, actions/runner_up.py). A failure
to record is logged by its type only and never stops the patient's answer: the answer already
gives the phone and 911.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from appointments.database import session_scope
from appointments.handoffs import channel_of, record_handoff_need
from appointments.unanswered import record_unanswered

logger = logging.getLogger(__name__)


def record_need(
    conversation_id: str, reason: str, *, unanswered_kind: str | None = None, text: str = ""
) -> bool:
    """Puts the conversation in the staff inbox (and, with a kind, its message in the insights)."""
    try:
        with session_scope() as session:
            record_handoff_need(session, conversation_id, reason)
            if unanswered_kind:
                record_unanswered(
                    session, kind=unanswered_kind, channel=channel_of(conversation_id), text=text
                )
    except SQLAlchemyError as error:
        logger.error("Could not record a hand-off: %s", type(error).__name__)
        return False
    return True


def record_unanswered_message(conversation_id: str, kind: str, text: str) -> bool:
    """One message for the insights page."""
    try:
        with session_scope() as session:
            record_unanswered(session, kind=kind, channel=channel_of(conversation_id), text=text)
    except SQLAlchemyError as error:
        logger.error("Could not record an unanswered message: %s", type(error).__name__)
        return False
    return True
