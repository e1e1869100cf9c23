"""Answers a numbered reply to a reminder or check-in text, in the context of that text.

The outreach worker records each text it sends in the patient's SMS conversation as a bot event
with the text's buttons and, in its metadata, the kind and the request's reference. The SMS
channel turns a reply "2" (or "yes", "fine") into the payload of the button it picks, which brings
the patient here. The context is that latest outreach bot event: kept in the tracker's events, it
survives the session expiry that a reply days later causes, without carrying a slot over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from appointments import outbox
from appointments.database import session_scope
from appointments.handoffs import CHECKIN_REPLY_FLAGGED, WARNING_SIGN
from appointments.models import utc_now
from channels.conversation_ids import sms_conversation_id
from handoff.recording import record_need
from outreach.messages import OUTREACH_METADATA_KEY
from outreach.plan import CHECKIN, CONFIRMATION, CYCLE_CHECK

# Patient details never go into these log lines: only references, kinds and answers.
logger = logging.getLogger(__name__)

ANSWER_ENTITY = "checkin_answer"
WARNING_SIGNS_RESPONSE = "utter_warning_signs"
NO_CONTEXT_RESPONSE = "utter_checkin_no_context"
TEAM_TOLD_RESPONSE = "utter_checkin_team_told"

# (text kind, answer) -> (responses, flag to raise or None). Kinds: outreach/plan.py.
ANSWERS: Dict[tuple, tuple] = {
    (CONFIRMATION, "confirm"): (["utter_checkin_confirmed"], None),
    (CONFIRMATION, "change"): (["utter_checkin_change_requested"], outbox.CHANGE_REQUESTED),
    (CYCLE_CHECK, "yes"): (["utter_checkin_cycle_as_expected"], None),
    (CYCLE_CHECK, "no"): (["utter_prep_timing", TEAM_TOLD_RESPONSE], outbox.CYCLE_CHECK_FAILED),
    (CYCLE_CHECK, "not_sure"): (
        ["utter_prep_timing", TEAM_TOLD_RESPONSE],
        outbox.CYCLE_CHECK_FAILED,
    ),
    (CHECKIN, "fine"): (["utter_checkin_glad"], None),
    (CHECKIN, "cramps"): (["utter_aftercare_symptoms"], None),
    (CHECKIN, "warning"): (
        [WARNING_SIGNS_RESPONSE, TEAM_TOLD_RESPONSE],
        outbox.AFTERCARE_CONCERN,
    ),
}


def latest_outreach_text(events: List[Dict[str, Any]], answer: str | None) -> Dict[str, Any] | None:
    """The latest text the outreach worker recorded that offered ``answer``, or None.

    Not simply the latest text: a patient may answer the cycle check after the preparation text
    (which asks nothing) has arrived; the SMS channel matched the reply to the same buttons.
    """
    for event in reversed(events):
        if event.get("event") != "bot":
            continue
        metadata = event.get("metadata") or {}
        if isinstance(metadata.get(OUTREACH_METADATA_KEY), dict) and offers(event, answer):
            return event
    return None


def offers(event: Dict[str, Any], answer: str | None) -> bool:
    buttons = (event.get("data") or {}).get("buttons") or []
    return any(f'"{answer}"' in str(button.get("payload", "")) for button in buttons)


def chosen_title(event: Dict[str, Any], answer: str) -> str:
    """The title of the button whose payload carries ``answer``: what the patient picked."""
    for button in (event.get("data") or {}).get("buttons") or []:
        if f'"{answer}"' in str(button.get("payload", "")):
            return str(button.get("title", answer))
    return answer


def flag_request(reference: str, conversation_id: str, reason: str, raised_by: str) -> bool:
    """Flags the request, but only if it belongs to this SMS conversation's number."""
    with session_scope() as session:
        request = outbox.request_by_reference(session, reference)
        if request is None or sms_conversation_id(request.phone_e164) != conversation_id:
            return False
        outbox.raise_flag(session, request.id, reason, raised_by, utc_now())
        return True


class ActionCheckinReply(Action):
    def name(self) -> Text:
        return "action_checkin_reply"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[EventType]:
        answer = next(tracker.get_latest_entity_values(ANSWER_ENTITY), None)
        context = latest_outreach_text(tracker.events, answer)
        details = (context or {}).get("metadata", {}).get(OUTREACH_METADATA_KEY, {})
        kind, reference = details.get("kind"), details.get("reference")
        responses, flag = ANSWERS.get((kind, answer), ([], None))
        if not responses:
            # A reported warning sign is answered whatever text it seems to reply to.
            responses = [WARNING_SIGNS_RESPONSE] if answer == "warning" else [NO_CONTEXT_RESPONSE]
        for response in responses:
            dispatcher.utter_message(response=response)
        if flag and reference:
            raised_by = (
                f'Replied "{chosen_title(context, answer)}" to the {kind.replace("_", " ")} text'
            )
            flagged = await asyncio.to_thread(
                flag_request, reference, tracker.sender_id, flag, raised_by
            )
            logger.info(
                "Reply %s to %s of %s: flag %s",
                answer,
                kind,
                reference,
                flag if flagged else "refused",
            )
            if flagged:
                # The flag is on the request; the inbox brings a person to the conversation.
                reason = WARNING_SIGN if flag == outbox.AFTERCARE_CONCERN else CHECKIN_REPLY_FLAGGED
                await asyncio.to_thread(record_need, tracker.sender_id, reason)
        return []
