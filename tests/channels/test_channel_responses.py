"""Channel-specific response variations: what SMS ("twilio") and the web widget ("socketio") get."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.core.nlg.response import ResponseVariationFilter, TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain

from channels.sms_text import HELP_KEYWORDS, OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, keyword_of

DOMAIN = Domain.load(str(Path(__file__).resolve().parents[2] / "domain"))
SMS, WEB = "twilio", "socketio"
CLINIC_SLOTS = {
    "clinic_name": "Test Clinic",
    "clinic_phone": "555-010-0000",
    "clinic_hours_sentence": "Open on weekdays.",
    "clinic_address_sentence": "We are at 1 Main St.",
}
# Whole-message words the SMS channel or Twilio act on: never ask a patient to text them.
# CANCEL counts too: Twilio opts a number out on it unless its Advanced Opt-Out says otherwise.
SMS_RESERVED_WORDS = OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS | {"CANCEL"}
QUOTED_WORD = re.compile(r"[\"“]([A-Za-z]+)[\"”]")

variations_added = any(
    variation.get("channel") == SMS
    for variations in DOMAIN.responses.values()
    for variation in variations
)
# The domain belongs to other engineers; until the variations from the channels hand-off are in
# domain/*.yml these fail as expected, and from then on they must pass.
pending_domain_lines = pytest.mark.xfail(
    not variations_added,
    reason="channel variations not yet added to domain/ (see the channels hand-off)",
    strict=True,
)


def variations_for(response: str, channel: str) -> List[Dict[str, Any]]:
    return ResponseVariationFilter(DOMAIN.responses).responses_for_utter_action(
        response, channel, CLINIC_SLOTS
    )


def rendered(response: str, channel: str) -> Dict[str, Any]:
    generator = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    return generator.generate_from_slots(response, CLINIC_SLOTS, channel)


@pending_domain_lines
def test_the_sms_greeting_asks_for_a_text_not_a_click() -> None:
    sms, web = rendered("utter_greet", SMS), rendered("utter_greet", WEB)

    assert "below" not in sms["text"]
    assert "below" in web["text"]
    # The same choices on both channels: SMS numbers them.
    assert [button["payload"] for button in sms["buttons"]] == [
        button["payload"] for button in web["buttons"]
    ]


@pending_domain_lines
def test_on_the_web_the_phone_number_is_a_link_and_on_sms_plain() -> None:
    web, sms = rendered("utter_human_handoff", WEB), rendered("utter_human_handoff", SMS)

    assert "[555-010-0000](tel:555-010-0000)" in web["text"]
    assert "](tel:" not in sms["text"]
    assert "555-010-0000" in sms["text"]


@pending_domain_lines
def test_the_sms_consent_is_shorter_and_keeps_its_buttons() -> None:
    sms, web = (
        rendered("utter_appointment_consent", SMS),
        rendered("utter_appointment_consent", WEB),
    )

    assert len(sms["text"]) < len(web["text"])
    assert sms["buttons"] == web["buttons"]


@pending_domain_lines
def test_no_sms_response_asks_the_patient_to_text_a_reserved_word() -> None:
    offending = {}
    for response in DOMAIN.responses:
        for variation in variations_for(response, SMS):
            text = variation.get("text") or ""
            quoted = {word.upper() for word in QUOTED_WORD.findall(text)}
            titles = {
                keyword_of(button.get("title", "")) for button in variation.get("buttons") or []
            }
            reserved = (quoted | titles) & SMS_RESERVED_WORDS
            if reserved:
                offending[response] = sorted(reserved)

    assert offending == {}
