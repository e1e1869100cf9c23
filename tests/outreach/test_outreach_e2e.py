"""End to end: staff schedule in the web app, the real worker process sends through the Twilio
client to a local stand-in for Twilio's Messages API, and the patient's signed replies reach the
real Rasa and action servers, which answer in the context of the text and flag the request.

The worker runs with ``--now`` (a controlled clock); Rasa runs on real time.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from twilio.request_validator import RequestValidator

from appointments import outbox
from appointments.database import dispose_engines, session_scope
from appointments.staff_accounts import create_staff_user
from scripts.assistant_servers import REPO_ROOT, VENV_BIN
from scripts.twilio_standin import StandInServer
from tests.appointments.staff_factories import add_request
from web.app import create_app

NEW_YORK = ZoneInfo("America/New_York")
PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|type="hidden" name="csrf_token" value="([^"]+)"'
)
# Fictional numbers (555-0100 to 555-0199 on an exchange the other tests do not use).
_NUMBERS = iter(random.sample(range(100, 200), 100))


def new_phone() -> str:
    return f"+120255501{next(_NUMBERS) - 100:02d}"


@pytest.fixture(scope="module")
def twilio_standin():
    with StandInServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_standin(twilio_standin: StandInServer):
    twilio_standin.state.delay_seconds = 0.0
    twilio_standin.state.refuse_with = None
    yield
    dispose_engines()


@pytest.fixture(scope="module")
def worker_env(assistant, twilio_standin) -> dict:
    env = dict(assistant.env)
    env.update(
        RASA_URL=assistant.rasa_url,
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=twilio_standin.url,
        TWILIO_STATUS_CALLBACK_URL=f"{assistant.rasa_url}/webhooks/twilio/status",
        CLINIC_TIMEZONE="America/New_York",
    )
    return env


def run_worker(env: dict, now: datetime, timeout: float = 60) -> subprocess.CompletedProcess:
    """One pass of the real worker process at ``now``."""
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "outreach.worker", "--once", "--now", now.isoformat()],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    # Every sent text is recorded in the patient's conversation in the same pass.
    assert "Will record" not in result.stderr, result.stderr
    return result


def start_worker(env: dict, now: datetime) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "outreach.worker", "--once", "--now", now.isoformat()],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Staff:
    """The staff area through Flask's test client, signed in, posting forms with their CSRF token."""

    def __init__(self, assistant) -> None:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "outreach-e2e-secret",
                "DATABASE_URL": assistant.database_url,
                "TRACKER_DATABASE_URL": assistant.tracker_database_url,
                "STAFF_TIMEZONE": "America/New_York",
            }
        )
        self.client = app.test_client()
        username = f"staff{uuid.uuid4().hex[:8]}"
        create_staff_user(username, PASSWORD, url=assistant.database_url)
        response = self.post(
            "/staff/login", "/staff/login", {"username": username, "password": PASSWORD}
        )
        assert response.status_code == 302

    def post(self, page: str, action: str, data: dict):
        match = CSRF_FIELD.search(self.client.get(page).get_data(as_text=True))
        token = match.group(1) or match.group(2)
        return self.client.post(action, data={**data, "csrf_token": token})

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200
        return response.get_data(as_text=True)


@pytest.fixture(scope="module")
def staff(assistant) -> Staff:
    return Staff(assistant)


class Phone:
    """The patient's phone: texts in from the stand-in, replies out through the signed webhook."""

    def __init__(self, assistant, standin: StandInServer, number: str) -> None:
        self.number = number
        self.standin = standin
        self.url = f"{assistant.rasa_url}/webhooks/twilio/webhook"
        self.validator = RequestValidator(assistant.env["TWILIO_AUTH_TOKEN"])

    def received(self) -> list[str]:
        return [message["body"] for message in self.standin.state.posted_to(self.number)]

    def reply(self, body: str) -> str:
        params = {
            "MessageSid": f"SM{uuid.uuid4().hex}",
            "AccountSid": "AC" + "1" * 32,
            "From": self.number,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }
        signature = self.validator.compute_signature(self.url, params)
        response = requests.post(
            self.url, data=params, headers={"X-Twilio-Signature": signature}, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.text


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


def next_morning() -> datetime:
    """10:00 in the clinic tomorrow: within the sending hours whatever the real time."""
    return local(datetime.now(NEW_YORK).date() + timedelta(days=1), 10)


def schedule(staff: Staff, assistant, phone: str, appointment_day: date, channel="web") -> str:
    reference = add_request(
        assistant.database_url,
        status="contacted",
        channel=channel,
        contact_method="text",
        phone_e164=phone,
    )
    page = f"/staff/requests/{reference}"
    response = staff.post(
        page,
        f"{page}/status",
        {
            "expected_status": "contacted",
            "to_status": "scheduled",
            "note": "",
            "appointment_date": appointment_day.isoformat(),
            "appointment_time": "09:30",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return reference


def open_flags(assistant, reference: str) -> list:
    with session_scope(assistant.database_url) as session:
        request = outbox.request_by_reference(session, reference)
        return outbox.open_flags(session, request.id)


def test_scheduled_by_staff_texted_at_the_right_times_and_answered_in_context(
    assistant, staff, worker_env, twilio_standin
) -> None:
    phone = Phone(assistant, twilio_standin, new_phone())
    first_send = next_morning()
    day = first_send.date() + timedelta(days=10)
    reference = schedule(staff, assistant, phone.number, day)

    detail = staff.page(f"/staff/requests/{reference}")
    for label in (
        "Confirmation",
        "Cycle and pregnancy check",
        "Day-before preparation",
        "Day-after check-in",
    ):
        assert label in detail
    assert detail.count(">Planned<") == 4

    # The confirmation, at 10:00 the next morning.
    run_worker(worker_env, first_send)
    (confirmation,) = phone.received()
    assert "Reply HELP for help, STOP to opt out." in confirmation
    assert f"{day:%B} {day.day} at 9:30 AM" in confirmation

    # "2": the patient wants another date. Answered in context, and the request is flagged.
    answer = phone.reply("2")
    assert "Our team will contact you to find a new time" in answer
    (flag,) = open_flags(assistant, reference)
    assert flag.reason == "change_requested"
    assert flag.raised_by == 'Replied "Change it" to the confirmation text'
    listed = staff.page("/staff/requests?flagged=y")
    assert reference in listed
    assert re.search(r"Flagged <strong>[1-9]\d*</strong>", listed)

    # Nothing more until the cycle check, 10:00 three days before.
    run_worker(worker_env, local(day - timedelta(days=3), 9, 59))
    assert len(phone.received()) == 1
    run_worker(worker_env, local(day - timedelta(days=3), 10))
    assert "Has your period come as expected?" in phone.received()[-1]
    answer = phone.reply("not sure")
    assert "a few days to a week after your period ends" in answer
    assert "let our team know" in answer
    assert [f.reason for f in open_flags(assistant, reference)][-1] == "cycle_check_failed"

    # The preparation text the day before at noon: a free-text question gets the usual answer.
    run_worker(worker_env, local(day - timedelta(days=1), 12))
    assert "pain medicine about an hour before" in phone.received()[-1]
    assert "cramping" in phone.reply("does it hurt").lower()

    # The check-in the day after, answered "3": the escalation answer at once, and a flag.
    run_worker(worker_env, local(day + timedelta(days=1), 10))
    assert "How do you feel after your HSG?" in phone.received()[-1]
    answer = phone.reply("3")
    assert "contact your doctor now" in answer
    assert "800-220-2220" in answer and "911" in answer
    assert [f.reason for f in open_flags(assistant, reference)][-1] == "aftercare_concern"
    assert len(phone.received()) == 4

    detail = staff.page(f"/staff/requests/{reference}")
    assert "Aftercare concern" in detail and "Cycle check failed" in detail
    assert (
        "Replied &#34;Fever, heavy bleeding, bad or worse pain, or a reaction&#34; to the checkin text"
        in detail
        or "to the checkin text" in detail
    )


def test_a_middle_answer_to_the_check_in_gets_the_aftercare_answer_without_a_flag(
    assistant, staff, worker_env, twilio_standin
) -> None:
    phone = Phone(assistant, twilio_standin, new_phone())
    first_send = next_morning()
    day = first_send.date() + timedelta(days=5)
    reference = schedule(staff, assistant, phone.number, day, channel="sms")
    run_worker(worker_env, local(day + timedelta(days=1), 10))
    assert "How do you feel" in phone.received()[-1]
    answer = phone.reply("2")
    assert "it's normal to have some spotting, cramps" in answer
    assert open_flags(assistant, reference) == []


def test_delivery_callbacks_must_be_signed_and_update_the_text(
    assistant, staff, worker_env, twilio_standin
) -> None:
    phone = Phone(assistant, twilio_standin, new_phone())
    reference = schedule(staff, assistant, phone.number, next_morning().date() + timedelta(days=9))
    run_worker(worker_env, next_morning())
    (posted,) = twilio_standin.state.posted_to(phone.number)
    url = posted["status_callback"]
    assert url == f"{assistant.rasa_url}/webhooks/twilio/status"
    validator = RequestValidator(assistant.env["TWILIO_AUTH_TOKEN"])

    def callback(status: str, signature: str | None = "sign", **extra: str) -> int:
        params = {
            "MessageSid": posted["sid"],
            "MessageStatus": status,
            "AccountSid": "AC" + "1" * 32,
            **extra,
        }
        headers = {}
        if signature == "sign":
            signature = validator.compute_signature(url, params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return requests.post(url, data=params, headers=headers, timeout=30).status_code

    def state() -> str:
        with session_scope(assistant.database_url) as session:
            request = outbox.request_by_reference(session, reference)
            rows = outbox.messages_of(session, request.id)
            return next(row.state for row in rows if row.kind == "confirmation")

    assert callback("delivered", signature=None) == 403
    assert callback("delivered", signature="bm90IGEgc2lnbmF0dXJl") == 403
    assert state() == "sent"
    assert callback("sent") == 204
    assert state() == "sent"
    assert callback("undelivered", ErrorCode="30003") == 204
    assert state() == "undelivered"
    assert [flag.reason for flag in open_flags(assistant, reference)] == ["delivery_failed"]


def test_two_worker_processes_at_once_send_nothing_twice(
    assistant, staff, worker_env, twilio_standin
) -> None:
    numbers = [new_phone() for _ in range(6)]
    day = next_morning().date() + timedelta(days=12)
    for number in numbers:
        schedule(staff, assistant, number, day)
    twilio_standin.state.delay_seconds = 0.3
    workers = [start_worker(worker_env, next_morning()) for _ in range(2)]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
    for number in numbers:
        assert len(twilio_standin.state.posted_to(number)) == 1


def test_a_worker_killed_mid_send_and_restarted_sends_the_text_once(
    assistant, staff, worker_env, twilio_standin
) -> None:
    phone = Phone(assistant, twilio_standin, new_phone())
    reference = schedule(staff, assistant, phone.number, next_morning().date() + timedelta(days=8))
    twilio_standin.state.delay_seconds = 60  # Twilio takes the text, then the worker dies waiting
    worker = start_worker(worker_env, next_morning())
    deadline = time.monotonic() + 60
    while not phone.received() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert phone.received(), "the worker never posted"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    twilio_standin.state.delay_seconds = 0

    # Restarted soon after: the claim is too fresh to be taken over.
    run_worker(worker_env, next_morning() + timedelta(seconds=30))
    # Restarted later: Twilio's message list shows the text went out; it is not sent again.
    run_worker(worker_env, next_morning() + timedelta(minutes=5))
    run_worker(worker_env, next_morning() + timedelta(minutes=10))
    assert len(phone.received()) == 1
    with session_scope(assistant.database_url) as session:
        request = outbox.request_by_reference(session, reference)
        confirmation = next(
            r for r in outbox.messages_of(session, request.id) if r.kind == "confirmation"
        )
        assert confirmation.state == "sent"
        assert confirmation.twilio_sid == twilio_standin.state.posted_to(phone.number)[0]["sid"]


def test_without_twilio_settings_the_worker_says_so_once_and_marks_each_text(
    assistant, staff, worker_env, twilio_standin
) -> None:
    env = {k: v for k, v in worker_env.items() if not k.startswith("TWILIO_ACCOUNT_SID")}
    phone = new_phone()
    reference = schedule(staff, assistant, phone, next_morning().date() + timedelta(days=11))
    result = run_worker(env, next_morning())
    assert result.stderr.count("SMS is not configured") == 1
    assert twilio_standin.state.posted_to(phone) == []
    detail = staff.page(f"/staff/requests/{reference}")
    assert "Not sent: SMS not configured." in detail


def test_a_reply_days_after_the_patient_last_wrote_starts_a_session_and_keeps_the_context(
    assistant, staff, worker_env, twilio_standin, monkeypatch
) -> None:
    import rasa_http

    phone = Phone(assistant, twilio_standin, new_phone())
    conversation_id = f"sms:{phone.number}"
    # An SMS patient who last wrote three days ago: Rasa's session has expired (60 minutes).
    monkeypatch.setenv("RASA_URL", assistant.rasa_url)
    monkeypatch.setenv("RASA_API_TOKEN", assistant.env["RASA_API_TOKEN"])
    three_days_ago = time.time() - 3 * 24 * 3600
    rasa_http.append_events(
        conversation_id,
        [
            {"event": "action", "name": "action_session_start", "timestamp": three_days_ago},
            {"event": "session_started", "timestamp": three_days_ago},
            {"event": "action", "name": "action_listen", "timestamp": three_days_ago},
            {
                "event": "user",
                "text": "what is an hsg",
                "parse_data": {
                    "intent": {"name": "what_is_hsg", "confidence": 1.0},
                    "entities": [],
                },
                "input_channel": "twilio",
                "timestamp": three_days_ago,
            },
        ],
    )
    reference = add_request(
        assistant.database_url,
        status="contacted",
        channel="sms",
        contact_method="text",
        phone_e164=phone.number,
        conversation_id=conversation_id,
    )
    page = f"/staff/requests/{reference}"
    day = next_morning().date() + timedelta(days=6)
    response = staff.post(
        page,
        f"{page}/status",
        {
            "expected_status": "contacted",
            "to_status": "scheduled",
            "appointment_date": day.isoformat(),
            "appointment_time": "11:00",
        },
    )
    assert response.status_code == 302
    run_worker(worker_env, local(day + timedelta(days=1), 10))
    assert "How do you feel" in phone.received()[-1]

    answer = phone.reply("3")
    # A new session: the disclaimer first, then the answer in the context of the check-in.
    assert "not medical advice" in answer
    assert "contact your doctor now" in answer and "911" in answer
    assert [flag.reason for flag in open_flags(assistant, reference)] == ["aftercare_concern"]


def test_stop_by_text_cancels_the_pending_texts_and_nothing_more_is_sent(
    assistant, staff, worker_env, twilio_standin
) -> None:
    phone = Phone(assistant, twilio_standin, new_phone())
    day = next_morning().date() + timedelta(days=10)
    reference = schedule(staff, assistant, phone.number, day)
    run_worker(worker_env, next_morning())
    assert len(phone.received()) == 1
    phone.reply("STOP")

    run_worker(worker_env, local(day - timedelta(days=3), 10))
    run_worker(worker_env, local(day + timedelta(days=1), 10))
    assert len(phone.received()) == 1
    detail = staff.page(f"/staff/requests/{reference}")
    assert detail.count("Cancelled: the patient replied STOP (opted out).") == 3
