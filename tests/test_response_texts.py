"""Every response text: plain enough to read (grade 8), SMS answers in one text, clinic details from settings.

How the grade is measured is in scripts/response_texts.py (textstat 0.7.3, Flesch-Kincaid).
"""

from __future__ import annotations

import re

import pytest

from channels.sms_text import MAX_SMS_CHARACTERS, render_reply
from clinic.settings import SETTINGS, ClinicSettingsError, load_clinic_settings
from scripts.response_texts import (
    LONGEST_VALUES,
    MAX_READING_GRADE,
    filled,
    longest_clinic,
    readable_text,
    reading_grade,
    variations,
)

VARIATIONS = list(variations())
SMS_VARIATIONS = [variation for variation in VARIATIONS if variation.channel == "twilio"]
# The summary lists the patient's eleven answers: it is split at line ends, its choices kept
# together in the last text (channels/sms_text.py). Every other SMS text must fit in one.
MANY_TEXTS_BY_NATURE = {"utter_appointment_request_summary"}
# What only clinic settings may say: the default phone and name, prices, clock times.
WRITTEN_IN_DETAILS = re.compile(
    r"800-220-2220|Neighborhood Radiology|\$\s?\d|\b\d{1,2}(:\d\d)?\s?(am|pm)\b", re.IGNORECASE
)


def test_every_response_text_is_measured() -> None:
    assert len(VARIATIONS) > 100
    assert {variation.channel for variation in VARIATIONS} >= {"default", "twilio", "socketio"}


@pytest.mark.parametrize("variation", VARIATIONS, ids=lambda variation: variation.label)
def test_every_response_reads_at_grade_8_or_below(variation) -> None:
    grade = reading_grade(variation.text)
    assert grade <= MAX_READING_GRADE, f"grade {grade}: {readable_text(variation.text)}"


def test_the_measure_reads_lines_as_sentences_and_links_as_their_label() -> None:
    text = "Call [{clinic_phone}](tel:{clinic_phone})\nWe can help"
    assert readable_text(text) == "Call 800-220-2220. We can help."


@pytest.mark.parametrize(
    "variation",
    [v for v in SMS_VARIATIONS if v.response not in MANY_TEXTS_BY_NATURE],
    ids=lambda variation: variation.label,
)
def test_every_sms_answer_fits_one_text_with_the_longest_clinic_details(variation) -> None:
    message = {
        "text": filled(variation.text, longest_clinic(), LONGEST_VALUES),
        "buttons": list(variation.buttons),
    }
    sms = render_reply(message)
    assert len(sms) <= MAX_SMS_CHARACTERS, f"{len(sms)} characters: {sms}"


def test_the_longest_clinic_details_are_as_long_as_the_settings_allow() -> None:
    clinic = longest_clinic()
    for field, (_variable, _default, limit) in SETTINGS.items():
        assert len(getattr(clinic, field)) == limit, field


def test_a_clinic_detail_longer_than_the_answers_have_room_for_is_refused() -> None:
    with pytest.raises(ClinicSettingsError, match="CLINIC_ADDRESS"):
        load_clinic_settings(environ={"CLINIC_ADDRESS": "x" * 91})


def test_an_unset_detail_points_to_the_phone() -> None:
    clinic = load_clinic_settings(environ={"CLINIC_PHONE": "555-010-0000"})
    for sentence in (clinic.hours_sentence, clinic.address_sentence, clinic.callback_sentence):
        assert "555-010-0000" in sentence


def test_a_set_detail_is_said_as_given() -> None:
    clinic = load_clinic_settings(
        environ={
            "CLINIC_HOURS": "weekdays 8am to 5pm",
            "CLINIC_ADDRESS": "1 Main St",
            "CLINIC_CALLBACK_PROMISE": "within one business day",
        }
    )
    assert clinic.hours_sentence == "Our opening hours are weekdays 8am to 5pm."
    assert clinic.address_sentence == "We are at 1 Main St."
    assert clinic.callback_sentence.startswith("Our team will contact you within one business day")


@pytest.mark.parametrize("variation", VARIATIONS, ids=lambda variation: variation.label)
def test_no_response_writes_a_clinic_detail_itself(variation) -> None:
    assert not WRITTEN_IN_DETAILS.search(variation.text), variation.text
