"""Storing a confirmed request: once per confirmation, 50 at once, and honestly when the DB is down."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine, text

from actions.forms import FORM_NAME, reset_request_events
from actions.parsing import SKIPPED
from actions.submission import (
    ActionSubmitAppointmentRequest,
    MissingAnswerError,
    channel_for,
    details_from_slots,
    form_run_started_at,
    idempotency_key,
)
from appointments.database import migrate
from appointments.request_review import change_status
from appointments.requests import count_appointment_requests, get_appointment_request
from appointments.screening import NO_PERIODS_REASON
from tests.actions.trackers import make_tracker, user_event
from tests.appointments.conftest import _dispose_engines_after_test  # noqa: F401

SLOTS = {
    "full_name": "Ana Ruiz",
    "date_of_birth": "1990-03-04",
    "date_of_birth_raw": "I'm Ana Ruiz, born 3/4/1990",
    "phone": "+12015550123",
    "phone_raw": "(201) 555-0123",
    "email": "ana.ruiz@example.com",
    "email_raw": "Ana.Ruiz@example.com",
    "last_period": "2025-11-25",
    "last_period_raw": "Nov 25",
    "suggested_window_start": "2025-12-01",
    "suggested_window_end": "2025-12-06",
    "preferred_times": "next tuesday afternoon <b>or</b> '); DROP TABLE x;--",
    "preferred_dates": ["2025-12-02"],
    "possibly_pregnant": "no",
    "contrast_allergy": "yes",
    "pelvic_infection": "no",
    "referring_doctor": SKIPPED,
    "contact_method": "text",
    "appointment_request_pending": True,
    "clinic_phone": "800-220-2220",
}
PERSONAL_DETAILS = ["Ana", "Ruiz", "1990", "555", "example.com", "201"]
# When the form was activated, as Rasa stamps its active_loop event (unix seconds).
FORM_STARTED_AT = 1_764_000_000.25


@pytest.fixture
def action_database_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database (SQLite, then PostgreSQL) that the action finds through DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def form_activated(timestamp: float = FORM_STARTED_AT, name: str | None = FORM_NAME) -> dict:
    return {"event": "active_loop", "name": name, "timestamp": timestamp}


def confirmation(channel: str = "rest") -> dict:
    event = user_event("/affirm", "affirm", 1.0)
    event["input_channel"] = channel
    return event


def form_run(started_at: float) -> list[dict]:
    """One run of the form as the tracker holds it: activated, completed, then confirmed."""
    return [form_activated(started_at), form_activated(started_at + 30, None), confirmation()]


def confirmation_tracker(
    sender_id: str = "patient-1", channel: str = "rest", events: list[dict] | None = None, **slots
):
    if events is None:
        events = [form_activated(), confirmation(channel)]
    return make_tracker(events=events, slots={**SLOTS, **slots}, sender_id=sender_id)


def submit(tracker) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionSubmitAppointmentRequest().run(dispatcher, tracker, {}))
    return dispatcher.messages, events


def test_details_are_built_from_the_slots() -> None:
    details = details_from_slots(SLOTS)
    assert details.full_name == "Ana Ruiz"
    assert details.date_of_birth == date(1990, 3, 4)
    assert details.referring_doctor is None
    assert details.last_period_start == date(2025, 11, 25)
    assert details.last_period_not_applicable is False
    assert details.preferred_dates == [date(2025, 12, 2)]
    assert details.needs_attention(date(2025, 11, 27)) is True


def test_skipped_email_and_a_period_that_does_not_apply() -> None:
    details = details_from_slots(
        {
            **SLOTS,
            "email": SKIPPED,
            "last_period": "not_applicable",
            "suggested_window_start": None,
        }
    )
    assert details.email is None
    assert details.last_period_start is None
    assert details.last_period_not_applicable is True
    assert details.suggested_window_start is None
    # No periods: staff arrange a pregnancy check, whatever the screening answers.
    no_concerns = details_from_slots(
        {**SLOTS, "last_period": "not_applicable", "contrast_allergy": "no"}
    )
    assert no_concerns.attention_reasons(date(2025, 11, 27)) == [NO_PERIODS_REASON]


@pytest.mark.parametrize("missing", ["full_name", "phone", "contact_method", "last_period"])
def test_a_missing_answer_is_refused(missing) -> None:
    with pytest.raises(MissingAnswerError):
        details_from_slots({**SLOTS, missing: None})


@pytest.mark.parametrize(
    ("input_channel", "channel"),
    [("socketio", "web"), ("twilio", "sms"), ("rest", "rest"), (None, "rest"), ("cmdline", "rest")],
)
def test_channel_names(input_channel, channel) -> None:
    assert channel_for(input_channel) == channel


def test_idempotency_key_depends_on_conversation_form_run_and_answers() -> None:
    details = details_from_slots(SLOTS)
    key = idempotency_key("a", 100.5, details)
    assert key == idempotency_key("a", 100.5, details_from_slots(dict(SLOTS)))
    assert key != idempotency_key("b", 100.5, details)
    assert key != idempotency_key("a", 200.5, details)
    assert key != idempotency_key("a", None, details)
    changed = details_from_slots({**SLOTS, "phone": "+16465550182"})
    assert key != idempotency_key("a", 100.5, changed)


def test_form_run_is_the_latest_activation_of_the_appointment_form() -> None:
    events = [
        form_activated(100.0),
        form_activated(130.0, None),
        {"event": "active_loop", "name": "some_other_form", "timestamp": 140.0},
        confirmation(),
        form_activated(200.0),
        form_activated(260.0, None),
        confirmation(),
    ]
    assert form_run_started_at(events) == 200.0
    assert form_run_started_at(events[:4]) == 100.0
    assert form_run_started_at([confirmation()]) is None


def test_confirmation_stores_every_field_and_gives_the_reference(
    action_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_CALLBACK_PROMISE", "within one business day")
    messages, events = submit(confirmation_tracker(sender_id="conv-42", channel="socketio"))
    assert messages[0]["response"] == "utter_appointment_request_saved"
    assert messages[0]["callback_sentence"] == (
        "Our team will contact you within one business day to confirm a time."
    )
    row = get_appointment_request(messages[0]["reference"], url=action_database_url)
    assert row.conversation_id == "conv-42"
    assert row.channel == "web"
    assert row.status == "new"
    assert row.full_name == "Ana Ruiz"
    assert row.date_of_birth_raw == "I'm Ana Ruiz, born 3/4/1990"
    assert row.phone_e164 == "+12015550123"
    assert row.email == "ana.ruiz@example.com"
    assert row.suggested_window_end == date(2025, 12, 6)
    # Markup and SQL in an answer are stored as the text they are.
    assert row.preferred_times_raw == SLOTS["preferred_times"]
    assert row.preferred_dates == ["2025-12-02"]
    assert row.referring_doctor is None
    assert row.needs_attention is True
    # The request's answers are forgotten; the clinic's details are not touched.
    assert events == reset_request_events()
    reset = {event["name"]: event["value"] for event in events if event["event"] == "slot"}
    # The pending flag goes back to False: the rules that end a request expect exactly that.
    assert reset["full_name"] is None and reset["appointment_request_pending"] is False
    assert "clinic_phone" not in reset


def test_a_confirmation_delivered_twice_stores_one_row(action_database_url: str) -> None:
    first, first_events = submit(confirmation_tracker(sender_id="double-tap"))
    second, second_events = submit(confirmation_tracker(sender_id="double-tap"))
    assert first[0]["reference"] == second[0]["reference"]
    assert count_appointment_requests(url=action_database_url) == 1
    assert first_events == reset_request_events()
    assert second_events == reset_request_events()


def test_cancel_then_rebook_with_identical_answers_stores_a_second_request(
    action_database_url: str,
) -> None:
    # SMS: the conversation id is the patient's number and stays the same for years.
    sender = "sms:+12015550123"
    first_run = form_run(FORM_STARTED_AT)
    first, first_events = submit(confirmation_tracker(sender_id=sender, events=first_run))
    first_reference = first[0]["reference"]
    change_status(
        first_reference,
        to_status="cancelled",
        expected_status="new",
        note="",
        staff_username="alice",
        url=action_database_url,
    )
    # Asked again later in the same conversation: a half-filled run left with "stop", then a
    # complete one with the very same answers.
    abandoned = [form_activated(FORM_STARTED_AT + 600), form_activated(FORM_STARTED_AT + 620, None)]
    both_runs = first_run + abandoned + form_run(FORM_STARTED_AT + 900)

    second, second_events = submit(confirmation_tracker(sender_id=sender, events=both_runs))
    retried, retried_events = submit(confirmation_tracker(sender_id=sender, events=both_runs))

    assert [message["response"] for message in first + second + retried] == [
        "utter_appointment_request_saved"
    ] * 3
    second_reference = second[0]["reference"]
    assert second_reference != first_reference
    assert retried[0]["reference"] == second_reference
    assert count_appointment_requests(url=action_database_url) == 2
    assert get_appointment_request(first_reference, url=action_database_url).status == "cancelled"
    stored = get_appointment_request(second_reference, url=action_database_url)
    assert (stored.status, stored.conversation_id) == ("new", sender)
    assert first_events == second_events == retried_events == reset_request_events()


def test_a_retried_call_racing_the_first_stores_one_row(action_database_url: str) -> None:
    async def both() -> list[str]:
        results = []
        for dispatcher in await asyncio.gather(*(run_once() for _ in range(5))):
            results.append(dispatcher.messages[0]["reference"])
        return results

    async def run_once() -> CollectingDispatcher:
        dispatcher = CollectingDispatcher()
        await ActionSubmitAppointmentRequest().run(
            dispatcher, confirmation_tracker(sender_id="retried"), {}
        )
        return dispatcher

    references = asyncio.run(both())
    assert len(set(references)) == 1
    assert count_appointment_requests(url=action_database_url) == 1


def test_fifty_conversations_confirming_at_once_store_fifty_rows(action_database_url: str) -> None:
    async def confirm_all() -> list[CollectingDispatcher]:
        dispatchers = [CollectingDispatcher() for _ in range(50)]
        await asyncio.gather(
            *(
                ActionSubmitAppointmentRequest().run(
                    dispatcher, confirmation_tracker(sender_id=f"conversation-{number}"), {}
                )
                for number, dispatcher in enumerate(dispatchers)
            )
        )
        return dispatchers

    dispatchers = asyncio.run(confirm_all())
    responses = [dispatcher.messages[0]["response"] for dispatcher in dispatchers]
    assert responses == ["utter_appointment_request_saved"] * 50
    references = {dispatcher.messages[0]["reference"] for dispatcher in dispatchers}
    assert len(references) == 50
    assert count_appointment_requests(url=action_database_url) == 50


def test_unreachable_database_is_never_reported_as_saved(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/unreachable")
    with caplog.at_level(logging.DEBUG):
        messages, events = submit(confirmation_tracker())
    assert [message["response"] for message in messages] == ["utter_appointment_request_not_saved"]
    # The answers stay, so the patient can confirm again later.
    assert events == []
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors and "OperationalError" in errors[0].getMessage()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for detail in PERSONAL_DETAILS:
        assert detail not in logged


def test_a_broken_database_file_is_never_reported_as_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A migrated database whose table is gone: the insert fails inside SQLAlchemy.
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = create_engine(url, future=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE unrelated (id INTEGER)"))
    engine.dispose()
    messages, events = submit(confirmation_tracker())
    assert messages[0]["response"] == "utter_appointment_request_not_saved"
    assert events == []


def test_incomplete_answers_are_not_saved(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(sqlite_url)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    with caplog.at_level(logging.INFO):
        messages, events = submit(confirmation_tracker(possibly_pregnant="Yes please"))
    assert messages[0]["response"] == "utter_appointment_request_not_saved"
    assert count_appointment_requests(url=sqlite_url) == 0
    assert "Yes please" not in caplog.text


def test_info_logs_of_a_stored_request_hold_no_personal_details(
    action_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        messages, _ = submit(confirmation_tracker(sender_id="+12015550123", channel="twilio"))
    assert messages[0]["response"] == "utter_appointment_request_saved"
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.levelno >= logging.INFO
    )
    assert messages[0]["reference"] in logged
    for detail in PERSONAL_DETAILS:
        assert detail not in logged
