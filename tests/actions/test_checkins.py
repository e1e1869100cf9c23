"""The reply action of the reminders and check-ins: the answer in the context of the text that
offered it, the flag on the patient's own request only, and the warning answer whatever happens."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.checkins import ActionCheckinReply
from appointments import outbox
from appointments.database import dispose_engines, session_scope
from appointments.handoffs import open_handoff
from tests.actions.trackers import make_tracker, user_event
from tests.appointments.staff_factories import add_request

PHONE = "+12015550166"


@pytest.fixture
def request_reference(database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    yield add_request(database_url, status="scheduled", contact_method="text", phone_e164=PHONE)
    dispose_engines()


def outreach_text(kind: str, reference: str, answers: list[str]) -> dict:
    return {
        "event": "bot",
        "text": f"the {kind} text",
        "data": {
            "buttons": [
                {
                    "title": answer.title(),
                    "payload": f'/checkin_reply{{"checkin_answer": "{answer}"}}',
                }
                for answer in answers
            ]
        },
        "metadata": {"outreach": {"kind": kind, "reference": reference}},
    }


def reply(answer: str) -> dict:
    return user_event(
        f'/checkin_reply{{"checkin_answer": "{answer}"}}',
        "checkin_reply",
        1.0,
        entities=[{"entity": "checkin_answer", "value": answer}],
    )


def run(events: list[dict], sender_id: str = f"sms:{PHONE}") -> list[str]:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(events, sender_id=sender_id)
    asyncio.run(ActionCheckinReply().run(dispatcher, tracker, {}))
    return [message["response"] for message in dispatcher.messages]


def flags(url: str, reference: str) -> list[tuple[str, str]]:
    with session_scope(url) as session:
        request = outbox.request_by_reference(session, reference)
        return [(flag.reason, flag.raised_by) for flag in outbox.open_flags(session, request.id)]


def inbox_reason(url: str, conversation_id: str = f"sms:{PHONE}") -> str | None:
    with session_scope(url) as session:
        row = open_handoff(session, conversation_id)
        return row.reason if row else None


def test_a_reported_warning_sign_gets_the_escalation_answer_and_a_flag(
    database_url, request_reference
) -> None:
    events = [
        outreach_text("checkin", request_reference, ["fine", "cramps", "warning"]),
        reply("warning"),
    ]
    assert run(events) == ["utter_warning_signs", "utter_checkin_team_told"]
    assert flags(database_url, request_reference) == [
        ("aftercare_concern", 'Replied "Warning" to the checkin text')
    ]
    assert inbox_reason(database_url) == "warning_sign"


def test_the_answer_is_read_against_the_text_that_offered_it(
    database_url, request_reference
) -> None:
    events = [
        outreach_text("cycle_check", request_reference, ["yes", "no", "not_sure"]),
        outreach_text("preparation", request_reference, []),
        reply("not_sure"),
    ]
    assert run(events) == ["utter_prep_timing", "utter_checkin_team_told"]
    assert [reason for reason, _ in flags(database_url, request_reference)] == [
        "cycle_check_failed"
    ]
    assert inbox_reason(database_url) == "checkin_reply_flagged"


def test_a_typed_payload_cannot_flag_another_patients_request(
    database_url, request_reference
) -> None:
    events = [
        outreach_text("confirmation", request_reference, ["confirm", "change"]),
        reply("change"),
    ]
    assert run(events, sender_id="sms:+12015550199") == ["utter_checkin_change_requested"]
    assert run(events, sender_id="rest:someone") == ["utter_checkin_change_requested"]
    assert flags(database_url, request_reference) == []
    assert inbox_reason(database_url, "sms:+12015550199") is None


def test_without_a_text_to_answer_the_warning_is_still_answered(
    database_url, request_reference
) -> None:
    assert run([reply("warning")]) == ["utter_warning_signs"]
    assert run([reply("confirm")]) == ["utter_checkin_no_context"]
    assert flags(database_url, request_reference) == []
