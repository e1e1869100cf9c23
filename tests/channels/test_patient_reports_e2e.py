"""The kinds of message the issue names, tried as a new patient would, on the running servers.

Each reported warning sign gets the escalation answer (doctor now, the clinic phone, 911) over the
web channel's REST twin and over SMS, on its own and in the middle of the appointment form; each
question about another procedure or other fertility care gets the out-of-scope answer.
"""

from __future__ import annotations

import uuid

import pytest

from clinic.settings import load_clinic_settings

# The report kinds listed in the "Why" (its own examples, not evaluation data).
REPORTS = [
    "I think I'm having a reaction to the dye",
    "I'm itchy now",
    "pain is 9 out of 10",
    "the pain won't go away",
    "I can't stand up straight from the pain",
    "I think I'm pregnant and bleeding",
    "my discharge smells weird",
    "I fainted after the test",
    "i passed out",
    "passing big clots",
    "temp of 101",
    "38.5 tonight",
    "cramps getting worse",
    "bleeding is heavy",
]

# The near-domain kinds listed in the "Why".
OTHER_CARE = [
    "bleeding after my hysteroscopy is that normal",
    "spotting after a miscarriage",
    "how long does IVF take",
    "can I have a smear test during my period",
    "is the nasal spray for ivf safe",
    "which ivf clinic is best",
]


def is_escalation(text: str) -> bool:
    lowered = text.lower()
    return (
        "contact your doctor now" in lowered
        and load_clinic_settings().phone in text
        and "911" in text
    )


def rest_say(assistant, sender: str, text: str) -> str:
    return assistant.reply_text(text, sender)


@pytest.mark.parametrize("report", REPORTS)
def test_a_reported_warning_sign_escalates_on_the_web_and_by_sms(
    assistant, twilio, report: str
) -> None:
    web = rest_say(assistant, f"report-{uuid.uuid4().hex[:8]}", report)
    number = f"+1201555{uuid.uuid4().int % 10000:04d}"
    sms = twilio.text(number, report).text

    assert is_escalation(web), web
    assert is_escalation(sms), sms


@pytest.mark.parametrize("report", REPORTS[::3])
def test_a_reported_warning_sign_escalates_in_the_middle_of_the_form(
    assistant, report: str
) -> None:
    sender = f"form-{uuid.uuid4().hex[:8]}"
    rest_say(assistant, sender, "/book_appointment")
    assert "full name" in rest_say(assistant, sender, "/affirm").lower()

    reply = rest_say(assistant, sender, report)

    assert is_escalation(reply), reply


@pytest.mark.parametrize("question", OTHER_CARE)
def test_other_care_gets_the_kind_out_of_scope_answer(assistant, question: str) -> None:
    reply = rest_say(assistant, f"near-{uuid.uuid4().hex[:8]}", question)

    assert "I can only help with the HSG" in reply, reply
    assert load_clinic_settings().phone in reply
