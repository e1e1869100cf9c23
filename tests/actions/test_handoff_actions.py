"""The patient's side of the hand-off, run as the action server runs it, against a real database:
"talk to a person" in and out of staffed hours, warning signs and two misunderstandings put the
conversation in the inbox, unanswered messages are kept, and a held conversation stays paused
across a new session.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff as handoff_actions
from actions.fallback import ActionHandleFallback
from actions.handoff import ActionHumanHandoff, ActionWarningSigns, handoff_response
from actions.runner_up import ActionOfferRunnerUp
from actions.session import ActionSessionStart
from appointments import handoffs, unanswered
from appointments.database import session_scope
from tests.actions.test_core_actions import RESPONSES, SAFETY_NET, run
from tests.actions.trackers import make_tracker, user_event

# Tuesday 2026-12-01, 10:00 and 20:00 in New York.
TUESDAY_MORNING = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
TUESDAY_NIGHT = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)
FRIDAY_NIGHT = datetime(2026, 12, 5, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def staffed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIC_STAFFED_HOURS", "Mon-Fri 08:00-17:00")
    monkeypatch.setenv("CLINIC_TIMEZONE", "America/New_York")


def _open_row(conversation_id: str):
    with session_scope() as session:
        return handoffs.open_handoff(session, conversation_id)


def _texts(kind: str) -> list[str]:
    with session_scope() as session:
        return [row.text for row in unanswered.unanswered_since(session) if row.kind == kind]


def test_the_answer_depends_on_staffed_hours_in_the_clinic_time_zone(staffed) -> None:
    assert handoff_response(TUESDAY_MORNING) == ("utter_handoff_requested", {})
    assert handoff_response(TUESDAY_NIGHT) == (
        "utter_handoff_after_hours",
        {"next_staffed": "tomorrow at 8:00 AM"},
    )
    assert handoff_response(FRIDAY_NIGHT)[1] == {"next_staffed": "on Monday at 8:00 AM"}


def test_without_staffed_hours_the_phone_line_answer_stays(monkeypatch) -> None:
    monkeypatch.delenv("CLINIC_STAFFED_HOURS", raising=False)
    assert handoff_response(TUESDAY_MORNING) == ("utter_human_handoff", {})


@pytest.mark.parametrize("response", ["utter_handoff_requested", "utter_handoff_after_hours"])
def test_each_hand_off_answer_gives_the_phone_and_911(response) -> None:
    for variation in RESPONSES[response]:
        assert "{clinic_phone}" in variation["text"]
        assert variation["text"].rstrip().endswith("or 911 in an emergency.")


def test_asking_for_a_person_records_the_conversation_and_the_words(staffed, monkeypatch) -> None:
    monkeypatch.setattr(handoff_actions, "utc_now", lambda: TUESDAY_MORNING)
    sender = f"web:{uuid.uuid4().hex}"
    tracker = make_tracker(
        [user_event("can i talk to a real person", "human_handoff")], sender_id=sender
    )
    messages, events = run(ActionHumanHandoff(), tracker)
    assert [message["response"] for message in messages] == ["utter_handoff_requested"]
    assert events == []
    row = _open_row(sender)
    assert row.reason == handoffs.ASKED_FOR_PERSON and row.channel == "socketio"
    assert "can i talk to a real person" in _texts(unanswered.HANDOFF)


def test_a_warning_sign_gets_the_escalation_answer_and_joins_the_inbox() -> None:
    sender = f"sms:+1201555{uuid.uuid4().int % 10000:04d}"
    tracker = make_tracker(
        [user_event("fever of 102 since my hsg", "warning_signs")], sender_id=sender
    )
    messages, _ = run(ActionWarningSigns(), tracker)
    assert [message["response"] for message in messages] == ["utter_warning_signs"]
    row = _open_row(sender)
    assert row.reason == handoffs.WARNING_SIGN and row.channel == "twilio"


def test_two_misunderstandings_in_a_row_join_the_inbox_and_both_are_kept() -> None:
    sender = f"web:{uuid.uuid4().hex}"
    first = [user_event("blorp the thing", "nlu_fallback", 0.1)]
    run(ActionHandleFallback(), make_tracker(first, sender_id=sender))
    assert _open_row(sender) is None
    second = first + [user_event("no the other blorp", "nlu_fallback", 0.1)]
    messages, _ = run(ActionHandleFallback(), make_tracker(second, sender_id=sender))
    assert [message["response"] for message in messages] == ["utter_offer_phone_line"]
    assert _open_row(sender).reason == handoffs.NOT_UNDERSTOOD_TWICE
    assert "blorp the thing" in _texts(unanswered.REPHRASE)
    assert "no the other blorp" in _texts(unanswered.PHONE_LINE)


def test_an_out_of_scope_question_is_kept_for_the_insights() -> None:
    sender = f"web:{uuid.uuid4().hex}"
    text = f"how long is ivf recovery {uuid.uuid4().hex[:6]}"
    run(ActionOfferRunnerUp(), make_tracker([user_event(text, "out_of_scope")], sender_id=sender))
    assert text in _texts(unanswered.OUT_OF_SCOPE)
    assert _open_row(sender) is None


def test_a_held_conversation_stays_paused_and_silent_in_a_new_session() -> None:
    dispatcher = CollectingDispatcher()
    import asyncio

    events = asyncio.run(
        ActionSessionStart().run(dispatcher, make_tracker(paused=True), {"responses": {}})
    )
    assert dispatcher.messages == []
    names = [event["event"] for event in events]
    assert names[0] == "session_started" and "pause" in names
    assert names.index("pause") > names.index("session_started")
    assert names[-1] == "action" and events[-1]["name"] == "action_listen"


def test_the_safety_net_constant_is_the_domain_one() -> None:
    # The hand-off answers reuse the fallback's phone-and-911 wording, not a new one.
    assert "911 in an emergency" in SAFETY_NET
