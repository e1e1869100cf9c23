"""The longer answer for "tell me more": utter_<topic>_detail for the topic just answered."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

NO_TOPIC_RESPONSE = "utter_more_detail_which_topic"


def detail_response(intent: Text) -> Text:
    return f"utter_{intent}_detail"


def latest_detail_response(tracker: Tracker, domain: Dict[Text, Any]) -> Optional[Text]:
    """The detail response of the latest topic asked and answered in this session, if any.

    A topic counts only if its short answer (utter_<topic>) followed the message: in the
    appointment form "not sure" may be classified as pregnancy_concern yet be taken as an
    answer, and "tell me more" after it is not about pregnancy.
    """
    responses = domain.get("responses") or {}
    replies: set[Text] = set()  # actions run in reply to the user message looked at next
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "session_started":
            # A topic from an earlier visit is not the "that" in "tell me more about that".
            break
        if kind == "action":
            replies.add(event.get("name") or "")
        elif kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent and detail_response(intent) in responses and f"utter_{intent}" in replies:
                return detail_response(intent)
            replies = set()
    return None


class ActionGiveMoreDetail(Action):
    def name(self) -> Text:
        return "action_give_more_detail"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        dispatcher.utter_message(
            response=latest_detail_response(tracker, domain) or NO_TOPIC_RESPONSE
        )
        return []
