"""After an answer, a quick reply to the runner-up topic when that one is also plausible.

The classifier's second guess is often the question the patient meant ("what will I feel after?"
read as the procedure steps): offering it as one "Also: ..." button puts the right answer one tap
away without taking the first one back. A runner-up of warning_signs is never a button: its
answer is sent at once (actions/topic_choice.py). Runs after every FAQ answer and after the
out-of-scope answer (data/rules/), outside the appointment form only; after the out-of-scope
answer it keeps the question for the insights page, and a warning-signs runner-up puts the
conversation in the staff inbox.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.topic_choice import ALSO_PREFIX, WARNING_SIGNS, plausible_runner_up, topic_button
from appointments import unanswered
from appointments.handoffs import WARNING_SIGN
from handoff.recording import record_need, record_unanswered_message

ALSO_RESPONSE = "utter_also_ask"
WARNING_SIGNS_RESPONSE = "utter_warning_signs"
OUT_OF_SCOPE_INTENT = "out_of_scope"


class ActionOfferRunnerUp(Action):
    def name(self) -> Text:
        return "action_offer_runner_up"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        latest = tracker.latest_message
        if (latest.get("intent") or {}).get("name") == OUT_OF_SCOPE_INTENT:
            record_unanswered_message(
                tracker.sender_id, unanswered.OUT_OF_SCOPE, latest.get("text") or ""
            )
        runner_up = plausible_runner_up(latest)
        if runner_up == WARNING_SIGNS:
            dispatcher.utter_message(response=WARNING_SIGNS_RESPONSE)
            record_need(tracker.sender_id, WARNING_SIGN)
        elif runner_up:
            dispatcher.utter_message(
                response=ALSO_RESPONSE, buttons=[topic_button(runner_up, ALSO_PREFIX)]
            )
        return []
