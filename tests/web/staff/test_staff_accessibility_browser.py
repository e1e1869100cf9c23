"""The staff area's accessibility in headless Chromium: axe-core at WCAG 2.2 AA on every page, on a
desk screen and at 320 px, errors tied to their fields, and signing in and moving a request's
status by keyboard alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from scripts.assistant_servers import (
    Assistant,
    create_staff_account,
    new_sender,
    start_web_app,
    web_app_environment,
)
from tests.appointments.staff_factories import add_request
from tests.web.accessibility import press_tab_until

STAFF_NAME = "a11y-tester"
STAFF_PASSWORD = secrets.token_urlsafe(16)
# The pages axe-core checks, signed in as an administrator; {reference} is a request with a
# conversation and a screening answer that needs attention. One line per page.
STAFF_PAGES = {
    "sign-in": "/staff/login",
    "request list": "/staff/requests",
    "request list, filtered": "/staff/requests?status=new&attention=y",
    "request detail": "/staff/requests/{reference}",
    "audit log": "/staff/audit",
    "inbox": "/staff/inbox",
    "insights": "/staff/insights",
}
SCREENS = {"desk": {"width": 1280, "height": 900}, "phone-320px": {"width": 320, "height": 640}}

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def staff_site(assistant: Assistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The web app on the assistant's databases, an admin account, and one request whose
    conversation really happened in the assistant."""
    sender = new_sender()
    assert "cramping" in assistant.reply_text("does an hsg hurt", sender)
    reference = add_request(
        assistant.database_url,
        conversation_id=assistant.conversation_id(sender),
        contrast_allergy="unsure",
    )
    env = web_app_environment(assistant)
    create_staff_account(env, STAFF_NAME, STAFF_PASSWORD, role="admin")
    log_path = tmp_path_factory.mktemp("staff-a11y") / "web_app.log"
    with start_web_app(env, log_path) as url:
        yield {"url": url, "reference": reference}


@pytest.fixture(scope="module")
def signed_in(browser, staff_site: dict) -> dict:
    """The cookies of one sign-in, shared by the page checks (sign-ins per address are limited)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{staff_site['url']}/staff/login")
    page.get_by_label("Username").fill(STAFF_NAME)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Appointment requests").wait_for()
    state = context.storage_state()
    context.close()
    return state


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("name", STAFF_PAGES)
def test_every_staff_page_passes_axe(
    browser, staff_site: dict, signed_in: dict, axe, name: str, screen: str
) -> None:
    context = browser.new_context(
        viewport=SCREENS[screen], storage_state=None if name == "sign-in" else signed_in
    )
    page = context.new_page()
    try:
        page.goto(staff_site["url"] + STAFF_PAGES[name].format(reference=staff_site["reference"]))
        axe(page, f"{name} ({screen})")
        # Reflow: the page itself never scrolls sideways (wide tables scroll in their own region).
        assert page.evaluate("document.documentElement.scrollWidth") <= SCREENS[screen]["width"]
    finally:
        context.close()


def test_form_errors_are_tied_to_their_fields_and_focused(
    browser, staff_site: dict, signed_in: dict, axe
) -> None:
    context = browser.new_context(viewport=SCREENS["desk"])
    page = context.new_page()
    try:
        page.goto(f"{staff_site['url']}/staff/login")
        page.get_by_label("Username").fill(STAFF_NAME)
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        error = page.get_by_role("alert")
        error.wait_for()
        for field in ("Username", "Password"):
            control = page.get_by_label(field)
            assert control.get_attribute("aria-invalid") == "true"
            assert control.get_attribute("aria-describedby") == error.get_attribute("id")
        axe(page, "sign-in with an error")

        context.add_cookies(signed_in["cookies"])
        page.goto(
            f"{staff_site['url']}/staff/requests?created_from=2026-03-02&created_to=2026-03-01"
        )
        field = page.get_by_label("Received to")
        message = page.locator(f"#{field.get_attribute('aria-describedby')}")
        assert "end date is before the start date" in message.inner_text()
        # Sent back with an error, the page starts at the field to fix (its error is read out).
        assert page.evaluate("document.activeElement.id") == field.get_attribute("id")
        axe(page, "request list with a filter error")
    finally:
        context.close()


def test_signing_in_and_moving_a_status_by_keyboard_alone(browser, staff_site: dict) -> None:
    context = browser.new_context(viewport=SCREENS["desk"])
    page = context.new_page()
    reference = staff_site["reference"]
    try:
        page.goto(f"{staff_site['url']}/staff/requests")
        # The sign-in page starts in the username field.
        assert page.evaluate("document.activeElement.name") == "username"
        page.keyboard.type(STAFF_NAME)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.type") == "password"
        # Pasting the password is allowed (WCAG 3.3.8): nothing cancels the paste event.
        refused = page.evaluate(
            """password => {
                const data = new DataTransfer();
                data.setData('text/plain', password);
                const paste = new ClipboardEvent('paste', {clipboardData: data, cancelable: true,
                                                            bubbles: true});
                return !document.activeElement.dispatchEvent(paste);
            }""",
            STAFF_PASSWORD,
        )
        assert not refused
        assert page.evaluate("document.activeElement.autocomplete") == "current-password"
        page.keyboard.type(STAFF_PASSWORD)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Appointment requests").wait_for()

        press_tab_until(page, f"element => element.textContent.trim() === '{reference}'")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name=f"Request {reference}").wait_for()

        press_tab_until(page, "element => element.matches('select[name=to_status]')")
        page.keyboard.press("ArrowDown")
        chosen = page.evaluate("document.activeElement.value")
        assert chosen and chosen != "new"
        press_tab_until(page, "element => element.matches('textarea[name=note]')")
        page.keyboard.type("Called by keyboard")
        press_tab_until(page, "element => element.textContent.trim() === 'Update status'")
        page.keyboard.press("Enter")

        status = page.get_by_role("status")
        status.wait_for()
        assert f"Marked {chosen}" in status.inner_text()
        assert "Called by keyboard" in page.locator(".history").inner_text()
    finally:
        context.close()
