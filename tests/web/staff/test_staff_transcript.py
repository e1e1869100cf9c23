"""The conversation on a request's page: the Rasa session in which the request was confirmed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, UserUttered
from sqlalchemy import create_engine

from tests.appointments.staff_factories import add_request
from web.staff import transcript
from web.staff.transcript import load_transcript

SMS_PATIENT = "sms:+12015550123"
JANUARY = datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)
MAY = datetime(2024, 5, 2, 9, 0, tzinfo=timezone.utc)
JUNE = datetime(2024, 6, 20, 9, 0, tzinfo=timezone.utc)


def session_events(started: datetime, words: list[str]) -> list[Event]:
    """A Rasa session as the server logs it: the session start (disclaimer first), then turns."""
    at = started.timestamp()
    events: list[Event] = [
        ActionExecuted("action_session_start", timestamp=at),
        BotUttered(f"Disclaimer {started:%B}", timestamp=at + 0.1),
        SessionStarted(timestamp=at + 0.2),
        ActionExecuted("action_listen", timestamp=at + 0.3),
    ]
    for number, text in enumerate(words, start=1):
        events.append(
            UserUttered(text, intent={"name": "x", "confidence": 1}, timestamp=at + number)
        )
        events.append(BotUttered(f"Reply to {text}", timestamp=at + number + 0.5))
    return events


def write_conversation(url: str, sender_id: str, events: list[Event]) -> None:
    """Rasa's events table (created as its SQLTrackerStore does) with rows as its save() writes."""
    engine = create_engine(url, future=True)
    SQLTrackerStore.SQLEvent.__table__.create(engine, checkfirst=True)
    with engine.begin() as connection:
        for event in events:
            data = event.as_dict()
            connection.execute(
                SQLTrackerStore.SQLEvent.__table__.insert().values(
                    sender_id=sender_id,
                    type_name=event.type_name,
                    timestamp=data.get("timestamp"),
                    action_name=data.get("name"),
                    data=json.dumps(data),
                )
            )
    engine.dispose()


@pytest.fixture
def returning_patient(tracker_url: str) -> str:
    """One SMS conversation id, three sessions months apart."""
    write_conversation(
        tracker_url,
        SMS_PATIENT,
        session_events(JANUARY, ["january question"])
        + session_events(MAY, ["may booking", "may confirm"])
        + session_events(JUNE, ["june question"]),
    )
    write_conversation(tracker_url, "sms:+19995550000", session_events(MAY, ["someone else"]))
    return tracker_url


def texts(messages: list[transcript.TranscriptMessage]) -> list[str]:
    return [message.text for message in messages]


def test_request_page_shows_only_the_session_of_the_confirmation(
    signed_in, database_url, returning_patient
) -> None:
    reference = add_request(
        database_url, conversation_id=SMS_PATIENT, created_at=MAY + timedelta(minutes=5)
    )

    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)

    conversation = html[html.index('id="conversation-heading"') :]
    assert conversation.index("Disclaimer May") < conversation.index("may booking")
    assert conversation.index("may booking") < conversation.index("Reply to may confirm")
    for other in ["january question", "Disclaimer January", "june question", "someone else"]:
        assert other not in conversation


def test_the_session_is_the_latest_started_before_the_confirmation(returning_patient) -> None:
    def at(moment: datetime | None) -> list[str]:
        return texts(load_transcript(SMS_PATIENT, url=returning_patient, confirmed_at=moment))

    january = ["Disclaimer January", "january question", "Reply to january question"]
    june = ["Disclaimer June", "june question", "Reply to june question"]
    assert at(JANUARY + timedelta(days=30)) == january
    assert at(MAY + timedelta(seconds=1.5)) == [
        "Disclaimer May",
        "may booking",
        "Reply to may booking",
        "may confirm",
        "Reply to may confirm",
    ]
    assert at(JUNE + timedelta(days=400)) == june
    # Without a time: the latest session.
    assert at(None) == june


def test_a_confirmation_before_any_session_start_shows_what_came_before_it(
    tracker_url: str,
) -> None:
    early = [UserUttered("before sessions", timestamp=JANUARY.timestamp() - 60)]
    write_conversation(tracker_url, SMS_PATIENT, early + session_events(MAY, ["later"]))
    messages = load_transcript(SMS_PATIENT, url=tracker_url, confirmed_at=JANUARY)
    assert texts(messages) == ["before sessions"]


def test_a_huge_session_shows_its_latest_messages_in_order(
    tracker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcript, "MAX_MESSAGES", 3)
    write_conversation(tracker_url, SMS_PATIENT, session_events(MAY, ["one", "two", "three"]))
    messages = load_transcript(SMS_PATIENT, url=tracker_url, confirmed_at=MAY)
    assert texts(messages) == ["Reply to two", "three", "Reply to three"]


def test_a_missing_tracker_store_is_unavailable(tracker_url: str) -> None:
    with pytest.raises(transcript.TranscriptUnavailableError):
        load_transcript(SMS_PATIENT, url=tracker_url, confirmed_at=MAY)
