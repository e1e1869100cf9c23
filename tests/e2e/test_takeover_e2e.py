"""Staff take over a conversation, with the real servers: Rasa, the action server, the web app.

In headless Chromium, a patient on the clinic page asks for a person (one browser context); a
member of staff (another context) sees her in the inbox without reloading, takes over, writes,
sees her reply live, and hands back; the assistant then answers her again. A second member of
staff sees who holds the conversation and cannot take it. The same over SMS, with signed
webhook posts in and the local stand-in for Twilio's Messages API out (scripts/twilio_standin.py).
Over HTTP: while held, the assistant sends nothing, also after a restart of the Rasa server and
in a new session after expiry.
Without Chromium the browser test is skipped, except in CI (env CI set), where it fails.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from appointments import handoffs
from appointments.database import dispose_engines, session_scope
from appointments.models import StaffAuditEvent
from appointments.staff_accounts import create_staff_user
from scripts.assistant_servers import (
    REPO_ROOT,
    Assistant,
    free_port,
    launch_rasa_server,
    new_sender,
    start_assistant,
    start_web_app,
    stop_processes,
    wait_until_up,
)
from scripts.twilio_standin import StandInServer
from tests.browser_fixtures import skip_or_fail
from web import clinic_page

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
TIMEOUT_MS = 30_000
STAFF_PASSWORD = secrets.token_urlsafe(16)
HOLDER, OTHER = "dana", "eli"
STAFF_MESSAGE = "Hi, this is Dana from the clinic. How can I help?"
PATIENT_REPLY = "my appointment letter says 9am is that right"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def twilio_standin() -> Iterator[StandInServer]:
    with StandInServer() as server:
        yield server


@pytest.fixture(scope="module")
def staffed_assistant(
    tmp_path_factory: pytest.TempPathFactory, twilio_standin: StandInServer
) -> Iterator[Assistant]:
    """The assistant with staff on duty at every hour, a web origin of its own, and Twilio's
    API pointed at the local stand-in."""
    workdir = tmp_path_factory.mktemp("takeover")
    extra = {
        "CLINIC_STAFFED_HOURS": "Mon-Sun 00:00-23:59",
        "WEB_ORIGIN": f"http://localhost:{free_port()}",
        "RASA_API_TOKEN": secrets.token_hex(16),
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": twilio_standin.url,
    }
    with start_assistant(workdir, f"sqlite:///{workdir / 'appointments.db'}", extra) as running:
        for name in (HOLDER, OTHER):
            create_staff_user(name, STAFF_PASSWORD, role="staff", url=running.database_url)
        try:
            yield running
        finally:
            # A server restarted by a test is not among those start_assistant stops.
            stop_processes(list(running.processes.values()))
    dispose_engines()


@pytest.fixture(scope="module")
def web_url(staffed_assistant: Assistant, tmp_path_factory) -> Iterator[str]:
    """`python -m web.app` on the origin Rasa allows, reaching Rasa's API with its token."""
    if not clinic_page.WIDGET_BUNDLE.exists():
        skip_or_fail(f"{clinic_page.WIDGET_BUNDLE} is missing: `make setup` installs the widget")
    origin = staffed_assistant.env["WEB_ORIGIN"]
    log_path = tmp_path_factory.mktemp("takeover-web") / "web_app.log"
    env = {
        **staffed_assistant.env,
        "RASA_PUBLIC_URL": staffed_assistant.rasa_url,
        "RASA_URL": staffed_assistant.rasa_url,
        "TRACKER_DATABASE_URL": staffed_assistant.tracker_database_url,
        "FLASK_SECRET_KEY": secrets.token_hex(32),
    }
    with start_web_app(env, log_path, port=urlsplit(origin).port):
        yield origin
    # The web app logs request paths: no patient words, no conversation ids.
    log = log_path.read_text()
    assert PATIENT_REPLY not in log and "web:" not in log


def _responses(page) -> list[str]:
    return page.locator(".rw-response").all_inner_texts()


def _wait_for_reply(page, since: int, expected: str) -> str:
    page.wait_for_function(
        """([since, expected]) => Array.from(document.querySelectorAll('.rw-response'))
            .slice(since).some(e => e.innerText.toLowerCase().includes(expected))""",
        arg=[since, expected.lower()],
        timeout=TIMEOUT_MS,
    )
    return "\n".join(_responses(page)[since:])


def _say(page, text: str) -> int:
    since = len(_responses(page))
    page.locator(".rw-new-message").fill(text)
    page.keyboard.press("Enter")
    return since


def _sign_in(context, web_url: str, username: str):
    page = context.new_page()
    page.goto(f"{web_url}/staff/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_url}/staff/requests**")
    return page


def _audit(database_url: str) -> list[tuple[str, str | None, str]]:
    with session_scope(database_url) as session:
        rows = session.scalars(select(StaffAuditEvent).order_by(StaffAuditEvent.id)).all()
        return [(row.action, row.staff_username, row.detail) for row in rows]


def test_a_person_answers_a_web_patient_from_the_inbox_and_hands_her_back(
    browser, web_url: str, staffed_assistant: Assistant, request
) -> None:
    patient_context = browser.new_context(viewport={"width": 375, "height": 740})
    staff_context, other_context = browser.new_context(), browser.new_context()
    staff = _sign_in(staff_context, web_url, HOLDER)
    try:
        staff.goto(f"{web_url}/staff/inbox")
        assert staff.locator("#inbox-rows tr").count() == 0

        patient = patient_context.new_page()
        patient.goto(f"{web_url}/")
        patient.locator("button.rw-launcher").click()
        _wait_for_reply(patient, 0, "What would you like to know")
        since = len(_responses(patient))
        patient.locator(".rw-reply", has_text="Talk to a person").last.click()
        answer = _wait_for_reply(patient, since, "member of our team")
        assert "911 in an emergency" in answer

        # The inbox shows her without a reload, with the reason; the count in the navigation too.
        row = staff.locator("#inbox-rows tr", has_text="Asked for a person")
        row.wait_for(timeout=TIMEOUT_MS)
        assert "web chat" in row.inner_text() and "Waiting" in row.inner_text()
        staff.wait_for_function(
            "document.getElementById('inbox-count').textContent === '1'", timeout=TIMEOUT_MS
        )
        row.locator("a").click()
        staff.click("#take-over")
        staff.locator("#send-message").wait_for(timeout=TIMEOUT_MS)
        joined = _wait_for_reply(patient, since, "has joined the chat")
        assert "talking with a person" in joined

        # A second member of staff sees who holds it, and cannot take it.
        other = _sign_in(other_context, web_url, OTHER)
        other.goto(staff.url)
        assert (
            f"{HOLDER} is answering this conversation" in other.locator("#hold-status").inner_text()
        )
        assert other.locator("#take-over").count() == 0
        assert other.locator("#send-message").count() == 0

        since = len(_responses(patient))
        staff.fill("#staff-text", STAFF_MESSAGE)
        staff.click("#send-message")
        _wait_for_reply(patient, since, "this is Dana from the clinic")

        # Her reply appears on the staff page by itself, and the assistant stays silent.
        before_reply = len(_responses(patient))
        _say(patient, PATIENT_REPLY)
        staff.locator("#live-transcript .message-patient", has_text=PATIENT_REPLY).wait_for(
            timeout=TIMEOUT_MS
        )
        time.sleep(3)
        assert len(_responses(patient)) == before_reply, _responses(patient)[before_reply:]

        since = len(_responses(patient))
        staff.click("#hand-back")
        staff.wait_for_url(f"{web_url}/staff/inbox")
        _wait_for_reply(patient, since, "chat bot again")
        assert staff.locator("#inbox-rows tr").count() == 0

        # The assistant answers the next question.
        since = _say(patient, "does an hsg hurt")
        assert "cramping" in _wait_for_reply(patient, since, "cramping")
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for name, context in (("patient", patient_context), ("staff", staff_context)):
            if context.pages:
                context.pages[-1].screenshot(path=str(ARTIFACTS / f"takeover-{name}-last.png"))
        for context in (patient_context, staff_context, other_context):
            context.close()

    audit = _audit(staffed_assistant.database_url)
    actions = [(action, user) for action, user, _ in audit]
    for expected in [
        ("view_inbox", HOLDER),
        ("view_conversation", HOLDER),
        ("take_over", HOLDER),
        ("view_conversation", OTHER),
        ("staff_message", HOLDER),
        ("hand_back", HOLDER),
    ]:
        assert expected in actions, expected
    message_events = [detail for action, _, detail in audit if action == "staff_message"]
    assert message_events and STAFF_MESSAGE not in " ".join(message_events)


# --- Held means silent: over HTTP, across a restart and a new session -------------------------


@pytest.fixture
def rasa_api(staffed_assistant: Assistant, monkeypatch: pytest.MonkeyPatch) -> Assistant:
    """This process calls Rasa's API as the web app does (handoff.takeover)."""
    monkeypatch.setenv("RASA_URL", staffed_assistant.rasa_url)
    monkeypatch.setenv("RASA_API_TOKEN", staffed_assistant.env["RASA_API_TOKEN"])
    return staffed_assistant


def _restart_rasa(assistant: Assistant, before_start=None) -> None:
    """Stops the Rasa server and starts it again on the same port and tracker store."""
    stop_processes([assistant.processes["rasa_server"]])
    if before_start:
        before_start()
    port = urlsplit(assistant.rasa_url).port
    log_path = assistant.workdir / "rasa_server_restarted.log"
    process = launch_rasa_server(port, assistant.workdir / "endpoints.yml", assistant.env, log_path)
    assistant.processes["rasa_server"] = process
    wait_until_up(f"{assistant.rasa_url}/", process, log_path, timeout=300)


def _backdate(tracker_url: str, conversation_id: str, seconds: float) -> None:
    """Moves the conversation's events into the past, as if she had been silent that long."""
    path = tracker_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT id, timestamp, data FROM events WHERE sender_id = ?", (conversation_id,)
        ).fetchall()
        for event_id, timestamp, data in rows:
            event = json.loads(data)
            event["timestamp"] = event["timestamp"] - seconds
            connection.execute(
                "UPDATE events SET timestamp = ?, data = ? WHERE id = ?",
                (timestamp - seconds, json.dumps(event), event_id),
            )


def test_a_held_conversation_gets_nothing_from_the_assistant_even_after_a_restart(
    rasa_api: Assistant,
) -> None:
    from handoff import takeover

    sender = new_sender()
    conversation_id = rasa_api.conversation_id(sender)
    assert "911" in rasa_api.reply_text("/human_handoff", sender)
    with session_scope(rasa_api.database_url) as session:
        handoff_id = handoffs.open_handoff(session, conversation_id).id
    takeover.take_over(handoff_id, HOLDER, url=rasa_api.database_url)
    assert rasa_api.send("does an hsg hurt", sender) == []
    assert rasa_api.send("i have a fever of 102", sender) == []
    # Typed, "/restart" would be the one message Rasa acts on while paused (it forgets the
    # conversation, pause included): it reaches Rasa as the word, and the hold stands.
    assert rasa_api.send("/restart", sender) == []
    assert rasa_api.send("does an hsg hurt", sender) == []

    _restart_rasa(rasa_api)
    assert rasa_api.send("does an hsg hurt", sender) == []

    # Two hours of silence: a new session starts with her next message, and stays paused.
    _restart_rasa(
        rasa_api,
        before_start=lambda: _backdate(rasa_api.tracker_database_url, conversation_id, 2 * 3600),
    )
    assert rasa_api.send("hello? anyone there", sender) == []
    tracker = requests.get(
        f"{rasa_api.rasa_url}/conversations/{conversation_id}/tracker",
        params={"token": rasa_api.env["RASA_API_TOKEN"]},
        timeout=30,
    ).json()
    names = [event["event"] for event in tracker["events"]]
    assert "session_started" in names and tracker["paused"] is True

    takeover.hand_back(handoff_id, HOLDER, url=rasa_api.database_url)
    assert "cramping" in rasa_api.reply_text("does an hsg hurt", sender)


def test_an_idle_hold_returns_to_the_inbox_and_the_assistant_answers_meanwhile(
    rasa_api: Assistant,
) -> None:
    from datetime import timedelta

    from appointments.models import utc_now
    from handoff import takeover

    sender = new_sender()
    conversation_id = rasa_api.conversation_id(sender)
    rasa_api.send("/human_handoff", sender)
    with session_scope(rasa_api.database_url) as session:
        handoff_id = handoffs.open_handoff(session, conversation_id).id
    takeover.take_over(handoff_id, HOLDER, url=rasa_api.database_url)
    idle = timedelta(minutes=15)
    taken = utc_now()

    assert (
        takeover.release_idle_holds(
            idle, now=taken + timedelta(minutes=14), url=rasa_api.database_url
        )
        == 0
    )
    assert rasa_api.send("are you still there", sender) == []
    assert (
        takeover.release_idle_holds(
            idle, now=taken + timedelta(minutes=16), url=rasa_api.database_url
        )
        == 1
    )

    with session_scope(rasa_api.database_url) as session:
        row = handoffs.get_handoff(session, handoff_id)
        assert row.status == handoffs.WAITING and row.held_by is None
    tracker = requests.get(
        f"{rasa_api.rasa_url}/conversations/{conversation_id}/tracker",
        params={"token": rasa_api.env["RASA_API_TOKEN"]},
        timeout=30,
    ).json()
    assert tracker["paused"] is False
    assert any("had to step away" in (event.get("text") or "") for event in tracker["events"])
    assert "cramping" in rasa_api.reply_text("does an hsg hurt", sender)
    released = [e for e in _audit(rasa_api.database_url) if e[0] == "hold_released"]
    assert (
        released and released[-1][1] is None and f"held by {HOLDER}, idle 15 min" in released[-1][2]
    )
    # Back in the inbox: another member of staff can take it now.
    assert takeover.take_over(handoff_id, OTHER, url=rasa_api.database_url).held_by == OTHER


# --- The same over SMS ------------------------------------------------------------------------

PATIENT_PHONE = "+12015550163"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def _text_in(assistant: Assistant, body: str) -> str:
    """Posts an SMS as Twilio does (signed); returns the TwiML reply's texts."""
    from twilio.request_validator import RequestValidator

    url = f"{assistant.rasa_url}/webhooks/twilio/webhook"
    params = {
        "From": PATIENT_PHONE,
        "To": "+15005550006",
        "Body": body,
        "MessageSid": "SM" + secrets.token_hex(16),
    }
    signature = RequestValidator(assistant.env["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)
    reply = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=60)
    reply.raise_for_status()
    return "\n".join(re.findall(r"<Message>(.*?)</Message>", reply.text, flags=re.S))


def _texts_out(standin: StandInServer) -> list[str]:
    return [message["body"] for message in standin.state.posted_to(PATIENT_PHONE)]


def _wait_for_text(standin: StandInServer, count: int, expected: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        texts = _texts_out(standin)
        if len(texts) > count and expected in "\n".join(texts[count:]):
            return "\n".join(texts[count:])
        time.sleep(0.2)
    raise AssertionError(f"no text with {expected!r}: {_texts_out(standin)[count:]}")


class StaffBrowser:
    """A member of staff's signed-in session against the web app, posting its forms' CSRF token."""

    def __init__(self, web_url: str, username: str) -> None:
        self.web_url = web_url
        self.http = requests.Session()
        self.post(
            "/staff/login", "/staff/login", {"username": username, "password": STAFF_PASSWORD}
        )

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.web_url}{path}", timeout=30)

    def post(self, page: str, action: str, data: dict | None = None) -> requests.Response:
        token = CSRF.search(self.get(page).text).group(1)
        return self.http.post(
            f"{self.web_url}{action}", data={**(data or {}), "csrf_token": token}, timeout=60
        )


def test_a_person_answers_an_sms_patient_from_the_inbox_and_hands_her_back(
    web_url: str, staffed_assistant: Assistant, twilio_standin: StandInServer
) -> None:
    assert "Talk to a person" in _text_in(staffed_assistant, "hi")
    # The menu's numbered choices: 6 is "Talk to a person".
    assert "member of our team to text you" in _text_in(staffed_assistant, "6")

    staff = StaffBrowser(web_url, HOLDER)
    rows = staff.get("/staff/inbox.json").json()["conversations"]
    (row,) = [row for row in rows if row["channel"] == "SMS" and row["status"] == "waiting"]
    assert row["reason"] == "Asked for a person" and PATIENT_PHONE not in str(rows)
    page = row["url"]

    sent = len(_texts_out(twilio_standin))
    staff.post(page, f"{page}/take-over")
    assert "You are texting with a person" in _wait_for_text(twilio_standin, sent, "here now")

    sent = len(_texts_out(twilio_standin))
    staff.post(page, f"{page}/message", {"text": STAFF_MESSAGE})
    _wait_for_text(twilio_standin, sent, "this is Dana from the clinic")

    # Her reply gets no answer from the assistant; the staff page sees it.
    assert _text_in(staffed_assistant, PATIENT_REPLY) == ""
    polled = staff.get(f"{page}/messages.json").json()
    assert PATIENT_REPLY in [m["text"] for m in polled["messages"] if m["speaker"] == "patient"]
    assert polled["holds_it"] is True

    sent = len(_texts_out(twilio_standin))
    staff.post(page, f"{page}/hand-back")
    assert "911 in an emergency" in _wait_for_text(twilio_standin, sent, "chat bot again")
    assert "cramping" in _text_in(staffed_assistant, "does an hsg hurt")

    actions = [(a, u) for a, u, _ in _audit(staffed_assistant.database_url)]
    assert actions.count(("take_over", HOLDER)) >= 1 and ("hand_back", HOLDER) in actions
