"""Session start, FAQ answers and the fallback, run as the action server runs them; the safety answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import FALLBACK_RESPONSES, ActionHandleFallback, consecutive_fallbacks
from actions.session import ActionSessionStart
from channels.sms_text import sms_messages
from scripts.response_texts import MAX_READING_GRADE, filled, longest_clinic, reading_grade
from tests.actions.trackers import make_tracker, user_event

RESPONSES = Domain.load(str(Path(__file__).resolve().parents[2] / "domain")).responses
SAFETY_NET = (
    "If you feel unwell after an HSG (fever, heavy bleeding, bad pain), call {clinic_phone}, "
    "or 911 in an emergency."
)
# On the web the number is a tap-to-call link, as everywhere else there.
SAFETY_NET_WEB = SAFETY_NET.replace("{clinic_phone}", "[{clinic_phone}](tel:{clinic_phone})")
SMS_INVITATION = "Reply MORE for details."

DOMAIN = {"responses": {"utter_pain": [{"text": "cramping"}], "utter_ask_rephrase": []}}


def run(action, tracker, domain=DOMAIN):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, domain))
    return dispatcher.messages, events


def test_session_start_sets_clinic_details_from_settings(monkeypatch) -> None:
    monkeypatch.setenv("CLINIC_PHONE", "555-0100")
    monkeypatch.delenv("CLINIC_HOURS", raising=False)
    messages, events = run(ActionSessionStart(), make_tracker())
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert events[0]["event"] == "session_started"
    assert events[-1]["name"] == "action_listen"
    assert slots["clinic_phone"] == "555-0100"
    assert "555-0100" in slots["clinic_hours_sentence"]
    assert messages[0]["response"] == "utter_disclaimer"
    assert messages[0]["clinic_name"] == "Neighborhood Radiology Services"


def test_known_hours_are_stated_instead_of_the_phone_hint(monkeypatch) -> None:
    monkeypatch.setenv("CLINIC_HOURS", "Monday to Friday, 8am to 5pm")
    _, events = run(ActionSessionStart(), make_tracker())
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["clinic_hours_sentence"] == "Our opening hours are Monday to Friday, 8am to 5pm."


def test_first_fallback_asks_to_rephrase_then_offers_the_phone_line() -> None:
    first = [user_event("blorp", "nlu_fallback", 0.1)]
    messages, _ = run(ActionHandleFallback(), make_tracker(first))
    assert [m["response"] for m in messages] == ["utter_ask_rephrase"]

    second = first + [{"event": "bot", "text": "rephrase?"}, user_event("zzz", "nlu_fallback", 0.1)]
    messages, _ = run(ActionHandleFallback(), make_tracker(second))
    assert [m["response"] for m in messages] == ["utter_offer_phone_line"]


def test_an_understood_message_resets_the_fallback_count() -> None:
    events = [
        user_event("blorp", "nlu_fallback", 0.1),
        user_event("does it hurt", "pain"),
        user_event("zzz", "nlu_fallback", 0.1),
    ]
    assert consecutive_fallbacks(make_tracker(events)) == 1


def test_empty_and_overlong_messages_get_their_own_explanation() -> None:
    for reason, response in [
        ("empty", "utter_empty_message"),
        ("too_long", "utter_message_too_long"),
    ]:
        tracker = make_tracker([user_event("", "nlu_fallback", 1.0, guard_reason=reason)])
        messages, _ = run(ActionHandleFallback(), tracker)
        assert [m["response"] for m in messages] == [response]


# --- the safety answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "variation", RESPONSES["utter_warning_signs"], ids=lambda v: v.get("channel", "default")
)
def test_the_warning_signs_answer_says_what_to_do_now_on_every_channel(variation: dict) -> None:
    text = variation["text"].lower()
    # Infection, bleeding, pain and allergic-reaction signs (clinic article; facts.md warning_signs).
    for sign in ("fever", "foul-smelling discharge", "heavy bleeding", "worse", "rash", "swelling"):
        assert sign in text, sign
    assert "trouble breathing" in text and "reaction to the dye" in text
    assert "contact your doctor now" in text and "{clinic_phone}" in text
    # When the clinic is closed (facts.md: the local emergency department), and 911.
    assert "if we're closed" in text or "if we are closed" in text
    assert "emergency room" in text
    assert "call 911 in an emergency" in text
    assert reading_grade(variation["text"]) <= MAX_READING_GRADE


def test_the_sms_warning_signs_answer_is_one_text_ending_with_the_invitation() -> None:
    (sms,) = [v for v in RESPONSES["utter_warning_signs"] if v.get("channel") == "twilio"]
    assert sms["text"].rstrip().endswith(SMS_INVITATION)
    # With the longest details a clinic may set (clinic/settings.py).
    assert len(sms_messages([{"text": filled(sms["text"], longest_clinic())}])) == 1


def test_ordinary_after_effects_keep_the_aftercare_answer_which_ends_with_when_to_call() -> None:
    for variation in RESPONSES["utter_aftercare_symptoms"]:
        lines = [line for line in variation["text"].splitlines() if line != SMS_INVITATION]
        assert "spotting" in lines[0] and "cramps" in lines[0]
        assert lines[-1].startswith("If you get a fever") and "call your doctor" in lines[-1]


@pytest.mark.parametrize("response", [*FALLBACK_RESPONSES, "utter_human_handoff"])
def test_fallback_and_hand_off_answers_end_with_the_safety_net(response: str) -> None:
    for variation in RESPONSES[response]:
        net = SAFETY_NET_WEB if variation.get("channel") == "socketio" else SAFETY_NET
        assert variation["text"].rstrip().endswith(f"\n{net}"), variation
        assert reading_grade(net) <= MAX_READING_GRADE


def test_every_response_the_fallback_action_sends_is_in_the_domain() -> None:
    for reason in ("empty", "too_long", None):
        events = [user_event("x", "nlu_fallback", 0.1, guard_reason=reason)]
        messages, _ = run(ActionHandleFallback(), make_tracker(events))
        assert {m["response"] for m in messages} <= set(FALLBACK_RESPONSES) & set(RESPONSES)
