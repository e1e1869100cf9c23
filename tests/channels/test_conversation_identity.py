"""The attack of the security issue, as an outsider would try it against the running servers.

A patient's SMS conversation reaches the form's summary; then socket.io and REST, told her
number in every spelling, get nothing of hers, and her form is unchanged.
"""

from __future__ import annotations

import asyncio
import re
from typing import Dict, List

import requests
import socketio

from appointments.requests import count_appointment_requests, get_appointment_request
from channels.conversation_ids import sms_conversation_id
from channels.message_limits import MAX_MESSAGE_CHARS

PATIENT_NAME = "Ana Ruiz"


def walk_sms_form_to_summary(twilio, phone_number: str) -> str:
    """The form of domain/appointment.yml answered by SMS up to its summary; returns it."""
    steps = [
        ("I'd like to book an appointment for an HSG", "Shall we go ahead?"),
        ("1", "full name"),
        (PATIENT_NAME, "date of birth"),
        ("03/04/1990", "the number you're texting from"),
        ("1", "email"),
        ("1", "last period"),
        ("1", "days and times"),
        ("weekday mornings", "could you be pregnant"),
        ("1", "contrast dye"),
        ("1", "pelvic infection"),
        ("1", "doctor"),
        ("1", "contact you"),
        ("1", "Is everything right?"),
    ]
    reply = ""
    for body, expected in steps:
        reply = twilio.text(phone_number, body).text
        assert expected.lower() in reply.lower(), f"after {body!r}: {reply}"
    return reply


async def socket_attempt(rasa_url: str, headers: Dict[str, str], session_id: str) -> List[str]:
    """Opens the widget's socket with ``session_id`` and tries to go on with the form."""
    client = socketio.AsyncClient(reconnection=False)
    replies: asyncio.Queue = asyncio.Queue()
    confirmed: asyncio.Queue = asyncio.Queue()
    client.on("bot_uttered", replies.put_nowait)
    client.on("session_confirm", confirmed.put_nowait)
    try:
        await client.connect(rasa_url, headers=headers, transports=["websocket"])
    except socketio.exceptions.ConnectionError:
        return ["<refused>"]
    texts = []
    try:
        await client.emit("session_request", {"session_id": session_id})
        await asyncio.wait_for(confirmed.get(), timeout=10)
        for text in ("change my phone number", "/affirm", "1"):
            await client.emit("user_uttered", {"message": text, "session_id": session_id})
            while True:
                try:
                    message = await asyncio.wait_for(replies.get(), timeout=3)
                except asyncio.TimeoutError:
                    break
                texts.append(message.get("text", ""))
    finally:
        await client.disconnect()
    return texts


def test_another_channel_told_her_number_reaches_nothing_of_hers(
    assistant, twilio, phone_number, tracker_event_count
) -> None:
    summary = walk_sms_form_to_summary(twilio, phone_number)
    assert PATIENT_NAME in summary
    her_conversation = sms_conversation_id(phone_number)
    events_before = tracker_event_count(her_conversation)
    requests_before = count_appointment_requests(url=assistant.database_url)
    assert events_before > 0

    web_origin = assistant.env["WEB_ORIGIN"]
    seen: List[str] = []
    for session_id in (phone_number, her_conversation, phone_number.lstrip("+")):
        for headers in ({"Origin": web_origin}, {"Origin": "http://evil.example"}, {}):
            seen += asyncio.run(socket_attempt(assistant.rasa_url, headers, session_id))
        for text in ("change my phone number", "/affirm", "1"):
            response = requests.post(
                f"{assistant.rasa_url}/webhooks/rest/webhook",
                json={"sender": session_id, "message": text, "input_channel": "twilio"},
                timeout=60,
            )
            assert response.status_code == 200
            seen += [message.get("text", "") for message in response.json()]

    everything_seen = "\n".join(seen)
    assert PATIENT_NAME not in everything_seen
    assert phone_number[-4:] not in everything_seen
    assert not re.search(r"HSG-[0-9A-Z]{6}", everything_seen)
    assert tracker_event_count(her_conversation) == events_before
    assert count_appointment_requests(url=assistant.database_url) == requests_before

    # Her form is where she left it: confirming now saves her request, under her conversation.
    saved = twilio.text(phone_number, "1").text
    reference = re.search(r"HSG-[0-9A-Z]{6}", saved).group(0)
    stored = get_appointment_request(reference, url=assistant.database_url)
    assert (stored.full_name, stored.phone_e164) == (PATIENT_NAME, phone_number)
    assert stored.conversation_id == her_conversation


def test_an_over_long_message_is_refused_on_every_channel_before_nlu(
    assistant, twilio, phone_number, tracker_event_count
) -> None:
    too_long = "does an hsg hurt " * (MAX_MESSAGE_CHARS // 17 + 1)
    huge = "a" * 100_000

    sms_reply = twilio.text(phone_number, too_long[:1590]).text
    rest_sender = "long-message-test"
    rest_reply = requests.post(
        f"{assistant.rasa_url}/webhooks/rest/webhook",
        json={"sender": rest_sender, "message": huge},
        timeout=60,
    )

    assert "too long" in sms_reply
    assert rest_reply.status_code in (200, 413)
    if rest_reply.status_code == 200:
        assert "too long" in rest_reply.json()[0]["text"]
    # Nothing reached Rasa's message processing: not even the user's turn was stored.
    assert tracker_event_count(sms_conversation_id(phone_number)) == 0
    assert tracker_event_count(assistant.conversation_id(rest_sender)) == 0


def test_a_100_kb_socket_message_never_reaches_the_assistant(assistant) -> None:
    async def send_huge() -> bool:
        client = socketio.AsyncClient(reconnection=False)
        replies: asyncio.Queue = asyncio.Queue()
        confirmed: asyncio.Queue = asyncio.Queue()
        client.on("bot_uttered", replies.put_nowait)
        client.on("session_confirm", confirmed.put_nowait)
        await client.connect(
            assistant.rasa_url,
            headers={"Origin": assistant.env["WEB_ORIGIN"]},
            transports=["websocket"],
        )
        await client.emit("session_request", {})
        await asyncio.wait_for(confirmed.get(), timeout=10)
        try:
            await client.emit("user_uttered", {"message": "a" * 100_000})
            await asyncio.wait_for(replies.get(), timeout=5)
            return True
        except (asyncio.TimeoutError, socketio.exceptions.BadNamespaceError):
            return False
        finally:
            await client.disconnect()

    assert asyncio.run(send_huge()) is False


def test_a_burst_from_one_conversation_is_told_to_slow_down_never_a_5xx(assistant) -> None:
    sender = "burst-test"
    statuses, texts = [], []
    for _ in range(50):
        response = requests.post(
            f"{assistant.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": "hi"},
            timeout=60,
        )
        statuses.append(response.status_code)
        texts.append(" ".join(message.get("text", "") for message in response.json()))

    assert set(statuses) == {200}
    slowed = [text for text in texts if "faster than I can answer" in text]
    assert 1 <= len(slowed) <= 50 - 30 + 1, len(slowed)
    assert "faster than I can answer" not in texts[0]
