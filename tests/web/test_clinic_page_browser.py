"""The clinic page in a real browser: headless Chromium (Debian's package) on a 375 px phone screen.

Without Chromium the tests are skipped, except in CI (env CI set), where they fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List
from urllib.parse import urlsplit

import pytest

from appointments.requests import get_appointment_request
from scripts.assistant_servers import wait_until_up
from tests.browser_fixtures import skip_or_fail
from tests.web.accessibility import press_tab_until
from web import clinic_page

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
PHONE_SCREEN = {"width": 375, "height": 740}
LOCAL_HOSTS = {"localhost", "127.0.0.1"}
REPLY_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def web_url(assistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The web app on the origin the test Rasa server allows, like `make run` starts it."""
    if not clinic_page.WIDGET_BUNDLE.exists():
        skip_or_fail(f"{clinic_page.WIDGET_BUNDLE} is missing: `make setup` installs the widget")
    origin = assistant.env["WEB_ORIGIN"]
    log_path = tmp_path_factory.mktemp("web") / "web_app.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "web.app"] + ["--port", str(urlsplit(origin).port)],
        cwd=REPO_ROOT,
        env={**assistant.env, "RASA_PUBLIC_URL": assistant.rasa_url},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(f"{origin}/", process, log_path, timeout=60)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=20)


class PhonePage:
    """A fresh visitor on a phone-sized screen, with every request and console error recorded."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True)
        self.requested_urls: List[str] = []
        self.console_errors: List[str] = []
        self.context.on("request", lambda request: self.requested_urls.append(request.url))
        self.page = self.context.new_page()
        # WebSocket connections are not "request" events.
        self.page.on("websocket", lambda socket: self.requested_urls.append(socket.url))
        self.page.on(
            "console",
            lambda message: message.type == "error" and self.console_errors.append(message.text),
        )
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.goto(url)

    def open_chat_by_keyboard(self) -> None:
        launcher = self.page.locator("button.rw-launcher")
        launcher.wait_for(timeout=REPLY_TIMEOUT_MS)
        assert launcher.get_attribute("aria-label")
        launcher.focus()
        self.page.keyboard.press("Enter")

    def response_count(self) -> int:
        return self.page.locator(".rw-response").count()

    def wait_for_reply(self, since: int, expected: str) -> str:
        """Waits for a bot message after the first ``since`` ones containing ``expected``."""
        self.page.wait_for_function(
            """([since, expected]) => Array.from(document.querySelectorAll('.rw-response'))
                .slice(since).some(e => e.innerText.toLowerCase().includes(expected))""",
            arg=[since, expected.lower()],
            timeout=REPLY_TIMEOUT_MS,
        )
        return "\n".join(self.page.locator(".rw-response").all_inner_texts()[since:])

    def type_message(self, text: str, expected: str) -> str:
        since = self.response_count()
        box = self.page.locator(".rw-new-message")
        box.focus()
        self.page.keyboard.type(text)
        self.page.keyboard.press("Enter")
        return self.wait_for_reply(since, expected)

    def choose(self, title: str, expected: str) -> str:
        """Picks a quick reply by keyboard: focus it (it is tabbable) and press Enter."""
        since = self.response_count()
        reply = self.page.locator(".rw-reply", has_text=re.compile(f"^{re.escape(title)}$")).last
        assert reply.get_attribute("tabindex") == "0"
        assert reply.get_attribute("role") == "button"
        reply.focus()
        self.page.keyboard.press("Enter")
        return self.wait_for_reply(since, expected)

    def assert_stayed_on_this_machine(self) -> None:
        hosts = {
            urlsplit(url).hostname
            for url in self.requested_urls
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        }
        assert hosts <= LOCAL_HOSTS, f"third-party requests: {sorted(hosts - LOCAL_HOSTS)}"
        assert not self.console_errors, self.console_errors

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def phone(browser, web_url: str, request: pytest.FixtureRequest) -> Iterator[PhonePage]:
    page = PhonePage(browser, f"{web_url}/")
    yield page
    # The last screen of every test, to see where a failing one stopped.
    ARTIFACTS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"))
    page.close()


def test_the_widget_answers_on_a_phone_and_keeps_the_conversation_on_reload(
    phone: PhonePage,
) -> None:
    page = phone.page
    assert page.locator(".emergency-notice").is_visible()
    # Nothing on the page is wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SCREEN["width"]

    phone.open_chat_by_keyboard()
    phone.wait_for_reply(0, "What would you like to know")
    assert page.locator(".rw-reply", has_text="Does it hurt?").last.is_visible()

    answer = phone.type_message("does an hsg hurt", "cramping")
    # The answer's line breaks are kept, not run together.
    assert "cramping, a lot like period cramps" in answer
    pain_paragraph = page.locator(".rw-response", has_text="cramping").last
    assert pain_paragraph.inner_text().count("\n") >= 2

    widget = page.locator(".rw-conversation-container").bounding_box()
    assert widget["x"] >= 0 and widget["x"] + widget["width"] <= PHONE_SCREEN["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "clinic-page-widget-375px.png"))

    page.reload()
    # The conversation is still there, and the assistant still answers in it.
    page.locator(".rw-response", has_text="cramping").last.wait_for(timeout=REPLY_TIMEOUT_MS)
    if not page.locator(".rw-new-message").is_visible():
        phone.open_chat_by_keyboard()
    phone.type_message("how long does an hsg take", "minutes")

    phone.assert_stayed_on_this_machine()


def test_tell_me_more_under_an_answer_gives_the_longer_one(phone: PhonePage) -> None:
    phone.open_chat_by_keyboard()
    phone.wait_for_reply(0, "What would you like to know")
    phone.type_message("does an hsg hurt", "cramping")
    detail = phone.choose("Tell me more", "Pap smear")
    assert "cramps ease within an hour or two" in detail
    phone.assert_stayed_on_this_machine()


def test_an_appointment_request_through_the_widget_is_stored(assistant, phone: PhonePage) -> None:
    """Walks the form in domain/appointment.yml with the keyboard, buttons included."""
    phone.open_chat_by_keyboard()
    phone.wait_for_reply(0, "What would you like to know")

    phone.choose("Request an appointment", "Shall we go ahead?")
    phone.choose("Yes, go ahead", "full name")
    phone.type_message("Ana Ruiz", "date of birth")
    phone.type_message("03/04/1990", "mobile number")
    phone.type_message("201-555-0147", "email")
    phone.choose("Skip", "last period")
    phone.choose("I don't have periods", "days and times")
    phone.type_message("weekday mornings", "could you be pregnant")
    phone.choose("No", "contrast dye")
    phone.choose("No", "pelvic infection")
    phone.choose("No", "doctor")
    phone.choose("Skip", "contact you")
    summary = phone.choose("Call me", "Is everything right?")
    assert "Ana Ruiz" in summary
    saved = phone.choose("Confirm", "your request is saved")

    reference = re.search(r"HSG-[0-9A-Z]{6}", saved).group(0)
    stored = get_appointment_request(reference, url=assistant.database_url)
    assert stored is not None
    assert stored.channel == "web"
    assert stored.full_name == "Ana Ruiz"
    assert stored.phone_e164 == "+12015550147"
    assert stored.contact_method == "call"
    phone.assert_stayed_on_this_machine()


def stored_session_id(phone: PhonePage) -> str:
    """The conversation token rasa-webchat keeps in the tab's storage."""
    stored = phone.page.evaluate("window.sessionStorage.getItem('chat_session')")
    return json.loads(stored)["session_id"]


def test_a_second_browser_cannot_take_over_a_web_conversation(
    browser, web_url: str, phone: PhonePage, tracker_event_count
) -> None:
    phone.open_chat_by_keyboard()
    phone.wait_for_reply(0, "What would you like to know")
    phone.type_message("does an hsg hurt", "cramping")
    token = stored_session_id(phone)
    her_conversation = "web:" + token.partition(".")[0]
    events = tracker_event_count(her_conversation)
    assert events > 0

    # Another browser that learnt her conversation's id (or its random part) puts it in storage.
    for known_id in (her_conversation, token.partition(".")[0]):
        intruder = browser.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True)
        intruder.add_init_script(
            "window.sessionStorage.setItem('chat_session', "
            f"JSON.stringify({{session_id: {json.dumps(known_id)}}}))"
        )
        page = intruder.new_page()
        page.goto(f"{web_url}/")
        other = PhonePage.__new__(PhonePage)
        other.page, other.context = page, intruder
        other.open_chat_by_keyboard()
        other.wait_for_reply(0, "What would you like to know")
        other.type_message("change my phone number", "")
        assert page.locator(".rw-response", has_text="cramping").count() == 0
        assert stored_session_id(other) not in (known_id, token)
        intruder.close()

    assert tracker_event_count(her_conversation) == events


# Accessibility (README, "Accessibility"): axe-core at WCAG 2.2 AA, reflow, motion, and the whole
# appointment request by keyboard alone, with every new message read out through the live region.

ANNOUNCER = "#chat-announcer"
IS_MESSAGE_BOX = "element => element.matches('.rw-new-message')"


def announced_text(page) -> str:
    return " ".join(page.locator(ANNOUNCER).inner_text().split())


def assert_new_messages_announced(page, since: int) -> None:
    """Every assistant message after the first ``since`` reaches the polite live region."""
    region = page.locator(ANNOUNCER)
    assert region.get_attribute("aria-live") == "polite"
    for message in page.locator(".rw-response").all_inner_texts()[since:]:
        expected = " ".join(message.split())
        page.wait_for_function(
            """([selector, expected]) =>
                document.querySelector(selector).textContent.replace(/\\s+/g, ' ')
                    .includes(expected)""",
            arg=[ANNOUNCER, expected],
            timeout=REPLY_TIMEOUT_MS,
        )


def test_the_clinic_page_and_the_widget_pass_axe(phone: PhonePage, axe) -> None:
    page = phone.page
    page.locator("button.rw-launcher").wait_for(timeout=REPLY_TIMEOUT_MS)
    axe(page, "clinic page, chat closed")

    phone.open_chat_by_keyboard()
    phone.wait_for_reply(0, "What would you like to know")
    page.locator(".rw-reply").first.wait_for()
    axe(page, "chat open: greeting and its quick replies")

    phone.type_message("does an hsg hurt", "cramping")
    phone.choose("Tell me more", "Pap smear")
    axe(page, "chat open: a conversation with a long answer")
    phone.assert_stayed_on_this_machine()


@pytest.mark.parametrize(
    "screen",
    [
        # A 320 px phone, and a 1280 px laptop at 200% zoom (640 CSS px wide).
        pytest.param({"width": 320, "height": 640, "scale": 1}, id="320px"),
        pytest.param({"width": 640, "height": 450, "scale": 2}, id="200-percent-zoom"),
    ],
)
def test_the_widget_reflows_without_scrolling_sideways(browser, web_url: str, screen) -> None:
    context = browser.new_context(
        viewport={"width": screen["width"], "height": screen["height"]},
        device_scale_factor=screen["scale"],
        reduced_motion="reduce",
    )
    page = context.new_page()
    try:
        page.goto(f"{web_url}/")
        launcher = page.locator("button.rw-launcher")
        launcher.wait_for(timeout=REPLY_TIMEOUT_MS)
        # Asked for less motion, the widget's slide-in animations are switched off.
        duration = launcher.evaluate("element => getComputedStyle(element).animationDuration")
        assert float(duration.removesuffix("s")) < 0.01, duration
        launcher.focus()
        page.keyboard.press("Enter")
        page.locator(".rw-response", has_text="What would you like to know").wait_for(
            timeout=REPLY_TIMEOUT_MS
        )
        box = page.locator(".rw-new-message")
        box.fill("does an hsg hurt")
        box.press("Enter")
        page.locator(".rw-response", has_text="cramping").last.wait_for(timeout=REPLY_TIMEOUT_MS)

        assert page.evaluate("document.documentElement.scrollWidth") <= screen["width"]
        widget = page.locator(".rw-conversation-container").bounding_box()
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= screen["width"]
        messages = page.locator(".rw-messages-container")
        assert messages.evaluate("list => list.scrollWidth <= list.clientWidth")
        for control in (".rw-send", ".rw-reply"):
            size = page.locator(control).last.bounding_box()
            assert size["width"] >= 24 and size["height"] >= 24, (control, size)
    finally:
        context.close()


def test_an_appointment_request_by_keyboard_alone_is_read_out(assistant, phone: PhonePage) -> None:
    """Tab and Shift+Tab, typing, Enter: no clicks and no focus() calls, from the launcher to the
    saved request; each new assistant message reaches the live region's text."""
    page = phone.page
    page.locator("button.rw-launcher").wait_for(timeout=REPLY_TIMEOUT_MS)
    press_tab_until(page, "element => element.matches('.rw-launcher')")
    assert page.locator(".rw-launcher").get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    # Opening the chat puts the focus where the patient types.
    page.wait_for_function(f"() => ({IS_MESSAGE_BOX})(document.activeElement)")
    phone.wait_for_reply(0, "What would you like to know")
    assert_new_messages_announced(page, 0)
    # The open chat covers the phone's screen: Tab stays in it, never on a link hidden behind it.
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate(
            """() => document.activeElement === document.body
                || document.getElementById('chat-widget').contains(document.activeElement)"""
        ), page.evaluate("document.activeElement.outerHTML.slice(0, 120)")
    press_tab_until(page, IS_MESSAGE_BOX)

    def ask(text: str, expected: str) -> str:
        since = phone.response_count()
        assert page.evaluate(f"() => ({IS_MESSAGE_BOX})(document.activeElement)")
        page.keyboard.type(text)
        page.keyboard.press("Enter")
        reply = phone.wait_for_reply(since, expected)
        assert_new_messages_announced(page, since)
        return reply

    def choose(title: str, expected: str) -> str:
        """From the message box, Shift+Tab back to the newest quick reply with this title."""
        since = phone.response_count()
        press_tab_until(
            page,
            f"element => element.matches('.rw-reply') && element.innerText.trim() === "
            f"{json.dumps(title)}",
            backwards=True,
        )
        page.keyboard.press("Enter")
        reply = phone.wait_for_reply(since, expected)
        assert_new_messages_announced(page, since)
        # The chosen button is gone: the focus is back in the message box, not lost.
        page.wait_for_function(f"() => ({IS_MESSAGE_BOX})(document.activeElement)")
        return reply

    ask("does an hsg hurt", "cramping")
    choose("Tell me more", "Pap smear")
    ask("I'd like to book an HSG", "Shall we go ahead?")
    choose("Yes, go ahead", "full name")
    ask("Ana Keyes", "date of birth")
    ask("03/04/1990", "mobile number")
    ask("201-555-0148", "email")
    choose("Skip", "last period")
    choose("I don't have periods", "days and times")
    ask("weekday mornings", "could you be pregnant")
    choose("No", "contrast dye")
    choose("No", "pelvic infection")
    choose("No", "doctor")
    choose("Skip", "contact you")
    choose("Call me", "Is everything right?")
    saved = choose("Confirm", "your request is saved")

    reference = re.search(r"HSG-[0-9A-Z]{6}", saved).group(0)
    assert reference in announced_text(page)
    stored = get_appointment_request(reference, url=assistant.database_url)
    assert stored is not None and stored.full_name == "Ana Keyes"
    # The live region holds the latest messages only, never the whole conversation.
    assert page.locator(f"{ANNOUNCER} > p").count() <= 8

    # Escape closes the chat and gives the focus back to the launcher; Enter opens it again,
    # with the history shown but not read out again.
    announced_before = announced_text(page)
    page.keyboard.press("Escape")
    page.locator(".rw-conversation-container").wait_for(state="detached")
    launcher = page.locator(".rw-launcher")
    assert launcher.evaluate("element => element === document.activeElement")
    assert launcher.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    page.locator(".rw-response", has_text=reference).last.wait_for(timeout=REPLY_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    assert announced_text(page) == announced_before

    # Reloading redraws the history: it is shown, but not read out again.
    page.reload()
    page.locator(".rw-response", has_text=reference).last.wait_for(timeout=REPLY_TIMEOUT_MS)
    assert announced_text(page) == ""
    phone.assert_stayed_on_this_machine()


def test_on_a_wide_screen_the_open_chat_passes_axe_and_escape_closes_it(
    browser, web_url: str, axe
) -> None:
    """Above 800 px the chat is a panel over the page, closed by the launcher (no close button)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{web_url}/")
        press_tab_until(page, "element => element.matches('.rw-launcher')")
        page.keyboard.press("Enter")
        page.locator(".rw-response", has_text="What would you like to know").wait_for(
            timeout=REPLY_TIMEOUT_MS
        )
        assert page.locator(".rw-launcher").get_attribute("aria-label") == "Close the chat"
        page.keyboard.type("does an hsg hurt")
        page.keyboard.press("Enter")
        page.locator(".rw-response", has_text="cramping").last.wait_for(timeout=REPLY_TIMEOUT_MS)
        axe(page, "wide screen, chat open with an answer")
        # The page beside the panel stays usable: it is not made inert.
        assert not page.locator("main").evaluate("element => element.inert")

        page.keyboard.press("Escape")
        page.locator(".rw-conversation-container").wait_for(state="detached")
        assert page.evaluate("document.activeElement.matches('.rw-launcher')")
        assert page.locator(".rw-launcher").get_attribute("aria-label") == "Chat with our assistant"
    finally:
        context.close()
