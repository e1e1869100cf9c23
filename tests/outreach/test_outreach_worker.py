"""The worker with a controlled clock, the real Twilio client and a local stand-in for Twilio's
Messages API, on SQLite and PostgreSQL: what goes out when, once, and what staff then see."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from appointments import outbox
from appointments.database import session_scope
from appointments.models import OutboundMessage
from appointments.request_review import change_status
from appointments.requests import set_sms_opt_out
from clinic.settings import load_clinic_settings
from outreach.plan import plan_messages
from outreach.twilio_sender import TwilioSender, TwilioSettings
from outreach.worker import CLAIM_TIMEOUT, NOT_CONFIGURED_REASON, Worker
from scripts.twilio_standin import StandInServer
from tests.appointments.staff_factories import add_request

NEW_YORK = ZoneInfo("America/New_York")
PHONE = "+12015550123"
CALLBACK = "https://clinic.example/webhooks/twilio/status"


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def _no_rasa(monkeypatch: pytest.MonkeyPatch) -> None:
    # No Rasa server here: recording the context fails and is retried (tested end to end).
    monkeypatch.setenv("RASA_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("RASA_API_TOKEN", "unused")


@pytest.fixture
def twilio():
    with StandInServer() as server:
        yield server


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now.astimezone(timezone.utc)


def _sender(twilio: StandInServer) -> TwilioSender:
    return TwilioSender(
        TwilioSettings(
            account_sid="AC" + "0" * 32,
            auth_token="test-token",  # noqa: S106 - the stand-in checks nothing
            from_number="+15005550006",
            messaging_service_sid="",
            status_callback_url=CALLBACK,
            api_base_url=twilio.url,
        )
    )


def _worker(url: str, clock: Clock, sender: TwilioSender | None, name: str = "w1") -> Worker:
    return Worker(
        name=name,
        sender=sender,
        zone=NEW_YORK,
        clinic=load_clinic_settings(environ={}),
        clock=clock,
        database_url=url,
    )


def _schedule(url: str, appointment_at: datetime, scheduled_at: datetime, phone=PHONE) -> str:
    reference = add_request(url, status="contacted", contact_method="text", phone_e164=phone)
    planned = [
        (m.kind, m.due_at, m.useful_until)
        for m in plan_messages(appointment_at, NEW_YORK, scheduled_at.astimezone(timezone.utc))
    ]
    change_status(
        reference,
        to_status="scheduled",
        expected_status="contacted",
        note="",
        staff_username="alice",
        appointment_at=appointment_at.astimezone(timezone.utc),
        planned=planned,
        url=url,
    )
    return reference


def _states(url: str, reference: str) -> dict[str, OutboundMessage]:
    with session_scope(url) as session:
        request = outbox.request_by_reference(session, reference)
        return {row.kind: row for row in outbox.messages_of(session, request.id)}


def test_each_text_goes_out_at_its_local_time_across_the_change_of_clocks(
    database_url: str, twilio: StandInServer
) -> None:
    # Scheduled on Oct 20 for Saturday Oct 31, 9:30; the clocks go back on Sunday Nov 1.
    clock = Clock(ny(2026, 10, 20, 15, 0))
    reference = _schedule(database_url, ny(2026, 10, 31, 9, 30), clock())
    worker = _worker(database_url, clock, _sender(twilio))

    assert worker.run_once() == {"sent": 1}
    confirmation = twilio.state.posted_to(PHONE)[0]
    assert confirmation["body"].startswith("Neighborhood Radiology Services: your HSG is booked")
    assert "Saturday, October 31 at 9:30 AM" in confirmation["body"]
    assert "1. Confirm\n2. Change it" in confirmation["body"]
    for words in ("Msg & data rates may apply", "STOP", "HELP", "up to 4 texts"):
        assert words in confirmation["body"]
    assert confirmation["status_callback"] == CALLBACK
    assert _states(database_url, reference)["confirmation"].twilio_sid == confirmation["sid"]

    # Nothing else until the cycle check's time, 10:00 three days before.
    clock.set(ny(2026, 10, 28, 9, 59))
    assert worker.run_once() == {}
    clock.set(ny(2026, 10, 28, 10, 0))
    assert worker.run_once() == {"sent": 1}
    assert "Has your period come as expected?" in twilio.state.messages[-1]["body"]

    clock.set(ny(2026, 10, 30, 12, 0))
    assert worker.run_once() == {"sent": 1}
    assert "take pain medicine about an hour before" in twilio.state.messages[-1]["body"]

    # The check-in: 10:00 EST on Nov 1 is 15:00 UTC (the day before, 10:00 was 14:00 UTC).
    clock.set(datetime(2026, 11, 1, 14, 30, tzinfo=timezone.utc))
    assert worker.run_once() == {}
    clock.set(datetime(2026, 11, 1, 15, 0, tzinfo=timezone.utc))
    assert worker.run_once() == {"sent": 1}
    assert "3. Fever, heavy bleeding" in twilio.state.messages[-1]["body"]
    assert len(twilio.state.posted_to(PHONE)) == 4
    assert {row.state for row in _states(database_url, reference).values()} == {"sent"}


def test_a_text_due_at_night_waits_for_8_and_staff_see_why(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 22, 15))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    worker = _worker(database_url, clock, _sender(twilio))

    assert worker.run_once() == {"waiting": 1}
    row = _states(database_url, reference)["confirmation"]
    assert row.state == "planned" and row.next_attempt_at == ny(2026, 6, 2, 8, 0)
    assert "2026-06-02 08:00" in row.reason
    clock.set(ny(2026, 6, 2, 7, 0))
    assert worker.run_once() == {}
    clock.set(ny(2026, 6, 2, 8, 0))
    assert worker.run_once() == {"sent": 1}
    assert len(twilio.state.messages) == 1


def test_one_text_a_day_per_patient_across_requests(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    first = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    second = _schedule(database_url, ny(2026, 6, 25, 9, 0), clock())
    worker = _worker(database_url, clock, _sender(twilio))

    assert worker.run_once() == {"sent": 1, "waiting": 1}
    waiting = _states(database_url, second)["confirmation"]
    assert _states(database_url, first)["confirmation"].state == "sent"
    assert waiting.next_attempt_at == ny(2026, 6, 2, 8, 0)
    assert "2026-06-02 08:00" in waiting.reason
    clock.set(ny(2026, 6, 2, 8, 0))
    assert worker.run_once() == {"sent": 1}


def test_a_text_too_late_to_be_useful_is_dropped_with_its_reason(
    database_url: str, twilio: StandInServer
) -> None:
    # Scheduled at 22:00 for 8:30 the next morning: no preparation text can help any more.
    clock = Clock(ny(2026, 6, 1, 22, 0))
    reference = _schedule(database_url, ny(2026, 6, 2, 8, 30), clock())
    worker = _worker(database_url, clock, _sender(twilio))
    worker.run_once()
    states = _states(database_url, reference)
    assert states["cycle_check"].state == "dropped"
    assert states["preparation"].state == "dropped"
    assert "too late" in states["preparation"].reason or "passed" in states["preparation"].reason
    assert twilio.state.messages == []


def test_without_twilio_settings_nothing_is_sent_and_staff_see_why(database_url: str) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    assert _worker(database_url, clock, None).run_once() == {"not_sent": 1}
    row = _states(database_url, reference)["confirmation"]
    assert (row.state, row.reason) == ("not_sent", NOT_CONFIGURED_REASON)


def test_nothing_goes_to_a_number_that_replied_stop(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    set_sms_opt_out(PHONE, True, url=database_url)
    assert _worker(database_url, clock, _sender(twilio)).run_once() == {}
    assert {row.state for row in _states(database_url, reference).values()} == {"cancelled"}
    assert twilio.state.messages == []


def test_a_refused_number_fails_at_once_and_flags_the_request(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    twilio.state.refuse_with = (400, 21211)
    assert _worker(database_url, clock, _sender(twilio)).run_once() == {"failed": 1}
    row = _states(database_url, reference)["confirmation"]
    assert row.state == "failed" and "21211" in row.reason
    with session_scope(database_url) as session:
        flags = outbox.open_flags(session, row.request_id)
    assert [flag.reason for flag in flags] == ["delivery_failed"]


def test_a_twilio_outage_is_retried_with_backoff_then_shown_to_staff(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    worker = _worker(database_url, clock, _sender(twilio))
    twilio.state.refuse_with = (503, 20503)
    retries = []
    for _ in range(10):
        outcome = worker.run_once()
        row = _states(database_url, reference)["confirmation"]
        if row.state != "planned":
            break
        retries.append(row.next_attempt_at - clock())
        clock.set(row.next_attempt_at)
    assert outcome == {"failed": 1}
    assert retries == sorted(retries) and len(retries) == 4
    assert "Retrying" not in row.reason and "503" in row.reason

    # Twilio back: a new appointment's texts go out again.
    twilio.state.refuse_with = None
    _schedule(database_url, ny(2026, 6, 22, 9, 0), clock(), phone="+12015550999")
    assert worker.run_once() == {"sent": 1}


def test_a_worker_that_stopped_after_twilio_took_the_text_does_not_send_it_again(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    sender = _sender(twilio)
    crashed = _worker(database_url, clock, sender, name="crashed")
    # What a crash between Twilio's answer and the database update leaves: a claimed row, a post.
    with session_scope(database_url) as session:
        message_id = outbox.due_ids(session, clock(), 10)[0]
        claimed = outbox.claim(session, message_id, "crashed", clock())
    sender.send_sms(PHONE, crashed.body_of(claimed))

    restarted = _worker(database_url, clock, sender, name="restarted")
    assert restarted.run_once() == {}  # the claim is too recent to be a crash
    clock.set(clock() + CLAIM_TIMEOUT + timedelta(seconds=1))
    restarted.run_once()
    row = _states(database_url, reference)["confirmation"]
    assert row.state == "sent" and row.twilio_sid == twilio.state.messages[0]["sid"]
    assert len(twilio.state.posted_to(PHONE)) == 1


def test_a_worker_that_stopped_before_twilio_had_the_text_sends_it_once_later(
    database_url: str, twilio: StandInServer
) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    reference = _schedule(database_url, ny(2026, 6, 20, 9, 0), clock())
    with session_scope(database_url) as session:
        message_id = outbox.due_ids(session, clock(), 10)[0]
        outbox.claim(session, message_id, "crashed", clock())
    clock.set(clock() + CLAIM_TIMEOUT + timedelta(seconds=1))
    worker = _worker(database_url, clock, _sender(twilio), name="restarted")
    worker.run_once()
    worker.run_once()
    assert _states(database_url, reference)["confirmation"].state == "sent"
    assert len(twilio.state.posted_to(PHONE)) == 1


def test_two_workers_at_once_send_every_text_once(database_url: str, twilio: StandInServer) -> None:
    clock = Clock(ny(2026, 6, 1, 10, 0))
    phones = [f"+1201555{number:04d}" for number in range(8)]
    for phone in phones:
        _schedule(database_url, ny(2026, 6, 20, 9, 0), clock(), phone=phone)
    twilio.state.delay_seconds = 0.05
    workers = [_worker(database_url, clock, _sender(twilio), name=f"w{n}") for n in range(2)]
    start = threading.Barrier(2)

    def run(worker: Worker) -> None:
        start.wait()
        worker.run_once()

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(message["to"] for message in twilio.state.messages) == sorted(phones)
