"""A message the assistant could not handle is answered with the apology, on its own channel."""

from __future__ import annotations

import asyncio
import logging

import pytest
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from channels.failures import answering_on_failure, could_not_answer_text
from clinic.settings import load_clinic_settings

PATIENT_WORDS = "my name is Jane Roe and I bleed heavily"


def message(output: CollectingOutputChannel) -> UserMessage:
    return UserMessage(PATIENT_WORDS, output, "rest:jane", input_channel="rest")


def test_a_failed_message_gets_the_apology_and_the_log_keeps_only_the_error_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def tracker_database_down(_: UserMessage) -> None:
        raise ConnectionError(f"could not save {PATIENT_WORDS}")

    output = CollectingOutputChannel()
    with caplog.at_level(logging.ERROR):
        asyncio.run(answering_on_failure(tracker_database_down)(message(output)))

    assert output.messages == [{"recipient_id": "rest:jane", "text": could_not_answer_text()}]
    assert "ConnectionError" in caplog.text
    assert "Jane" not in caplog.text and "bleed" not in caplog.text


def test_the_apology_says_to_resend_and_carries_the_warning_sign_safety_line() -> None:
    clinic = load_clinic_settings()
    text = could_not_answer_text()

    assert "send it again" in text
    assert "contact your doctor now" in text and clinic.phone in text and "911" in text


def test_a_handled_message_passes_through_untouched() -> None:
    async def answered(incoming: UserMessage) -> str:
        await incoming.output_channel.send_text_message(incoming.sender_id, "Hello!")
        return "done"

    output = CollectingOutputChannel()
    assert asyncio.run(answering_on_failure(answered)(message(output))) == "done"
    assert [m["text"] for m in output.messages] == ["Hello!"]


def test_a_cancelled_message_is_not_answered_as_a_failure() -> None:
    # Cancelled: the client went away or the server is stopping; there is no one to tell.
    async def cancelled(_: UserMessage) -> None:
        raise asyncio.CancelledError

    output = CollectingOutputChannel()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(answering_on_failure(cancelled)(message(output)))
    assert output.messages == []
