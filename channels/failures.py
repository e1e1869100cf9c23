"""What a patient hears when the assistant could not handle her message: never silence.

A message can fail after it reached Rasa: the tracker database or the lock store (Redis) is
down, the action server cannot be reached (rasa_patches turns that into a failed turn), a disk
is full. Rasa's channels then log the patient's words and answer nothing. Each of our channels
wraps Rasa's message handler with ``answering_on_failure`` instead: the failure is logged by
type only, and the patient is told that her message was not taken in, what to do, and where to
turn if something feels wrong.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import UserMessage

from channels.message_limits import with_readable_text
from clinic.settings import load_clinic_settings

logger = logging.getLogger(__name__)

MessageHandler = Callable[[UserMessage], Awaitable[Any]]


def could_not_answer_text() -> str:
    """The apology: nothing was taken in, try again, and the safety line for warning signs."""
    clinic = load_clinic_settings()
    return (
        "Sorry, something went wrong on our side and I could not take in your last message. "
        "Please send it again in a minute. If you have severe pain, a fever or heavy bleeding, "
        f"contact your doctor now or call {clinic.name} at {clinic.phone}; "
        "call 911 in an emergency."
    )


def answering_on_failure(on_new_message: MessageHandler) -> MessageHandler:
    """Rasa's message handler, which sends the apology on the message's channel if it fails."""

    @functools.wraps(on_new_message)
    async def handle(message: UserMessage) -> Any:
        try:
            return await on_new_message(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever failed, the patient must hear
            # Never the text: the exception's message can quote the patient's words.
            logger.error(
                "A message on channel %s could not be handled: %s",
                message.input_channel,
                type(error).__name__,
            )
            await message.output_channel.send_text_message(
                message.sender_id, could_not_answer_text()
            )
            return None

    return handle


def patient_message_handler(on_new_message: MessageHandler) -> MessageHandler:
    """Rasa's handler as every patient channel calls it: readable text in, never silence out."""
    return answering_on_failure(with_readable_text(on_new_message))
