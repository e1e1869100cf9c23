"""Asking instead of guessing: the likely topics as buttons, the "Also:" reply, and near-domain answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import textstat
from rasa.shared.core.domain import Domain
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionHandleFallback
from actions.runner_up import ActionOfferRunnerUp
from actions.topic_choice import (
    TOPIC_TITLES,
    likely_topics,
    plausible_runner_up,
)
from channels.sms_text import MAX_SMS_CHARACTERS, sms_messages
from nlu_contract import PART_OF_TOPIC, faq_topics
from tests.actions.trackers import make_tracker, user_event

RESPONSES = Domain.load(str(Path(__file__).resolve().parents[2] / "domain")).responses
# The longest clinic details an SMS must still fit with.
LONGEST_CLINIC = {
    "clinic_name": "Neighborhood Radiology Services of the Greater Metropolitan Area",
    "clinic_phone": "+1 (800) 220-2220 ext. 12345",
    "clinic_hours_sentence": "",
    "clinic_address_sentence": "",
}
NEAR_DOMAIN_RESPONSES = ("utter_hsg_alternatives", "utter_out_of_scope", "utter_ask_which_topic")


def ranked(*pairs: tuple[str, float], answered: str | None = None, **extra) -> dict:
    """Parse data as Rasa leaves it: the intent, then the ranking (fallback entry first if unsure)."""
    ranking = [{"name": name, "confidence": confidence} for name, confidence in pairs]
    name = answered or ranking[0]["name"]
    return {
        "text": "x",
        "intent": {"name": name, "confidence": ranking[0]["confidence"]},
        "intent_ranking": ranking,
        "entities": [],
        **extra,
    }


def run(action, parse: dict, earlier: list[dict] | None = None) -> list[dict]:
    event = {"event": "user", "text": "x", "parse_data": parse, "input_channel": "rest"}
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, make_tracker([*(earlier or []), event]), {}))
    return dispatcher.messages


def test_every_answerable_topic_has_one_short_title() -> None:
    for topic in [*faq_topics(), *PART_OF_TOPIC, "book_appointment", "human_handoff"]:
        assert 0 < len(TOPIC_TITLES[topic]) <= 30, topic


def test_the_greeting_menu_uses_the_same_titles() -> None:
    for variation in RESPONSES["utter_greet"]:
        for button in variation["buttons"]:
            assert TOPIC_TITLES[button["payload"].lstrip("/")] == button["title"]


def test_likely_topics_skip_the_fallback_and_out_of_scope_and_stop_at_three() -> None:
    parse = ranked(
        ("nlu_fallback", 0.4),
        ("pain", 0.3),
        ("out_of_scope", 0.25),
        ("aftercare_symptoms", 0.2),
        ("procedure_steps", 0.15),
        ("risks", 0.12),
        ("results", 0.05),
    )
    assert likely_topics(parse) == ["pain", "aftercare_symptoms", "procedure_steps"]


def test_a_runner_up_is_offered_only_when_plausible_and_not_after_the_guard_or_a_tap() -> None:
    assert plausible_runner_up(ranked(("pain", 0.6), ("risks", 0.3))) == "risks"
    assert plausible_runner_up(ranked(("pain", 0.9), ("risks", 0.05))) is None
    assert plausible_runner_up(ranked(("pain", 1.0))) is None
    guarded = ranked(("warning_signs", 1.0), ("pain", 0.5), guard_reason="warning_sign")
    assert plausible_runner_up(guarded) is None
    assert plausible_runner_up(ranked(("pain", 0.6), ("out_of_scope", 0.3))) is None


def test_unsure_fallback_offers_the_likely_topics_as_buttons_in_order() -> None:
    parse = ranked(
        ("nlu_fallback", 0.4),
        ("aftercare_symptoms", 0.35),
        ("procedure_steps", 0.3),
        ("pain", 0.1),
        answered="nlu_fallback",
    )
    messages = run(ActionHandleFallback(), parse)
    assert [m["response"] for m in messages] == ["utter_ask_which_topic"]
    assert messages[0]["buttons"] == [
        {"title": "What's normal afterwards?", "payload": "/aftercare_symptoms"},
        {"title": "What happens during it?", "payload": "/procedure_steps"},
        {"title": "Does it hurt?", "payload": "/pain"},
    ]


def test_a_warning_signs_guess_is_answered_never_hidden_behind_a_button() -> None:
    parse = ranked(
        ("nlu_fallback", 0.4),
        ("aftercare_symptoms", 0.3),
        ("warning_signs", 0.28),
        answered="nlu_fallback",
    )
    messages = run(ActionHandleFallback(), parse)
    assert [m["response"] for m in messages] == ["utter_warning_signs", "utter_ask_which_topic"]
    assert [b["payload"] for b in messages[1]["buttons"]] == ["/aftercare_symptoms"]


def test_no_likely_topic_asks_to_rephrase_and_a_second_miss_offers_the_phone() -> None:
    parse = ranked(("nlu_fallback", 0.4), ("pain", 0.05), answered="nlu_fallback")
    assert [m["response"] for m in run(ActionHandleFallback(), parse)] == ["utter_ask_rephrase"]
    earlier = [user_event("zzz", "nlu_fallback", 0.1)]
    messages = run(ActionHandleFallback(), ranked(("nlu_fallback", 0.4), ("pain", 0.3)), earlier)
    assert [m["response"] for m in messages] == ["utter_offer_phone_line"]


def test_an_answer_with_a_plausible_runner_up_carries_an_also_reply() -> None:
    messages = run(
        ActionOfferRunnerUp(), ranked(("procedure_steps", 0.55), ("aftercare_symptoms", 0.3))
    )
    assert [m["response"] for m in messages] == ["utter_also_ask"]
    assert messages[0]["buttons"] == [
        {"title": "Also: What's normal afterwards?", "payload": "/aftercare_symptoms"}
    ]
    assert run(ActionOfferRunnerUp(), ranked(("pain", 0.95), ("risks", 0.02))) == []


def test_a_warning_signs_runner_up_is_answered_not_offered() -> None:
    messages = run(
        ActionOfferRunnerUp(), ranked(("aftercare_symptoms", 0.6), ("warning_signs", 0.3))
    )
    assert [m["response"] for m in messages] == ["utter_warning_signs"]
    assert "buttons" not in messages[0] or not messages[0]["buttons"]


def test_on_sms_the_choices_are_numbered_in_one_text() -> None:
    text = RESPONSES["utter_ask_which_topic"][-1]["text"].format(**LONGEST_CLINIC)
    buttons = [{"title": TOPIC_TITLES[t], "payload": f"/{t}"} for t in ("pain", "risks", "results")]
    parts = sms_messages([{"text": text, "buttons": buttons}])
    assert parts[-1].startswith("1. Does it hurt?\n2. Is it safe? The risks\n3. Getting my results")


@pytest.mark.parametrize("response", NEAR_DOMAIN_RESPONSES)
def test_near_domain_answers_read_at_grade_8_and_fit_one_sms(response: str) -> None:
    for variation in RESPONSES[response]:
        text = variation["text"].format(**LONGEST_CLINIC)
        assert textstat.flesch_kincaid_grade(text) <= 8.0, (response, variation.get("channel"))
        if variation.get("channel") == "twilio":
            assert len(text) <= MAX_SMS_CHARACTERS, len(text)


def test_the_out_of_scope_answer_says_only_the_hsg_and_gives_the_phone() -> None:
    for variation in RESPONSES["utter_out_of_scope"]:
        assert "only help with the HSG" in variation["text"]
        assert "{clinic_phone}" in variation["text"] and "911" in variation["text"]
