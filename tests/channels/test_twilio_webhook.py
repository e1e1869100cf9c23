"""The SMS webhook on the running Rasa server, posted to as Twilio would, answered with TwiML."""

from __future__ import annotations

import re

from appointments.requests import get_appointment_request, is_sms_opted_out
from channels.conversation_ids import sms_conversation_id
from channels.sms_text import MAX_SMS_CHARACTERS
from clinic.settings import load_clinic_settings


def assert_fits_sms(messages: list) -> None:
    assert messages, "expected at least one SMS"
    assert all(0 < len(message) <= MAX_SMS_CHARACTERS for message in messages), messages


def test_a_signed_question_gets_the_answer_as_twiml(twilio, phone_number) -> None:
    reply = twilio.text(phone_number, "does an hsg hurt")

    assert "cramping" in reply.text.lower()
    assert_fits_sms(reply.messages)


def test_an_answer_fits_one_text_and_more_brings_the_longer_one(twilio, phone_number) -> None:
    twilio.text(phone_number, "hi")  # the disclaimer comes with the first reply
    answer = twilio.text(phone_number, "does an hsg hurt")
    assert len(answer.messages) == 1
    assert answer.messages[0].endswith("Reply MORE for details.")

    detail = twilio.text(phone_number, "MORE")
    assert "Pap smear" in detail.text
    assert_fits_sms(detail.messages)


def test_unsigned_and_wrongly_signed_posts_are_refused_without_a_trace(
    assistant, twilio, phone_number, tracker_event_count
) -> None:
    params = twilio.params(phone_number, "STOP")
    tampered = {**params, "Body": "does an hsg hurt"}
    attempts = {
        "unsigned": twilio.post(params, signature=None),
        "empty signature": twilio.post(params, signature=""),
        "garbage signature": twilio.post(params, signature="bm90IGEgc2lnbmF0dXJl"),
        "another body": twilio.post(
            tampered, signature=twilio.validator.compute_signature(twilio.url, params)
        ),
        "another account": twilio.post(
            params,
            signature=type(twilio.validator)("another-token").compute_signature(twilio.url, params),
        ),
    }

    assert {name: reply.status for name, reply in attempts.items()} == dict.fromkeys(attempts, 403)
    assert tracker_event_count(sms_conversation_id(phone_number)) == 0
    assert not is_sms_opted_out(phone_number, url=assistant.database_url)


def test_behind_a_proxy_the_public_address_is_what_is_signed(twilio, phone_number) -> None:
    public_url = "https://clinic.example.org/webhooks/twilio/webhook"
    params = twilio.params(phone_number, "does an hsg hurt")
    proxy_headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "clinic.example.org"}

    signed_publicly = twilio.post(
        params,
        signature=twilio.validator.compute_signature(public_url, params),
        headers=proxy_headers,
    )
    signed_internally = twilio.post(params, headers=proxy_headers)

    assert signed_publicly.status == 200
    assert "cramping" in signed_publicly.text.lower()
    assert signed_internally.status == 403


def test_a_picture_without_text_gets_a_polite_answer(
    twilio, phone_number, tracker_event_count
) -> None:
    reply = twilio.text(
        phone_number,
        "",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME0",
        MediaContentType0="image/jpeg",
    )

    assert "only read text" in reply.text
    assert load_clinic_settings().phone in reply.text
    assert_fits_sms(reply.messages)
    assert tracker_event_count(sms_conversation_id(phone_number)) == 0


def test_help_names_the_clinic_its_phone_and_what_the_assistant_does(twilio, phone_number) -> None:
    clinic = load_clinic_settings()

    reply = twilio.text(phone_number, "help")

    assert clinic.name in reply.text
    assert clinic.phone in reply.text
    assert "HSG" in reply.text
    assert "STOP" in reply.text
    assert_fits_sms(reply.messages)


def test_after_stop_nothing_is_sent_until_start(
    assistant, twilio, phone_number, tracker_event_count
) -> None:
    stop = twilio.text(phone_number, "Stop")
    assert stop.messages == []
    assert is_sms_opted_out(phone_number, url=assistant.database_url)

    ignored = twilio.text(phone_number, "does an hsg hurt")
    assert ignored.messages == []
    assert tracker_event_count(sms_conversation_id(phone_number)) == 0

    start = twilio.text(phone_number, "START")
    assert "HELP" in start.text
    assert not is_sms_opted_out(phone_number, url=assistant.database_url)

    answered = twilio.text(phone_number, "does an hsg hurt")
    assert "cramping" in answered.text.lower()


def test_yes_resubscribes_only_an_opted_out_number(assistant, twilio, phone_number) -> None:
    twilio.text(phone_number, "UNSUBSCRIBE")

    twilio.text(phone_number, "yes")

    assert not is_sms_opted_out(phone_number, url=assistant.database_url)


def test_cancel_reaches_the_assistant_unless_twilio_reports_an_opt_out(
    assistant, twilio, phone_number, tracker_event_count
) -> None:
    twilio.text(phone_number, "cancel")
    assert not is_sms_opted_out(phone_number, url=assistant.database_url)
    assert tracker_event_count(sms_conversation_id(phone_number)) > 0

    # With Twilio's Advanced Opt-Out set to treat CANCEL as STOP, Twilio says so.
    reply = twilio.text(phone_number, "cancel", OptOutType="STOP")
    assert reply.messages == []
    assert is_sms_opted_out(phone_number, url=assistant.database_url)


def test_buttons_are_numbered_and_a_number_picks_one(twilio, phone_number) -> None:
    greeting = twilio.text(phone_number, "hi")
    choices = dict(re.findall(r"^(\d+)\. (.+)$", greeting.text, flags=re.MULTILINE))
    assert choices["2"] == "Does it hurt?"
    assert_fits_sms(greeting.messages)

    answer = twilio.text(phone_number, "2")

    assert "cramping" in answer.text.lower()


def test_a_whole_appointment_request_by_sms(assistant, twilio, phone_number) -> None:
    """Walks the form in domain/appointment.yml, answering buttons by number."""

    def step(body: str, expected: str) -> str:
        reply = twilio.text(phone_number, body)
        assert expected.lower() in reply.text.lower(), f"after {body!r}: {reply.text}"
        assert_fits_sms(reply.messages)
        return reply.text

    step("I'd like to book an appointment for an HSG", "Shall we go ahead?")
    step("1", "full name")
    step("Ana Ruiz", "date of birth")
    offer = step("03/04/1990", "the number you're texting from")
    assert phone_number[-4:] in offer
    step("1", "email")
    step("1", "last period")
    step("1", "days and times")
    step("weekday mornings", "could you be pregnant")
    step("1", "contrast dye")
    step("1", "pelvic infection")
    step("1", "doctor")
    step("1", "contact you")
    summary = step("1", "Is everything right?")
    assert "Ana Ruiz" in summary
    saved = step("1", "your request is saved")

    reference = re.search(r"HSG-[0-9A-Z]{6}", saved).group(0)
    stored = get_appointment_request(reference, url=assistant.database_url)
    assert stored is not None
    assert stored.channel == "sms"
    assert stored.phone_e164 == phone_number
    assert stored.conversation_id == sms_conversation_id(phone_number)
    assert stored.full_name == "Ana Ruiz"
    assert stored.contact_method == "text"
