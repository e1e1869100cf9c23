"""Session start, FAQ answers and the fallback, run as the action server runs them."""

from __future__ import annotations

import asyncio

from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionHandleFallback, consecutive_fallbacks
from actions.session import ActionSessionStart
from tests.actions.trackers import make_tracker, user_event

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
