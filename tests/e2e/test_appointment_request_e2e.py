"""A whole appointment request over the REST channel, then the stored row (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from appointments.requests import count_appointment_requests, get_appointment_request
from scripts.assistant_servers import Assistant, new_sender

REFERENCE_PATTERN = re.compile(r"\bHSG-[23456789A-HJKMNP-Z]{6}\b")


@pytest.fixture(params=["assistant", "assistant_on_postgres"])
def running_assistant(request: pytest.FixtureRequest) -> Assistant:
    return request.getfixturevalue(request.param)


def texts(messages: list[dict]) -> str:
    return "\n".join(message.get("text", "") for message in messages)


def button_payloads(messages: list[dict]) -> list[str]:
    return [button["payload"] for message in messages for button in message.get("buttons", [])]


def say(assistant: Assistant, sender: str, text: str, expect: str) -> list[dict]:
    """Sends one message and checks that the reply contains ``expect`` (case-insensitive)."""
    messages = assistant.send(text, sender)
    reply = texts(messages)
    assert expect.lower() in reply.lower(), f"after {text!r} expected {expect!r}, got:\n{reply}"
    return messages


def start_request(assistant: Assistant, sender: str) -> None:
    messages = say(assistant, sender, "/book_appointment", "a request, not a booked appointment")
    assert button_payloads(messages) == ["/affirm", "/deny"]
    say(assistant, sender, "/affirm", "full name")


def test_whole_request_is_stored_once_with_every_field(running_assistant: Assistant) -> None:
    assistant, sender = running_assistant, new_sender()
    before = count_appointment_requests(url=assistant.database_url)
    start_request(assistant, sender)
    # Two answers in one message: the date of birth is not asked again.
    say(assistant, sender, "I'm Ana Ruiz, born 3/4/1990", "mobile number")
    say(assistant, sender, "my number is (201) 555-0123", "email")
    say(assistant, sender, "Ana.Ruiz@Example.com", "last period")
    # A question in the middle is answered, then the same question comes back.
    say(assistant, sender, "does the hsg hurt?", "last period")
    say(assistant, sender, "no periods", "days and times")
    say(assistant, sender, "next tuesday afternoon", "could you be pregnant")
    say(assistant, sender, "no", "iodine")
    say(assistant, sender, "yes", "talk it through with you")
    say(assistant, sender, "no", "referred you")
    say(assistant, sender, "Dr. Patel", "contact you")
    summary = say(assistant, sender, "text me", "Here is your request")
    assert "Ana Ruiz" in texts(summary) and "(201) 555-0123" in texts(summary)
    assert button_payloads(summary) == ["/affirm", "/change_request_field", "/stop"]
    # A correction by name of the field.
    say(assistant, sender, "change my phone number", "mobile number")
    summary = say(assistant, sender, "646-555-0182", "Here is your request")
    assert "(646) 555-0182" in texts(summary)

    reply = texts(say(assistant, sender, "/affirm", "your reference is"))
    assert "didn't quite get" not in reply, "confirming must not be followed by a fallback"
    reference = REFERENCE_PATTERN.search(reply).group(0)
    assert "contact you" in reply  # the clinic's call-back sentence

    assert count_appointment_requests(url=assistant.database_url) == before + 1
    row = get_appointment_request(reference, url=assistant.database_url)
    assert row is not None
    assert row.status == "new"
    assert row.channel == "rest"
    assert row.conversation_id == assistant.conversation_id(sender)
    assert abs(row.created_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert row.full_name == "Ana Ruiz"
    assert row.date_of_birth == date(1990, 3, 4)
    assert row.date_of_birth_raw == "I'm Ana Ruiz, born 3/4/1990"
    assert row.phone_e164 == "+16465550182"
    assert row.phone_raw == "646-555-0182"
    assert row.email == "Ana.Ruiz@example.com"
    assert row.email_raw == "Ana.Ruiz@Example.com"
    assert row.last_period_not_applicable is True
    assert row.last_period_start is None
    assert row.preferred_times_raw == "next tuesday afternoon"
    assert len(row.preferred_dates) == 1
    assert date.fromisoformat(row.preferred_dates[0]) > date.today()
    assert (row.possibly_pregnant, row.contrast_allergy, row.pelvic_infection) == (
        "no",
        "yes",
        "no",
    )
    assert row.needs_attention is True
    assert row.referring_doctor == "Dr. Patel"
    assert row.contact_method == "text"

    # A second tap on Confirm stores nothing more.
    assistant.send("/affirm", sender)
    assert count_appointment_requests(url=assistant.database_url) == before + 1


def test_cancel_in_the_middle_stores_nothing(running_assistant: Assistant) -> None:
    assistant, sender = running_assistant, new_sender()
    before = count_appointment_requests(url=assistant.database_url)
    start_request(assistant, sender)
    say(assistant, sender, "Maria Gonzalez", "date of birth")
    say(assistant, sender, "cancel", "nothing has been stored")
    # The form is left: the next message is an ordinary question again.
    say(assistant, sender, "/pain", "cramping")
    assert count_appointment_requests(url=assistant.database_url) == before


def test_declined_consent_gives_the_phone_and_stores_nothing(assistant: Assistant) -> None:
    sender = new_sender()
    before = count_appointment_requests(url=assistant.database_url)
    say(assistant, sender, "/book_appointment", "shall we go ahead")
    say(assistant, sender, "/deny", "800-220-2220")
    assert count_appointment_requests(url=assistant.database_url) == before


def test_invalid_answers_get_hints_and_the_phone_line_after_three_tries(
    assistant: Assistant,
) -> None:
    sender = new_sender()
    start_request(assistant, sender)
    say(assistant, sender, "Ana Ruiz", "date of birth")
    say(assistant, sender, "tomorrow", "today or in the future")
    say(assistant, sender, "<script>alert(1)</script>", "month, day and year")
    reply = texts(say(assistant, sender, "N/A", "month, day and year"))
    assert "800-220-2220" in reply
    say(assistant, sender, "March 4, 1990", "mobile number")
