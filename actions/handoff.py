"""A patient asking for a person, or reporting a warning sign: the answer, and the staff inbox.

"Talk to a person" during staffed hours (CLINIC_STAFFED_HOURS, clinic time zone) says a member of
the team will join; outside them, when someone will read the chat; with no staffed hours set, the
phone line as before. Each puts the conversation in the staff inbox (handoff/). A reported
warning sign gets the escalation answer first, then is recorded the same way.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from appointments.handoffs import ASKED_FOR_PERSON, WARNING_SIGN
from appointments.models import utc_now
from appointments.unanswered import HANDOFF
from clinic.settings import load_clinic_settings
from handoff.recording import record_need

PHONE_LINE_RESPONSE = "utter_human_handoff"
STAFFED_RESPONSE = "utter_handoff_requested"
AFTER_HOURS_RESPONSE = "utter_handoff_after_hours"
WARNING_SIGNS_RESPONSE = "utter_warning_signs"


def handoff_response(now=None) -> tuple[str, dict[str, str]]:
    """The answer to "talk to a person" at ``now``, and the values it needs."""
    clinic = load_clinic_settings()
    now = now or utc_now()
    if not clinic.staffed_periods:
        return PHONE_LINE_RESPONSE, {}
    if clinic.is_staffed(now):
        return STAFFED_RESPONSE, {}
    return AFTER_HOURS_RESPONSE, {"next_staffed": clinic.next_staffed_phrase(now) or "later"}


class ActionHumanHandoff(Action):
    def name(self) -> Text:
        return "action_human_handoff"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        record_need(
            tracker.sender_id,
            ASKED_FOR_PERSON,
            unanswered_kind=HANDOFF,
            text=tracker.latest_message.get("text") or "",
        )
        response, values = handoff_response()
        dispatcher.utter_message(response=response, **values)
        return []


class ActionWarningSigns(Action):
    """The escalation answer (utter_warning_signs), unchanged; the conversation joins the inbox."""

    def name(self) -> Text:
        return "action_warning_signs"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        dispatcher.utter_message(response=WARNING_SIGNS_RESPONSE)
        record_need(tracker.sender_id, WARNING_SIGN)
        return []
