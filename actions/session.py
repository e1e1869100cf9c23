"""Starts each conversation: clinic details into slots and the one-line medical disclaimer.

A conversation a member of staff holds (paused through Rasa's HTTP API, handoff/) stays paused
across a new session: Rasa's SessionStarted clears the pause, and this action runs before Rasa
checks it, so without the pause re-emitted here the assistant would answer a patient who wrote
again after the session expired, in the middle of her talk with a person.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    ConversationPaused,
    EventType,
    SessionStarted,
    SlotSet,
)
from rasa_sdk.executor import CollectingDispatcher

from clinic.settings import load_clinic_settings


def clinic_slot_events() -> List[EventType]:
    """Slot events that let responses say the clinic's details without copying them."""
    return [SlotSet(name, value) for name, value in load_clinic_settings().slot_values().items()]


class ActionSessionStart(Action):
    def name(self) -> Text:
        return "action_session_start"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        if tracker.is_paused():
            # Held by a person: nothing is sent, and the new session is paused as well.
            return [
                SessionStarted(),
                *clinic_slot_events(),
                ConversationPaused(),
                ActionExecuted("action_listen"),
            ]
        # The slots below are not set yet when this message is rendered, so the clinic's
        # name is passed in directly.
        dispatcher.utter_message(
            response="utter_disclaimer", clinic_name=load_clinic_settings().name
        )
        return [
            SessionStarted(),
            *clinic_slot_events(),
            ActionExecuted("action_listen"),
        ]
