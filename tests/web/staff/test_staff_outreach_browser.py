"""Reminders and check-ins as a new user meets them, in headless Chromium against the real
assistant: a request made in the chat is scheduled by staff, the real worker (clock moved forward
with --now) texts the patient's phone (a local stand-in for Twilio) at the right local times, the
patient's replies are answered in context, and the flags appear in the staff list.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from twilio.request_validator import RequestValidator

from scripts.assistant_servers import (
    REPO_ROOT,
    VENV_BIN,
    Assistant,
    create_staff_account,
    new_sender,
    start_web_app,
    web_app_environment,
)
from scripts.twilio_standin import StandInServer

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
STAFF_NAME = "outreach-browser"
STAFF_PASSWORD = secrets.token_urlsafe(16)
NEW_YORK = ZoneInfo("America/New_York")
PATIENT_NAME = "Odalys Textwell"
# A number no other test uses (the SMS tests draw from 201-555-01xx).
PATIENT_PHONE = "+12125550188"
REFERENCE = re.compile(r"HSG-[0-9A-Z]{6}")
CHAT = [
    "I'd like to book an HSG",
    "/affirm",
    PATIENT_NAME,
    "03/04/1990",
    "212-555-0188",
    "skip",
    "10 days ago",
    "weekday mornings",
    "no",
    "no",
    "no",
    "skip",
    "text",
    "/affirm",
]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def web_app(assistant: Assistant, tmp_path: Path) -> Iterator[str]:
    """`python -m web.app` as `make run` starts it, on the assistant's databases, clinic in New York."""
    env = web_app_environment(assistant, CLINIC_TIMEZONE="America/New_York")
    create_staff_account(env, STAFF_NAME, STAFF_PASSWORD)
    log_path = tmp_path / "web_app.log"
    with start_web_app(env, log_path) as url:
        yield url
    log = log_path.read_text()
    assert PATIENT_NAME.split()[-1] not in log and PATIENT_PHONE[2:] not in log


def _worker(assistant: Assistant, standin: StandInServer, now: datetime) -> None:
    env = dict(assistant.env)
    env.update(
        RASA_URL=assistant.rasa_url,
        TWILIO_ACCOUNT_SID="AC" + "2" * 32,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_API_BASE_URL=standin.url,
        CLINIC_TIMEZONE="America/New_York",
    )
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "outreach.worker", "--once", "--now", now.isoformat()],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _reply(assistant: Assistant, body: str) -> str:
    url = f"{assistant.rasa_url}/webhooks/twilio/webhook"
    params = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": PATIENT_PHONE,
        "To": "+15005550006",
        "Body": body,
    }
    signature = RequestValidator(assistant.env["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)
    response = requests.post(
        url, data=params, headers={"X-Twilio-Signature": signature}, timeout=60
    )
    assert response.status_code == 200
    return response.text


def test_a_chat_request_scheduled_by_staff_is_followed_by_text_until_the_day_after(
    chromium: Path, assistant: Assistant, web_app: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    sender = new_sender()
    replies = [assistant.reply_text(message, sender) for message in CHAT]
    match = REFERENCE.search(replies[-1])
    assert match, "\n".join(replies)
    reference = match.group(0)
    first = datetime.now(NEW_YORK).date() + timedelta(days=1)
    day = first + timedelta(days=7)

    def at(date_, hour: int) -> datetime:
        return datetime(date_.year, date_.month, date_.day, hour, tzinfo=NEW_YORK)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with StandInServer() as phone, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{web_app}/staff/login")
            page.get_by_label("Username").fill(STAFF_NAME)
            page.get_by_label("Password").fill(STAFF_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.goto(f"{web_app}/staff/requests/{reference}")
            page.get_by_label("New status").select_option("contacted")
            page.get_by_role("button", name="Update status").click()
            expect(page.get_by_text("Marked contacted.")).to_be_visible()

            page.get_by_label("New status").select_option("scheduled")
            page.get_by_label("Appointment date (for Scheduled)").fill(day.isoformat())
            page.get_by_label("Appointment time (for Scheduled)").fill("09:30")
            page.get_by_role("button", name="Update status").click()
            expect(page.get_by_text("Marked scheduled.")).to_be_visible()
            texts = page.locator("table.texts")
            expect(texts.locator("tbody tr")).to_have_count(4)
            expect(texts).to_contain_text("Planned")

            # The clock moves forward: each text arrives at its local time.
            _worker(assistant, phone, at(first, 10))
            _worker(assistant, phone, at(day - timedelta(days=3), 10))
            _worker(assistant, phone, at(day - timedelta(days=1), 12))
            bodies = [m["body"] for m in phone.state.posted_to(PATIENT_PHONE)]
            assert len(bodies) == 3
            assert "your HSG is booked for" in bodies[0] and "STOP to opt out" in bodies[0]
            assert "Has your period come as expected?" in bodies[1]
            assert "pain medicine about an hour before" in bodies[2]
            assert "Thank you" in _reply(assistant, "yes")  # to the cycle check: no flag

            _worker(assistant, phone, at(day + timedelta(days=1), 10))
            assert "How do you feel" in phone.state.posted_to(PATIENT_PHONE)[-1]["body"]
            answer = _reply(assistant, "3")
            assert "contact your doctor now" in answer and "911" in answer

            page.goto(f"{web_app}/staff/requests")
            expect(page.locator(".flagged-count")).to_contain_text(re.compile(r"[1-9]"))
            page.get_by_label("Only flagged requests").check()
            page.get_by_role("button", name="Apply filters").click()
            page.get_by_role("link", name=reference).click()
            expect(page.get_by_role("heading", name="Flagged: needs staff")).to_be_visible()
            expect(page.locator(".flags")).to_contain_text("Aftercare concern")
            expect(page.locator("table.texts")).to_contain_text("Sent")
            page.screenshot(path=str(ARTIFACTS / "staff-outreach-request.png"), full_page=True)
            page.get_by_role("button", name="Mark flags as dealt with").click()
            expect(page.get_by_text("1 flag(s) marked as dealt with.")).to_be_visible()
        finally:
            browser.close()
