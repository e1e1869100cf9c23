"""Answers an HSG question with the curated response named after the recognised topic."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher


class ActionAnswerQuestion(Action):
    """One action for every FAQ topic, so one rule serves them all, also inside a form."""

    def name(self) -> Text:
        return "action_answer_question"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        topic = (tracker.latest_message.get("intent") or {}).get("name")
        response = f"utter_{topic}"
        if response in domain.get("responses", {}):
            dispatcher.utter_message(response=response)
        else:
            dispatcher.utter_message(response="utter_ask_rephrase")
        return []
