"""The gate in front of NLU: length and rate, per conversation and per client address."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from limits import parse
from limits.storage import storage_from_string
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from channels.conversation_ids import WebConversationIds, rest_conversation_id, sms_conversation_id
from channels.message_limits import (
    MAX_MESSAGE_CHARS,
    MessageGate,
    readable_text,
    with_readable_text,
)
from clinic.settings import load_clinic_settings
from scripts.assistant_servers import free_port


@pytest.fixture
def free_tcp_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


def gate(per_conversation: str = "3/minute", per_address: str = "5/minute") -> MessageGate:
    return MessageGate(
        per_conversation=parse(per_conversation),
        per_address=parse(per_address),
        storage=storage_from_string("memory://"),
    )


def test_a_message_at_the_limit_passes_and_one_more_character_is_refused_kindly() -> None:
    message_gate = gate()
    phone = load_clinic_settings().phone

    assert message_gate.refusal("a" * MAX_MESSAGE_CHARS, "web:one", "10.0.0.1") is None
    refusal = message_gate.refusal("a" * (MAX_MESSAGE_CHARS + 1), "web:two", "10.0.0.1")
    assert "too long" in refusal and phone in refusal and "911" in refusal


def test_one_conversation_is_slowed_down_without_touching_another() -> None:
    message_gate = gate(per_conversation="3/minute", per_address="100/minute")

    answers = [message_gate.refusal("hi", "web:flood", "10.0.0.1") for _ in range(5)]

    assert answers[:3] == [None, None, None]
    assert all("faster than I can answer" in answer for answer in answers[3:])
    assert message_gate.refusal("hi", "web:calm", "10.0.0.1") is None


def test_one_address_is_slowed_down_across_its_conversations_and_others_are_not() -> None:
    message_gate = gate(per_conversation="100/minute", per_address="5/minute")

    answers = [message_gate.refusal("hi", f"web:{n}", "10.0.0.9") for n in range(7)]

    assert answers[:5] == [None] * 5
    assert all("faster than I can answer" in answer for answer in answers[5:])
    assert message_gate.refusal("hi", "web:other", "10.0.0.10") is None


def test_messages_go_on_when_the_counters_store_cannot_be_reached(
    free_tcp_port: int,
) -> None:
    # Redis down: nothing listens on the port. The gate must not refuse (nor raise: a 500).
    message_gate = MessageGate(
        per_conversation=parse("1/minute"),
        per_address=parse("1/minute"),
        storage=storage_from_string(f"redis://127.0.0.1:{free_tcp_port}"),
    )

    assert [message_gate.refusal("hi", "web:one", "10.0.0.1") for _ in range(3)] == [None] * 3
    assert "too long" in message_gate.refusal("a" * (MAX_MESSAGE_CHARS + 1), "web:one", None)


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_CONVERSATION", "2/second")
    monkeypatch.setenv("RATE_LIMIT_PER_ADDRESS", "7/hour")

    message_gate = MessageGate.from_environment()

    assert (message_gate.per_conversation.amount, message_gate.per_address.amount) == (2, 7)


def test_each_channel_names_its_conversations_in_its_own_namespace() -> None:
    ids = WebConversationIds("a-test-secret")
    token = ids.issue()

    web_id = ids.conversation_id(token)
    assert web_id.startswith("web:")
    assert sms_conversation_id("+12015550123") == "sms:+12015550123"
    # Whatever a REST client sends, it stays under rest:, never web: or sms:.
    assert rest_conversation_id("sms:+12015550123") == "rest:sms:+12015550123"
    assert rest_conversation_id(web_id).startswith("rest:")


def test_only_tokens_signed_with_the_servers_secret_name_a_conversation() -> None:
    ids, other_server = WebConversationIds("secret-one"), WebConversationIds("secret-two")
    token = ids.issue()
    random_part, _, tag = token.partition(".")

    assert len(random_part) == 32  # 128 random bits
    assert ids.conversation_id(token) == f"web:{random_part}"
    assert other_server.conversation_id(token) is None
    for forged in (random_part, f"web:{random_part}", f"{random_part}.", "+12015550123", None, 42):
        assert ids.conversation_id(forged) is None
    assert (
        ids.conversation_id(f"{random_part}.{tag[:-1]}x" if tag[-1] != "x" else token[:-1]) is None
    )
    assert ids.issue() != token


@pytest.mark.parametrize("text", ["", "   ", "\t\r\n", "\u00a0", "\u3000", "\u2028", "\x00\x01"])
def test_a_message_without_words_gets_a_friendly_line_before_nlu(text: str) -> None:
    refusal = gate().refusal(text, "web:blank", "10.0.0.1")

    assert "didn't get any words" in refusal
    assert load_clinic_settings().phone in refusal and "911" in refusal


def test_text_reaches_nlu_and_the_databases_without_lone_surrogates_or_control_characters() -> None:
    assert readable_text("does it \udc80 hurt\x00?") == "does it \ufffd hurt?"
    assert readable_text("line one\nline\ttwo\r\n") == "line one\nline\ttwo\r\n"
    assert readable_text("ça fait mal 😟") == "ça fait mal 😟"


def test_typed_undo_and_restart_payloads_are_read_as_words_not_as_rasas_default_intents() -> None:
    assert readable_text("/back") == "back"
    assert readable_text(" /BACK please") == "back please"
    assert readable_text("/restart") == "restart"
    assert readable_text("/Restart{}") == "restart{}"
    assert readable_text("/book_appointment") == "/book_appointment"
    assert readable_text("/restarting") == "/restarting"


def test_every_channel_gives_nlu_the_readable_text() -> None:
    received: list[str] = []

    async def on_new_message(message: UserMessage) -> None:
        received.append(message.text)

    handler = with_readable_text(on_new_message)
    asyncio.run(handler(UserMessage("hi\ud800\x07", CollectingOutputChannel(), "rest:x")))

    assert received == ["hi\ufffd"]


def test_rasas_warning_that_quotes_a_malformed_payload_is_not_written() -> None:
    from rasa.shared.utils.io import raise_warning

    with warnings.catch_warnings(record=True) as caught:
        with_readable_text(lambda message: None)  # as each channel's blueprint does
        raise_warning('Failed to parse arguments in line \'/inform{"full_name": "Jane Roe"\'.')

    assert caught == []
