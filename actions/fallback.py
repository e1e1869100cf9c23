"""Low-confidence and unusable messages: offer the likely topics, else ask to rephrase, then the phone.

When the classifier is unsure but has likely topics (actions/topic_choice.py), the patient gets
them as buttons, one tap from the right answer, instead of "please rephrase"; a warning_signs
guess is answered at once, never offered behind a button. Every reply here ends with the same safety-net line (domain/base.yml): a patient the assistant
could not understand may be trying to report a warning sign, so each one gets the clinic phone
and 911 whatever else went wrong.

Each message not understood is kept for the insights page (handoff/recording.py), and a second
one in a row puts the conversation in the staff inbox.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions.topic_choice import WARNING_SIGNS, likely_topics, topic_button
from appointments import unanswered
from appointments.handoffs import NOT_UNDERSTOOD_TWICE, WARNING_SIGN
from handoff.recording import record_need, record_unanswered_message

FALLBACK_INTENT = "nlu_fallback"
GUARD_REASON_KEY = "guard_reason"  # set by nlu_components.message_guard

RESPONSE_FOR_GUARD_REASON = {
    "empty": "utter_empty_message",
    "too_long": "utter_message_too_long",
}
REPHRASE_RESPONSE = "utter_ask_rephrase"
PHONE_LINE_RESPONSE = "utter_offer_phone_line"
CHOICES_RESPONSE = "utter_ask_which_topic"
WARNING_SIGNS_RESPONSE = "utter_warning_signs"
# Every response this action can send that ends with the safety net; the warning-signs answer,
# sent for a warning_signs guess, says what to do now in its own words.
FALLBACK_RESPONSES = (
    REPHRASE_RESPONSE,
    CHOICES_RESPONSE,
    PHONE_LINE_RESPONSE,
    *RESPONSE_FOR_GUARD_REASON.values(),
)


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the latest user messages in a row were not understood."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = (event.get("parse_data") or {}).get("intent") or {}
        if intent.get("name") != FALLBACK_INTENT:
            break
        count += 1
    return count


def offer_likely_topics(dispatcher: CollectingDispatcher, topics: list[str]) -> str | None:
    """The likely topics as buttons; a warning_signs guess answered first; none: please rephrase.

    Returns what was sent, as an insights kind (None: only the warning-signs answer).
    """
    if WARNING_SIGNS in topics:
        dispatcher.utter_message(response=WARNING_SIGNS_RESPONSE)
    choices = [topic for topic in topics if topic != WARNING_SIGNS]
    if choices:
        dispatcher.utter_message(
            response=CHOICES_RESPONSE, buttons=[topic_button(topic) for topic in choices]
        )
        return unanswered.FALLBACK
    if WARNING_SIGNS not in topics:
        dispatcher.utter_message(response=REPHRASE_RESPONSE)
        return unanswered.REPHRASE
    return None


class ActionHandleFallback(Action):
    def name(self) -> Text:
        return "action_handle_fallback"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        reason = tracker.latest_message.get(GUARD_REASON_KEY)
        text = tracker.latest_message.get("text") or ""
        if reason in RESPONSE_FOR_GUARD_REASON:
            dispatcher.utter_message(response=RESPONSE_FOR_GUARD_REASON[reason])
        elif consecutive_fallbacks(tracker) >= 2:
            dispatcher.utter_message(response=PHONE_LINE_RESPONSE)
            record_need(
                tracker.sender_id,
                NOT_UNDERSTOOD_TWICE,
                unanswered_kind=unanswered.PHONE_LINE,
                text=text,
            )
        else:
            topics = likely_topics(tracker.latest_message)
            kind = offer_likely_topics(dispatcher, topics)
            if WARNING_SIGNS in topics:
                record_need(tracker.sender_id, WARNING_SIGN)
            if kind:
                record_unanswered_message(tracker.sender_id, kind, text)
        # As Rasa's own fallback does: forget the message, so the dialogue (and an active
        # form) carries on from where it was, and the policies' next step is to listen.
        return [UserUtteranceReverted()]
