"""The staff area in headless Chromium, against the real assistant: a request made in the chat
appears after a reload, is opened, marked contacted with a note, and exported.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.assistant_servers import (
    REPO_ROOT,
    Assistant,
    create_staff_account,
    new_sender,
    start_web_app,
    web_app_environment,
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
STAFF_NAME = "browser-tester"
STAFF_PASSWORD = secrets.token_urlsafe(16)
PATIENT_NAME = "Marisol Browserton"
PATIENT_PHONE_DIGITS = "2015550142"
REFERENCE = re.compile(r"HSG-[0-9A-Z]{6}")
# The patient's side of the request form (domain/appointment.yml), one message per question.
CHAT = [
    "I'd like to book an HSG",
    "/affirm",
    PATIENT_NAME,
    "03/04/1990",
    "201-555-0142",
    "skip",
    "10 days ago",
    "weekday mornings",
    "no",
    "not sure",
    "no",
    "skip",
    "call",
    "/affirm",
]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def web_app(assistant: Assistant, tmp_path: Path) -> Iterator[str]:
    """`python -m web.app` as `make run` starts it, on the assistant's two databases."""
    env = web_app_environment(assistant)
    create_staff_account(env, STAFF_NAME, STAFF_PASSWORD, role="admin")
    log_path = tmp_path / "web_app.log"
    with start_web_app(env, log_path) as url:
        yield url
    # Requests are logged with their paths: those must never carry patient details.
    log = log_path.read_text()
    assert PATIENT_NAME.split()[-1] not in log and PATIENT_PHONE_DIGITS not in log


def _request_through_the_chat(assistant: Assistant) -> str:
    sender = new_sender()
    replies = []
    for message in CHAT:
        replies.append(f"> {message}\n{assistant.reply_text(message, sender)}")
    transcript = "\n".join(replies)
    match = REFERENCE.search(replies[-1])
    assert match, f"the chat did not confirm a request with a reference:\n{transcript}"
    return match.group(0)


def test_request_from_the_chat_through_the_staff_area(
    chromium: Path, assistant: Assistant, web_app: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    visited: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.on("request", lambda request: visited.append(request.url))

            page.goto(f"{web_app}/staff/requests")
            expect(page).to_have_url(re.compile(r"/staff/login\?next="))
            page.get_by_label("Username").fill(STAFF_NAME)
            page.get_by_label("Password").fill(STAFF_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Appointment requests")).to_be_visible()
            expect(page.get_by_text(PATIENT_NAME)).to_have_count(0)

            reference = _request_through_the_chat(assistant)

            page.reload()
            row = page.get_by_role("row").filter(has_text=reference)
            expect(row).to_contain_text(PATIENT_NAME)
            expect(row).to_contain_text("New")
            expect(row).to_have_class("row-new")

            page.get_by_label("Search by name, phone or reference").fill(PATIENT_NAME)
            page.get_by_role("button", name="Search", exact=True).click()
            expect(page.get_by_role("link", name=re.compile(r"^HSG-"))).to_have_count(1)
            page.get_by_role("link", name=reference).click()

            expect(page.get_by_role("heading", name=f"Request {reference}")).to_be_visible()
            expect(page.get_by_role("heading", name="Check before booking")).to_be_visible()
            expect(page.get_by_text("Not sure – needs attention")).to_be_visible()
            conversation = page.locator(".transcript")
            expect(conversation).to_contain_text("I'd like to book an HSG")
            expect(conversation).to_contain_text(reference)

            page.get_by_label("New status").select_option("contacted")
            page.get_by_label("Note (optional)").fill("Called, left a voicemail")
            page.get_by_role("button", name="Update status").click()
            expect(page.get_by_text("Marked contacted.")).to_be_visible()
            history = page.locator(".history")
            expect(history).to_contain_text("New → Contacted")
            expect(history).to_contain_text("Called, left a voicemail")
            page.screenshot(path=str(ARTIFACTS / "staff-request-detail.png"), full_page=True)

            # The search is not kept between pages (never in a cookie): search again to export it.
            page.get_by_role("link", name="All requests").click()
            page.get_by_label("Search by name, phone or reference").fill(PATIENT_NAME)
            page.get_by_role("button", name="Search", exact=True).click()
            with page.expect_download() as download_info:
                page.get_by_role("button", name=re.compile(r"^Export CSV")).click()
            download = download_info.value
            assert re.fullmatch(r"hsg-requests-\d{8}-\d{4}\.csv", download.suggested_filename)
            content = Path(download.path()).read_bytes().decode("utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(content, newline="")))
            assert [(r["reference"], r["status"], r["full_name"]) for r in rows] == [
                (reference, "contacted", PATIENT_NAME)
            ]
            assert rows[0]["contrast_allergy"] == "unsure"

            page.goto(f"{web_app}/staff/audit?reference={reference}")
            audit_log = page.locator("table.audit")
            for action in ("Viewed request", "Changed status", "Exported"):
                expect(audit_log).to_contain_text(action)
        finally:
            browser.close()

    for url in visited:
        assert PATIENT_NAME.split()[-1] not in url and PATIENT_PHONE_DIGITS not in url, url
