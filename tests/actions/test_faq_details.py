"""The "tell me more" answers, and the action that picks one, on the real domain and trackers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted as RasaActionExecuted
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, BotUttered, SessionStarted, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.faq_details import NO_TOPIC_RESPONSE, ActionGiveMoreDetail
from channels.sms_text import sms_messages
from nlu_contract import faq_topics
from scripts.response_texts import filled, longest_clinic
from tests.actions.trackers import make_tracker, user_event

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPICS = faq_topics()
# The domain as Rasa sends it to the action server (RemoteAction: domain.as_dict()).
DOMAIN_OBJECT = Domain.load(str(REPO_ROOT / "domain"))
DOMAIN: DomainDict = DOMAIN_OBJECT.as_dict()
RESPONSES = DOMAIN_OBJECT.responses
CLINIC_PLACEHOLDERS = {
    "clinic_name",
    "clinic_phone",
    "clinic_hours_sentence",
    "clinic_address_sentence",
}
SMS_INVITATION = "Reply MORE for details."


def sent_responses(tracker: Tracker, domain: DomainDict = DOMAIN) -> list[str]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionGiveMoreDetail().run(dispatcher, tracker, domain))
    assert events == []
    return [message["response"] for message in dispatcher.messages]


def answered(text: str, topic: str) -> list[dict]:
    """A patient message on ``topic`` and the short answer to it, as the tracker records them."""
    return [user_event(text, topic), ActionExecuted(f"utter_{topic}"), BotUttered("...")]


MORE = user_event("tell me more", "ask_more_detail")


# --- the responses -------------------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS)
def test_every_faq_topic_has_a_longer_answer(topic: str) -> None:
    assert f"utter_{topic}_detail" in RESPONSES


def as_sms(text: str) -> list[str]:
    """``text`` as the SMS channel sends it, with the longest clinic details a clinic may set."""
    return sms_messages([{"text": filled(text, longest_clinic())}])


@pytest.mark.parametrize("topic", TOPICS)
def test_every_short_answer_offers_the_longer_one_on_each_channel(topic: str) -> None:
    default, *channels = RESPONSES[f"utter_{topic}"]
    sms = [variation for variation in channels if variation.get("channel") == "twilio"]

    assert "channel" not in default
    assert default["buttons"] == [{"title": "Tell me more", "payload": "/ask_more_detail"}]
    # SMS has no button to tap: the answer in one text, ending with the word to text back.
    assert len(sms) == 1 and not sms[0].get("buttons")
    assert sms[0]["text"].endswith(f"\n{SMS_INVITATION}\n")
    assert len(as_sms(sms[0]["text"])) == 1
    # Cut down only where the web answer and the invitation would not fit in one text.
    web_answer_with_invitation = f"{default['text']}{SMS_INVITATION}\n"
    if len(as_sms(web_answer_with_invitation)) == 1:
        assert sms[0]["text"] == web_answer_with_invitation


def test_the_warning_signs_answers_lead_with_the_urgent_text_and_the_detail_keeps_it() -> None:
    short = RESPONSES["utter_warning_signs"]
    assert all(variation["text"].startswith("Fever, foul-smelling") for variation in short)
    for variation in RESPONSES["utter_warning_signs_detail"]:
        text = variation["text"]
        assert text.startswith("Please contact your doctor now")
        assert "{clinic_phone}" in text
        assert "call 911" in text


@pytest.mark.parametrize("topic", TOPICS)
def test_longer_answers_use_only_the_clinic_placeholders(topic: str) -> None:
    for variation in RESPONSES[f"utter_{topic}_detail"]:
        placeholders = set(re.findall(r"\{(\w+)\}", variation["text"]))
        assert placeholders <= CLINIC_PLACEHOLDERS, placeholders
        assert "$" not in variation["text"], "no prices: the clinic gives them by phone"


# --- the action ----------------------------------------------------------------------------


def test_more_after_an_answer_sends_that_topic_s_longer_answer() -> None:
    tracker = make_tracker([*answered("does it hurt", "pain"), MORE])
    assert sent_responses(tracker) == ["utter_pain_detail"]


@pytest.mark.parametrize("topic", TOPICS)
def test_the_topic_s_own_longer_answer_for_every_topic(topic: str) -> None:
    tracker = make_tracker([*answered(f"/{topic}", topic), MORE])
    assert sent_responses(tracker) == [f"utter_{topic}_detail"]


def test_more_with_no_topic_answered_yet_asks_which_topic() -> None:
    tracker = make_tracker(
        [user_event("hi", "greet"), ActionExecuted("utter_greet"), BotUttered("..."), MORE]
    )
    assert sent_responses(tracker) == [NO_TOPIC_RESPONSE]
    assert NO_TOPIC_RESPONSE in RESPONSES


def test_the_latest_topic_wins_and_more_again_repeats_it() -> None:
    events = [*answered("does it hurt", "pain"), *answered("is it safe", "risks"), MORE]
    assert sent_responses(make_tracker(events)) == ["utter_risks_detail"]

    events += [ActionExecuted("action_give_more_detail"), BotUttered("..."), MORE]
    assert sent_responses(make_tracker(events)) == ["utter_risks_detail"]


def test_later_messages_without_a_topic_do_not_hide_it() -> None:
    events = [
        *answered("how long does it take", "procedure_duration"),
        user_event("thanks", "thanks"),
        ActionExecuted("utter_thanks"),
        user_event("asdf", "nlu_fallback", 0.2),
        ActionExecuted("action_handle_fallback"),
        UserUtteranceReverted(),
        MORE,
    ]
    assert sent_responses(make_tracker(events)) == ["utter_procedure_duration_detail"]


def test_a_topic_from_an_earlier_session_is_not_the_one_meant() -> None:
    events = [*answered("does it hurt", "pain"), SessionStarted(), MORE]
    assert sent_responses(make_tracker(events)) == [NO_TOPIC_RESPONSE]


def test_a_form_answer_classified_as_a_topic_is_not_a_topic_answered() -> None:
    # "not sure" answers the pregnancy question of the form; nothing about pregnancy was said.
    events = [
        *answered("does it hurt", "pain"),
        user_event("not sure", "pregnancy_concern", 0.7),
        ActionExecuted("appointment_request_form"),
        MORE,
    ]
    assert sent_responses(make_tracker(events)) == ["utter_pain_detail"]


def test_topics_come_from_the_domain_not_a_list_in_the_action() -> None:
    domain: DomainDict = {
        "responses": {
            "utter_parking_detail": [{"text": "Park at the back."}],
            NO_TOPIC_RESPONSE: [{"text": "Which topic?"}],
        }
    }
    tracker = make_tracker([*answered("where do i park", "parking"), MORE])
    assert sent_responses(tracker, domain) == ["utter_parking_detail"]
    # A topic without a longer answer in the domain is skipped.
    assert sent_responses(make_tracker([*answered("hurt?", "pain"), MORE]), domain) == [
        NO_TOPIC_RESPONSE
    ]


def test_on_the_tracker_rasa_sends_to_the_action_server() -> None:
    rasa_tracker = DialogueStateTracker.from_events(
        "patient-1",
        [
            RasaActionExecuted("action_listen"),
            UserUttered("my tubes were tied, can it check that", {"name": "tubal_ligation_check"}),
            RasaActionExecuted("utter_tubal_ligation_check"),
            RasaActionExecuted("action_listen"),
            UserUttered("MORE", {"name": "ask_more_detail"}),
        ],
    )
    tracker = Tracker.from_dict(rasa_tracker.current_state(EventVerbosity.ALL))
    assert sent_responses(tracker) == ["utter_tubal_ligation_check_detail"]
