"""Scenario 2: hostile input at every entry point, for a long time, and what it costs.

Generated messages (empty, 10 kB, bytes that are not UTF-8, emoji, right-to-left text, markup,
SQL, template syntax, JSON where text belongs, forged button payloads...) go round-robin to both
Rasa servers through REST, the widget's socket.io and the signed SMS webhook. Then every HTTP
route of the web app, the staff area, Rasa's channels (and its API, without a token) and the
action servers gets malformed requests, signed out and signed in. Afterwards: no 5xx, every
server still answering, no slot set from a forged entity, memory compared with its value
after the warm-up.

Only counts leave this module: categories, channels and route patterns, never a message's text.
Everything is sent to loopback addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
import socketio
import yaml
from socketio.exceptions import SocketIOError
from twilio.request_validator import RequestValidator
from yarl import URL

from channels.conversation_ids import WEB_PREFIX, rest_conversation_id, sms_conversation_id
from channels.sms_text import (
    OPT_IN_KEYWORDS,
    OPT_IN_KEYWORDS_WHEN_OPTED_OUT,
    OPT_OUT_KEYWORDS,
    keyword_of,
)

if TYPE_CHECKING:
    from benchmarks.soak.cluster import SoakCluster

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
APPOINTMENT_DOMAIN = REPO_ROOT / "domain" / "appointment.yml"
CHANNELS = ("rest", "socketio", "sms")
REST_PATH = "/webhooks/rest/webhook"
SMS_PATH = "/webhooks/twilio/webhook"
SMS_STATUS_PATH = "/webhooks/twilio/status"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Under load on a small machine a turn can queue behind many others: generous, yet bounded.
REQUEST_TIMEOUT_SECONDS = 120
# With SOCKETIO_REDIS_URL, a reply travels through Redis and can arrive after the turn's ack.
LATE_REPLY_SECONDS = 10
# After a turn's first reply, how long to wait for its other messages before the next turn.
QUIET_SECONDS = 0.3
MAX_CONVERSATION_MESSAGES = 5
# Issue 16: each server's memory within 10% of its value after the warm-up.
MAX_MEMORY_GROWTH = 0.10
FORGED_SESSION_ACCEPTED = "FORGED SESSION TOKEN ACCEPTED"
OVERSIZE_BYTES = 2 * 1024 * 1024
SMS_NUMBER_PREFIX = "+1201555"
CLINIC_SMS_NUMBER = "+12015550100"
TWILIO_ACCOUNT_SID = "AC" + "0" * 32
# Phrases of the channels' apologies: a reply, but one that says the turn failed inside.
APOLOGY_PHRASES = ("something went wrong on our side", "could not take in your last message")
TWIML_MESSAGE = re.compile(r"<Message\b")
CSRF_INPUT = re.compile(r"<input[^>]*name=\"csrf_token\"[^>]*>")
INPUT_VALUE = re.compile(r"value=\"([^\"]*)\"")
ROUTE_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


# --- The messages ------------------------------------------------------------------------------

PATIENT_QUESTIONS = (
    "does an hsg hurt alot",
    "how long does the procedure take",
    "can i drive home after",
    "do i need to stop my blood thinners before",
    "whats the dye made of",
    "im allergic to iodine is that a problem",
    "when will i get my results",
    "can my partner come in with me",
    "how much will this cost with my insurance",
    "should i take ibuprofen before the test",
    "is it normal to spot after the hsg",
    "i have a fever since my hsg yesterday",
    "what day of my cycle should it be done",
    "what if i am pregnant and dont know it",
    "can we have sex after the exam",
    "i want to book an appointment",
    "what does hsg stand for",
    "is the radiation dose safe",
    "where are you located",
    "can i go back to work the same day",
    "will it help me get pregnant",
    "can i talk to a real person please",
    "hello there",
    "thanks, bye",
)
OTHER_LANGUAGES = (
    "¿La histerosalpingografía duele mucho?",
    "Combien de temps dure l'examen ?",
    "Darf ich vor der Untersuchung etwas essen?",
    "检查之前可以吃东西吗？",
    "検査の後、車を運転できますか？",
    "검사 후에 출혈이 있어도 괜찮나요?",
    "Это обследование болезненное?",
    "Czy mogę przyjść z mężem?",
    "Xét nghiệm này có đau không?",
    "क्या जांच के बाद दर्द होना सामान्य है?",
    "Το τεστ είναι επώδυνο;",
    "Ninaweza kula kabla ya kipimo?",
    "Posso tomar ibuprofeno antes do exame?",
)
RIGHT_TO_LEFT = (
    "هل الفحص مؤلم؟",
    "متى تظهر النتائج؟",
    "האם מותר לאכול לפני הבדיקה?",
    "כמה זמן לוקחת הבדיקה",
    "\u202egnitset ym eludehcser",
    "مرحبا hsg 123 שלום",
    "آیا بعد از آزمایش می\u200cتوانم رانندگی کنم؟",
    "\u200fdoes it hurt\u200f",
)
EMOJI = (
    "😀",
    "🤰🏽💉❓",
    "👩\u200d👩\u200d👧\u200d👦",
    "🇺🇸🇲🇽",
    "❤️\u200d🩹 pain after hsg 😣",
    "🙏🙏🙏",
    "🩸?",
    "😀" * 50,
    "👍🏿",
    "🧪📅✅",
    "🫠",
    "🏳️\u200d⚧️",
)
MARKUP = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(document.cookie)>",
    "[call us](javascript:alert(1))",
    "**does it hurt?** _really_ `rm -rf /`",
    '</div><iframe src="http://127.0.0.1:9/"></iframe>',
    "<b onmouseover=alert(1)>bold</b>",
    "&lt;script&gt;&amp;&quot;",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    "<Response><Message>forged reply</Message></Response>",
    "![pixel](http://127.0.0.1:9/x.png)",
    "<svg/onload=alert(1)>",
    "# heading\n\n> quote\n\n- item",
    "<a href='tel:911'>call</a>",
)
SQL = (
    "'; DROP TABLE appointment_requests; --",
    "1' OR '1'='1",
    '" OR ""="',
    "Robert'); DROP TABLE staff_accounts;--",
    "' UNION SELECT username, password_hash FROM staff_accounts --",
    "1; SELECT pg_sleep(5); --",
    "%' AND 1=0 --",
    "admin'--",
    "'; UPDATE appointment_requests SET status='scheduled'; --",
    "$$ || (SELECT version()) || $$",
)
TEMPLATES = (
    "{clinic_phone}",
    "{clinic_name}",
    "{{7*7}}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "%s%s%s%s",
    "%n%x%d",
    "{0}",
    "{}",
    "{clinic_phone.__class__.__mro__}",
    "{{ config.items() }}",
    "%(clinic_phone)s",
    "{{clinic_phone}}",
    "{% for x in range(10) %}x{% endfor %}",
    "${jndi:ldap://127.0.0.1:9/a}",
    "[[7*7]]",
    "{requested_slot}",
)
# What a template engine would make of 7*7: it must never come back in a reply.
EVALUATED_TEMPLATE = "49"
CONTROL_TEXTS = (
    "\x00",
    "hsg\x00hurt",
    "\x01\x02\x03\x04",
    "\x1b[31mred\x1b[0m",
    "\u202e\u202d",
    "\ufeffhello",
    "\u200b\u200c\u200d",
    "\u2028\u2029",
    "a\bb\x7f",
    "\r",
    "line one\r\nline two",
    "\ud800",
    "\udfff",
    "does it \udc80 hurt",
    "\ud83d",
    "\uffff\ufffe",
    "\U0010ffff",
    "e\u0301\u0301\u0301\u0301",
    "Z\u0337\u0322\u0349a\u0336\u0321l\u0335\u0322g\u0334o\u0338",
)
NUMBER_TEXTS = (
    "42",
    "0",
    "-1",
    "3.14159",
    "1e309",
    "NaN",
    "Infinity",
    "0x1F",
    "٤٢",
    "१२३",
    "12345678901234567890123",
    "+1 (201) 555-0123",
    "1/2/2030",
)
NUMBER_VALUES = (42, 0, -1, 3.5, 1e308, 10**25)
JSON_VALUES = (
    {"text": "hello"},
    ["does", "it", "hurt"],
    {},
    [],
    {"message": {"message": "hi"}},
    True,
    False,
    [None],
    {"__proto__": {"admin": True}},
    {"$where": "1==1"},
)
UNKNOWN_INTENTS = (
    "/no_such_intent",
    "/",
    "//",
    "/ ",
    "/greet@7",
    "/greet@-1",
    "/greet{",
    "/greet{not json}",
    "/greet[1]",
    "/nlu_fallback",
    "/restart",
    "/session_start",
    "/back",
    "/action_listen",
    "/utter_greet",
    "/GREET",
    '/greet{"": ""}',
    "/%s",
    "/{{7*7}}",
    '/no_such_intent{"full_name": "x"}',
)
SMS_KEYWORDS = (
    "STOP",
    "stop",
    "Stop.",
    "STOPALL",
    "unsubscribe",
    "END",
    "quit",
    "HELP",
    "help",
    "INFO",
    "START",
    "unstop",
    "yes",
    "YES",
    "cancel",
    " stop ",
    "STOP!!!",
    "s t o p",
)
LONG_TEXT_WORDS = (
    "the", "test", "hurt", "dye", "period", "cramps", "doctor", "appointment", "bleeding",
    "results", "tubes", "x-ray", "tomorrow", "please", "worried", "insurance", "and", "my",
)  # fmt: skip
LONG_TEXT_LENGTHS = (1000, 1001, 4000, 10_000)
# The slot each forged entity names gets one of these values; they occur in no other message,
# so a slot holding one can only have been set from a forged entity.
FORGED_VALUES = {
    "full_name": "x",
    "date_of_birth": "1901-01-01",
    "phone": "+15555550100",
    "email": "forged@example.invalid",
    "last_period": "1901-02-03",
    "preferred_times": "forged mornings",
    "preferred_dates": ["2031-02-30"],
    "possibly_pregnant": "no",
    "contrast_allergy": "no",
    "pelvic_infection": "no",
    "referring_doctor": "Dr Forged",
    "contact_method": "forged",
    "requested_slot": "contact_method",
    "appointment_request_pending": True,
    "clinic_phone": "+15555550199",
    "clinic_name": "Forged Clinic",
}
# Entities the bot's own buttons carry (not forgeries: a patient may press those buttons).
BUTTON_ENTITIES = frozenset({"request_field", "checkin_answer"})
# Short forged values ("x", "no") and booleans are matched only in the slot they named.
DISTINCTIVE_LENGTH = 5

# How often each category is drawn, per round: ordinary questions most, forged payloads often.
CATEGORY_WEIGHTS = {
    "patient_question": 4,
    "empty": 1,
    "whitespace": 1,
    "long_text": 1,
    "invalid_utf8": 1,
    "control": 1,
    "emoji": 1,
    "right_to_left": 1,
    "other_language": 1,
    "markup": 1,
    "sql": 1,
    "template": 1,
    "json_value": 1,
    "number": 1,
    "null": 1,
    "long_word": 1,
    "unknown_intent": 1,
    "forged_entity": 2,
    "sms_keyword": 1,
}
CATEGORIES = tuple(CATEGORY_WEIGHTS)


@dataclass(frozen=True)
class FuzzMessage:
    """One generated message: text, a JSON value instead of text, or bytes that are not UTF-8."""

    category: str
    kind: str = "text"  # "text", "json" or "bytes"
    text: str = ""
    value: Any = None
    raw: bytes = b""
    forged: tuple[tuple[str, Any], ...] = ()


def form_slots() -> list[str]:
    """The request form's slots, from the domain, so a new slot is forged too."""
    domain = yaml.safe_load(APPOINTMENT_DOMAIN.read_text(encoding="utf-8"))
    return list(domain["forms"]["appointment_request_form"]["required_slots"])


def forged_value(slot: str) -> Any:
    return FORGED_VALUES.get(slot, f"forged {slot.replace('_', ' ')}")


@lru_cache(maxsize=1)
def forged_payloads() -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """(intent, entities) of every forged payload: one per form slot, and a few combined."""
    slots = form_slots()
    payloads: list[tuple[str, dict[str, Any]]] = [
        ("book_appointment", {"full_name": "x"}),
        ("inform", {"phone": "+15555550100"}),
        ("affirm", {"requested_slot": "contact_method"}),
        *(("inform", {slot: forged_value(slot)}) for slot in slots),
        ("book_appointment", {slot: forged_value(slot) for slot in slots}),
        ("affirm", {"appointment_request_pending": True}),
        ("greet", {"clinic_phone": forged_value("clinic_phone"), "clinic_name": "Forged Clinic"}),
        ("change_request_field", {"request_field": "phone", "phone": "+15555550100"}),
        ("inform", {"preferred_dates": forged_value("preferred_dates")}),
    ]
    return tuple((intent, tuple(entities.items())) for intent, entities in payloads)


def with_typo(text: str, rng: Random) -> str:
    """A patient's typing: now and then two letters swapped or one dropped."""
    if len(text) < 4:
        return text
    draw = rng.random()
    position = rng.randrange(1, len(text) - 2)
    if draw < 0.3:
        return text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    if draw < 0.5:
        return text[:position] + text[position + 1 :]
    return text


def long_text(rng: Random) -> str:
    """Words up to one of LONG_TEXT_LENGTHS, around the 1,000-character limit and far past it."""
    length = rng.choice(LONG_TEXT_LENGTHS)
    words: list[str] = []
    size = 0
    while size < length:
        words.append(rng.choice(LONG_TEXT_WORDS))
        size += len(words[-1]) + 1
    return " ".join(words)[:length]


def long_word(rng: Random) -> str:
    return rng.choice(
        (
            "a" * rng.choice((500, 999, 1000, 1001, 5000)),
            "hysterosalpingogram" * 50,
            "http://127.0.0.1:9/" + "a" * 900,
            "🙂" * 300,
            "ab" * 499,
        )
    )


def invalid_utf8(rng: Random) -> bytes:
    """ASCII words around bytes no UTF-8 decoder accepts (0xFF never occurs in UTF-8)."""
    noise = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randint(1, 12)))
    return rng.choice((b"", b"does it hurt ", b"hsg ")) + b"\xff" + noise


def forged_entity(rng: Random) -> FuzzMessage:
    intent, entities = rng.choice(forged_payloads())
    text = f"/{intent}{json.dumps(dict(entities))}"
    forged = tuple((name, value) for name, value in entities if name not in BUTTON_ENTITIES)
    return FuzzMessage("forged_entity", text=text, forged=forged)


def message_of(category: str, rng: Random) -> FuzzMessage:
    """One message of ``category``, drawn with ``rng``."""
    texts = {
        "whitespace": (" ", "   ", "\t", "\n", "\r\n", " \n\t ", "\u00a0", "\u3000", "\u2003"),
        "control": CONTROL_TEXTS,
        "emoji": EMOJI,
        "right_to_left": RIGHT_TO_LEFT,
        "other_language": OTHER_LANGUAGES,
        "markup": MARKUP,
        "sql": SQL,
        "template": TEMPLATES,
        "unknown_intent": UNKNOWN_INTENTS,
        "sms_keyword": SMS_KEYWORDS,
    }
    if category in texts:
        return FuzzMessage(category, text=rng.choice(texts[category]))
    if category == "patient_question":
        return FuzzMessage(category, text=with_typo(rng.choice(PATIENT_QUESTIONS), rng))
    if category == "empty":
        return FuzzMessage(category, text="")
    if category == "long_text":
        return FuzzMessage(category, text=long_text(rng))
    if category == "long_word":
        return FuzzMessage(category, text=long_word(rng))
    if category == "invalid_utf8":
        return FuzzMessage(category, kind="bytes", raw=invalid_utf8(rng))
    if category == "json_value":
        return FuzzMessage(category, kind="json", value=rng.choice(JSON_VALUES))
    if category == "null":
        return FuzzMessage(category, kind="json", value=None)
    if category == "number":
        if rng.random() < 0.5:
            return FuzzMessage(category, kind="json", value=rng.choice(NUMBER_VALUES))
        return FuzzMessage(category, text=rng.choice(NUMBER_TEXTS))
    if category == "forged_entity":
        return forged_entity(rng)
    raise ValueError(f"unknown category {category!r}")


def generate_messages(count: int, seed: int = 0) -> list[FuzzMessage]:
    """``count`` messages, the same for the same seed; every category in each round of draws.

    A round holds each category as often as its weight, shuffled, so even a short run (the
    test's) covers them all.
    """
    rng = Random(seed)
    round_of_categories = [
        category for category, weight in CATEGORY_WEIGHTS.items() for _ in range(weight)
    ]
    messages: list[FuzzMessage] = []
    while len(messages) < count:
        categories = list(round_of_categories)
        rng.shuffle(categories)
        messages.extend(message_of(category, rng) for category in categories)
    return messages[:count]


# --- Conversations -----------------------------------------------------------------------------


@dataclass
class Conversation:
    """A few messages from one patient, on one channel of one Rasa server."""

    number: int
    channel: str
    server: int
    messages: list[FuzzMessage]
    conversation_id: str | None = None

    @property
    def forged(self) -> list[tuple[str, Any]]:
        return [pair for message in self.messages for pair in message.forged]


def plan_conversations(
    messages: list[FuzzMessage], servers: int, seed: int, first_number: int = 0
) -> list[Conversation]:
    """Messages cut into conversations of 1 to 5, round-robin over channels and servers.

    With three channels and two servers, consecutive conversations visit all six pairs.
    """
    rng = Random(f"conversations-{seed}-{first_number}")
    conversations: list[Conversation] = []
    start = 0
    while start < len(messages):
        length = rng.randint(1, MAX_CONVERSATION_MESSAGES)
        number = first_number + len(conversations)
        conversations.append(
            Conversation(
                number=number,
                channel=CHANNELS[number % len(CHANNELS)],
                server=number % servers,
                messages=messages[start : start + length],
            )
        )
        start += length
    return conversations


# --- The result --------------------------------------------------------------------------------


@dataclass
class FuzzResult:
    """Counts only: what was sent, how each entry point answered, what the servers cost."""

    seed: int = 0
    warm_up: int = 0
    messages: int = 0
    concurrency: int = 0
    sent: Counter = field(default_factory=Counter)  # per channel, warm-up included
    status_classes: Counter = field(default_factory=Counter)  # "rest 2xx", "sms 4xx", ...
    answered: int = 0
    refused: Counter = field(default_factory=Counter)  # deliberate refusals, per reason
    silences: Counter = field(default_factory=Counter)  # deliberate silences, per reason
    unanswered: Counter = field(default_factory=Counter)  # "channel category: why"
    apologies: Counter = field(default_factory=Counter)  # "channel category"
    evaluated_templates: int = 0  # replies with 49 to a 7*7 template
    server_errors: list[tuple[str, int]] = field(default_factory=list)
    transport_errors: int = 0
    transport_error_kinds: Counter = field(default_factory=Counter)
    forged_payloads: int = 0
    forged_conversations: int = 0
    trackers_read: int = 0
    tracker_read_failures: int = 0
    forged_slots: list[tuple[str, str]] = field(default_factory=list)
    malformed_requests: int = 0
    malformed_5xx: int = 0
    malformed_routes: int = 0
    malformed_statuses: Counter = field(default_factory=Counter)
    malformed_dropped: int = 0  # the server closed the connection (oversize bodies)
    staff_signed_in: bool = False  # the signed-in half of the malformed requests ran
    socketio_probes: Counter = field(default_factory=Counter)
    memory_after_warm_up: dict[str, float] = field(default_factory=dict)
    memory_after: dict[str, float] = field(default_factory=dict)
    memory_trace: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    all_answering_after: dict[str, bool] = field(default_factory=dict)
    elapsed: float = 0.0

    def growth(self) -> dict[str, float]:
        """Per process, memory after the run over memory after the warm-up, minus one."""
        return {
            name: self.memory_after.get(name, 0.0) / before - 1
            for name, before in self.memory_after_warm_up.items()
            if before > 0
        }

    def accounted(self) -> int:
        """Messages with a known fate; equal to the messages sent when none went missing."""
        return (
            self.answered
            + sum(self.refused.values())
            + sum(self.silences.values())
            + sum(self.unanswered.values())
            + self.transport_errors
        )

    def problems(self, memory: bool = True) -> list[str]:
        """Every promise of the scenario this run broke; ``memory=False`` leaves growth out."""
        sent = sum(self.sent.values())
        checks = {
            "a 5xx": bool(self.server_errors),
            "a server no longer answering": not all(self.all_answering_after.values()),
            "a slot set from a forged entity": bool(self.forged_slots),
            "a forged payload's tracker unread": self.trackers_read < self.forged_conversations,
            "a message unanswered": bool(self.unanswered),
            # channels/failures.py answers a failed turn with an apology instead of a 5xx: with
            # no fault injected here, each one is an input the assistant cannot handle.
            "a turn failed inside (apology)": bool(self.apologies),
            "a transport error": self.transport_errors > 0,
            "a message unaccounted for": self.accounted() != sent,
            "a template evaluated in a reply": self.evaluated_templates > 0,
            "the staff area not signed in": not self.staff_signed_in,
            "a forged socket.io session accepted": FORGED_SESSION_ACCEPTED in self.socketio_probes,
            f"memory growth over {MAX_MEMORY_GROWTH:.0%}": memory
            and any(growth > MAX_MEMORY_GROWTH for growth in self.growth().values()),
        }
        return [problem for problem, broken in checks.items() if broken]

    def passed(self) -> bool:
        return not self.problems()

    def server_error(self, where: str, status: int) -> None:
        self.server_errors.append((where, status))

    def lines(self) -> list[str]:
        """A short summary, for printing and for benchmarks/SOAK.md."""
        sent = sum(self.sent.values())
        lines = [
            f"Fuzz: {sent:,} messages ({self.warm_up:,} warm-up, then {self.messages:,}), "
            f"seed {self.seed}, {self.concurrency} at a time, {self.elapsed:,.0f} s",
            "Sent: " + ", ".join(f"{ch} {self.sent[ch]:,}" for ch in CHANNELS),
            "HTTP statuses of the messages: " + _counts(self.status_classes),
            f"Answered {self.answered:,}; refused on purpose {sum(self.refused.values()):,} "
            f"({_counts(self.refused)}); silent on purpose {sum(self.silences.values()):,} "
            f"({_counts(self.silences)})",
            f"Unanswered {sum(self.unanswered.values()):,}"
            + (f" ({_counts(self.unanswered)})" if self.unanswered else "")
            + f"; transport errors {self.transport_errors:,}"
            + (f" ({_counts(self.transport_error_kinds)})" if self.transport_errors else ""),
            f"Apologies {sum(self.apologies.values()):,}"
            + (f" ({_counts(self.apologies)})" if self.apologies else "")
            + f"; templates evaluated {self.evaluated_templates}",
            f"Malformed requests: {self.malformed_requests:,} at {self.malformed_routes} routes, "
            f"{self.malformed_5xx} 5xx, {self.malformed_dropped} connections closed by the "
            f"server; statuses {_counts(self.malformed_statuses)}; staff area signed in: "
            f"{'yes' if self.staff_signed_in else 'NO'}",
            "Socket.io probes: " + (_counts(self.socketio_probes) or "none"),
            f"5xx: {len(self.server_errors)}"
            + "".join(f"\n  {where}: {status}" for where, status in self.server_errors[:40]),
            f"Forged entities: {self.forged_payloads:,} payloads in "
            f"{self.forged_conversations:,} conversations, {self.trackers_read:,} trackers read "
            f"({self.tracker_read_failures} failed), slots set from them: "
            + (", ".join(f"{kind} {slot}" for kind, slot in self.forged_slots) or "none"),
            "Memory (MB, after warm-up -> after): "
            + ", ".join(
                f"{name} {self.memory_after_warm_up.get(name, 0):,.0f} -> "
                f"{self.memory_after.get(name, 0):,.0f} ({growth:+.1%})"
                for name, growth in self.growth().items()
            ),
            "Rasa servers' memory (MB) after each tenth of the messages: "
            + "; ".join(
                f"{sent:,}: "
                + " / ".join(f"{mb:,.0f}" for name, mb in memory.items() if name.startswith("rasa"))
                for sent, memory in self.memory_trace
            ),
            "Problems: " + (", ".join(self.problems()) or "none"),
            "Answering afterwards: "
            + ", ".join(
                f"{name} {'yes' if up else 'NO'}" for name, up in self.all_answering_after.items()
            ),
        ]
        return lines


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key}: {count:,}" for key, count in sorted(counter.items()))


def status_class(status: int) -> str:
    return f"{status // 100}xx"


# --- Talking to the channels -------------------------------------------------------------------


def is_apology(text: str) -> bool:
    lowered = text.lower()
    return any(phrase in lowered for phrase in APOLOGY_PHRASES)


def rest_body(sender: str, message: FuzzMessage) -> bytes:
    """The REST post: JSON, with the message's bytes raw inside the JSON string when not UTF-8."""
    if message.kind == "bytes":
        # invalid_utf8() gives ASCII letters and bytes >= 0x80 only: no quote, backslash or control.
        return (
            b'{"sender": ' + json.dumps(sender).encode() + b', "message": "' + message.raw + b'"}'
        )
    value = message.value if message.kind == "json" else message.text
    # ensure_ascii (the default) writes lone surrogates as \udxxx escapes, as browsers do.
    return json.dumps({"sender": sender, "message": value}).encode()


def socketio_payload(message: FuzzMessage) -> dict[str, Any]:
    """The widget's user_uttered data; bytes go as a binary attachment, JSON values as they are."""
    if message.kind == "bytes":
        return {"message": message.raw}
    return {"message": message.value if message.kind == "json" else message.text}


def sms_body(message: FuzzMessage) -> str | bytes | None:
    """What an SMS can carry: text, bytes, or a JSON value as its text; None leaves Body out."""
    if message.kind == "bytes":
        return message.raw
    if message.kind == "json":
        return None if message.value is None else json.dumps(message.value)
    return message.text


def form_encode(fields: list[tuple[str, str | bytes]]) -> tuple[bytes, dict[str, str]]:
    """The url-encoded body, and the parameters as the channel will read them (for signing).

    Lone surrogates are sent as their (invalid) UTF-8 bytes; the channel decodes with
    replacement characters, and Twilio's signature covers what the channel decoded.
    """
    encoded = urlencode(
        [(k, v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v) for k, v in fields]
    )
    seen = {key: values[0] for key, values in parse_qs(encoded, keep_blank_values=True).items()}
    return encoded.encode("ascii"), seen


def sms_expectation(body_seen: str, opted_out: bool) -> tuple[str | None, bool]:
    """The deliberate silence this SMS gets (None: a reply), and whether the number is opted out.

    channels/twilio_sms.py: STOP and its synonyms opt out with no reply (Twilio confirms);
    START (or YES once opted out) opts in again; anything else from an opted-out number is
    ignored.
    """
    keyword = keyword_of(body_seen.strip())
    if keyword in OPT_OUT_KEYWORDS:
        return "sms opt-out keyword", True
    if keyword in OPT_IN_KEYWORDS or (opted_out and keyword in OPT_IN_KEYWORDS_WHEN_OPTED_OUT):
        return None, False
    if opted_out:
        return "sms from an opted-out number", True
    return None, False


def reply_texts(messages: Any) -> str:
    """The texts of Rasa's REST or socket.io bot messages, joined (held in memory only)."""
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return ""
    return "\n".join(str(m.get("text") or "") for m in messages if isinstance(m, dict))


def is_reply(message: Any) -> bool:
    """A bot message a patient sees: text, buttons, an image or a custom payload."""
    return isinstance(message, dict) and any(
        message.get(key) for key in ("text", "buttons", "quick_replies", "image", "custom")
    )


def tracker_url(rasa_url: str, conversation_id: str) -> str:
    return f"{rasa_url}/conversations/{quote(conversation_id, safe=':+')}/tracker"


def check_loopback(cluster: SoakCluster) -> None:
    """Refuses to send anything anywhere but this machine."""
    for url in [*cluster.rasa_urls, *cluster.action_urls, cluster.web_url]:
        if urlsplit(url).hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"the fuzz scenario only sends to loopback addresses, not {url}")


def canonical(value: Any) -> str:
    """A slot or entity value as comparable text (lists and dicts included)."""
    return json.dumps(value, sort_keys=True)


def forged_slot_names(events: list[dict[str, Any]], forged: list[tuple[str, Any]]) -> set[str]:
    """Slots that a SlotSet event gave a forged value: in the slot it named, or a distinctive one.

    Events, not the final slots: a later /restart would hide a slot that was set once.
    """
    named = {(name, canonical(value)) for name, value in forged}
    distinctive = {
        canonical(value)
        for _, value in forged
        if isinstance(value, (list, dict))
        or (isinstance(value, str) and len(value) >= DISTINCTIVE_LENGTH)
    }
    found = set()
    for event in events:
        if not isinstance(event, dict) or event.get("event") != "slot":
            continue
        name, value = str(event.get("name")), canonical(event.get("value"))
        if (name, value) in named or value in distinctive:
            found.add(name)
    return found


class FuzzRun:
    """One run's connections, counters and per-number SMS state."""

    def __init__(self, cluster: SoakCluster, result: FuzzResult, session: aiohttp.ClientSession):
        self.cluster = cluster
        self.result = result
        self.session = session
        self.validator = RequestValidator(cluster.twilio_auth_token)
        self.run_id = uuid.uuid4().hex[:8]
        # Numbers of this run start at a random place, so another run's STOP does not carry over.
        self.first_number = secrets.randbelow(10_000)
        self.opted_out: dict[str, bool] = {}
        self.timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)

    # The outcome of one message ------------------------------------------------------------

    def transport_error(self, kind: str, count: int = 1) -> None:
        self.result.transport_errors += count
        self.result.transport_error_kinds[kind] += count

    def replied(self, channel: str, message: FuzzMessage, texts: str) -> None:
        """An answer: counted, with an apology or an evaluated template noted."""
        self.result.answered += 1
        if is_apology(texts):
            self.result.apologies[f"{channel} {message.category}"] += 1
        if message.category == "template" and "7*7" in message.text and EVALUATED_TEMPLATE in texts:
            self.result.evaluated_templates += 1

    def unanswered(self, channel: str, message: FuzzMessage, why: str) -> None:
        self.result.unanswered[f"{channel} {message.category}: {why}"] += 1

    def http_status(self, channel: str, server: int, status: int, message: FuzzMessage) -> None:
        self.result.status_classes[f"{channel} {status_class(status)}"] += 1
        if status >= 500:
            path = REST_PATH if channel == "rest" else SMS_PATH
            self.result.server_error(f"rasa_{server} POST {path} ({message.category})", status)

    # REST -----------------------------------------------------------------------------------

    async def rest_conversation(self, conversation: Conversation) -> None:
        sender = f"fuzz-{self.run_id}-{conversation.number}"
        conversation.conversation_id = rest_conversation_id(sender)
        url = self.cluster.rasa_urls[conversation.server] + REST_PATH
        for message in conversation.messages:
            self.result.sent["rest"] += 1
            try:
                async with self.session.post(
                    url,
                    data=rest_body(sender, message),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                ) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                self.transport_error(f"rest {type(error).__name__}")
                continue
            self.http_status("rest", conversation.server, status, message)
            self.classify_rest(message, status, body)

    def classify_rest(self, message: FuzzMessage, status: int, body: bytes) -> None:
        """A reply, a deliberate 400 for a message that is not text, or unanswered."""
        if status == 400 and message.kind != "text":
            self.result.refused["rest 400: message is not text"] += 1
            return
        if status != 200:
            self.unanswered("rest", message, f"status {status}")
            return
        try:
            messages = json.loads(body)
        except ValueError:
            self.unanswered("rest", message, "reply is not JSON")
            return
        if isinstance(messages, list) and any(is_reply(m) for m in messages):
            self.replied("rest", message, reply_texts(messages))
        else:
            self.unanswered("rest", message, "no bot message")

    # Socket.io --------------------------------------------------------------------------------

    async def socketio_conversation(self, conversation: Conversation) -> None:
        url = self.cluster.rasa_urls[conversation.server]
        replies: asyncio.Queue = asyncio.Queue()
        confirmed: asyncio.Future = asyncio.get_running_loop().create_future()
        client = socketio.AsyncClient(
            reconnection=False, handle_sigint=False, request_timeout=REQUEST_TIMEOUT_SECONDS
        )

        @client.on("bot_uttered")
        async def bot_uttered(data: Any) -> None:
            replies.put_nowait(data)

        @client.on("session_confirm")
        async def session_confirm(token: Any) -> None:
            if not confirmed.done():
                confirmed.set_result(token)

        self.result.sent["socketio"] += len(conversation.messages)
        try:
            await client.connect(
                url,
                headers={"Origin": self.cluster.web_origin},
                transports=["websocket"],
                socketio_path="socket.io",
                wait_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            await client.emit("session_request", {"session_id": None})
            token = await asyncio.wait_for(confirmed, REQUEST_TIMEOUT_SECONDS)
            conversation.conversation_id = WEB_PREFIX + str(token).partition(".")[0]
            for index, message in enumerate(conversation.messages):
                failure = await self.socketio_turn(client, replies, message)
                if failure:
                    self.transport_error(failure, len(conversation.messages) - index)
                    break
        except (SocketIOError, asyncio.TimeoutError) as error:
            if conversation.conversation_id is None:
                self.transport_error(f"socketio {type(error).__name__}", len(conversation.messages))
        finally:
            await client.disconnect()

    async def socketio_turn(
        self, client: socketio.AsyncClient, replies: asyncio.Queue, message: FuzzMessage
    ) -> str | None:
        """One message; what went wrong when the turn never ended (no ack), else None.

        The server acknowledges the event once the turn is processed; replies are the
        bot_uttered events that arrive meanwhile, or shortly after (through Redis).
        """
        try:
            await client.call(
                "user_uttered", socketio_payload(message), timeout=REQUEST_TIMEOUT_SECONDS
            )
        except SocketIOError as error:
            return f"socketio {type(error).__name__}"
        got = await drain(replies, LATE_REPLY_SECONDS if message.kind == "text" else QUIET_SECONDS)
        if any(is_reply(data) for data in got):
            self.replied("socketio", message, reply_texts(got))
        elif message.kind != "text":
            self.result.silences["socket.io message without text (ignored)"] += 1
        else:
            self.unanswered("socketio", message, "no bot message")
        return None

    # SMS --------------------------------------------------------------------------------------

    def sms_number(self, conversation: Conversation) -> str:
        return f"{SMS_NUMBER_PREFIX}{(self.first_number + conversation.number) % 10_000:04d}"

    async def sms_conversation(self, conversation: Conversation) -> None:
        number = self.sms_number(conversation)
        conversation.conversation_id = sms_conversation_id(number)
        url = self.cluster.rasa_urls[conversation.server] + SMS_PATH
        for message in conversation.messages:
            self.result.sent["sms"] += 1
            fields: list[tuple[str, str | bytes]] = [
                ("MessageSid", f"SM{uuid.uuid4().hex}"),
                ("AccountSid", TWILIO_ACCOUNT_SID),
                ("From", number),
                ("To", CLINIC_SMS_NUMBER),
                ("NumMedia", "0"),
            ]
            body = sms_body(message)
            if body is not None:
                fields.append(("Body", body))
            data, seen = form_encode(fields)
            silence, self.opted_out[number] = sms_expectation(
                seen.get("Body", ""), self.opted_out.get(number, False)
            )
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.validator.compute_signature(url, seen),
            }
            try:
                async with self.session.post(
                    url, data=data, headers=headers, timeout=self.timeout
                ) as response:
                    status, twiml = response.status, await response.text(errors="replace")
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                self.transport_error(f"sms {type(error).__name__}")
                continue
            self.http_status("sms", conversation.server, status, message)
            self.classify_sms(message, status, twiml, silence)

    def classify_sms(
        self, message: FuzzMessage, status: int, twiml: str, silence: str | None
    ) -> None:
        if status != 200:
            self.unanswered("sms", message, f"status {status}")
        elif TWIML_MESSAGE.search(twiml):
            self.replied("sms", message, twiml)
        elif silence:
            self.result.silences[silence] += 1
        else:
            self.unanswered("sms", message, "empty TwiML")

    # Conversations ------------------------------------------------------------------------------

    async def converse(self, conversations: list[Conversation], concurrency: int) -> None:
        """Every conversation, ``concurrency`` at a time, each one message after the other."""
        semaphore = asyncio.Semaphore(concurrency)
        handlers = {
            "rest": self.rest_conversation,
            "socketio": self.socketio_conversation,
            "sms": self.sms_conversation,
        }

        async def one(conversation: Conversation) -> None:
            async with semaphore:
                await handlers[conversation.channel](conversation)

        await asyncio.gather(*(one(conversation) for conversation in conversations))

    # Forged entities ----------------------------------------------------------------------------

    async def check_forged_slots(self, conversations: list[Conversation], concurrency: int) -> None:
        """Reads the tracker of every conversation that got a forged payload, through Rasa's API."""
        forged = [c for c in conversations if c.forged and c.conversation_id]
        self.result.forged_conversations = len(forged)
        self.result.forged_payloads = sum(
            1 for c in conversations for m in c.messages if m.category == "forged_entity"
        )
        semaphore = asyncio.Semaphore(concurrency)

        async def one(conversation: Conversation) -> None:
            async with semaphore:
                events = await self.tracker_events(conversation)
            if events is None:
                self.result.tracker_read_failures += 1
                return
            self.result.trackers_read += 1
            for slot in sorted(forged_slot_names(events, conversation.forged)):
                self.result.forged_slots.append((conversation.channel, slot))

        await asyncio.gather(*(one(conversation) for conversation in forged))

    async def tracker_events(self, conversation: Conversation) -> list[dict[str, Any]] | None:
        url = tracker_url(self.cluster.rasa_urls[conversation.server], conversation.conversation_id)
        params = {"token": self.cluster.rasa_api_token, "include_events": "ALL"}
        try:
            async with self.session.get(url, params=params, timeout=self.timeout) as response:
                if response.status != 200:
                    return None
                tracker = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        events = tracker.get("events") if isinstance(tracker, dict) else None
        return events if isinstance(events, list) else None


async def drain(queue: asyncio.Queue, first_wait: float) -> list[Any]:
    """What is in ``queue`` now or within ``first_wait``, then until it stays quiet a moment."""
    got: list[Any] = []
    wait = first_wait
    while True:
        if queue.empty():
            try:
                got.append(await asyncio.wait_for(queue.get(), wait))
            except asyncio.TimeoutError:
                return got
        else:
            got.append(queue.get_nowait())
        wait = QUIET_SECONDS


# --- Malformed requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One malformed request: where, how, and what it is meant to test."""

    target: str  # "web", "rasa_0", "action_1"
    method: str
    route: str  # the route's pattern, for the report
    path: str  # what is requested (quoted, with any query)
    variant: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    signed_in: bool = False

    def where(self) -> str:
        signed = ", signed in" if self.signed_in else ""
        return f"{self.target} {self.method} {self.route} ({self.variant}{signed})"


@lru_cache(maxsize=1)
def oversize_form() -> bytes:
    return b"csrf_token=forged&q=" + b"A" * OVERSIZE_BYTES


@lru_cache(maxsize=1)
def oversize_json() -> bytes:
    return b'{"sender": "fuzz", "message": "' + b"A" * OVERSIZE_BYTES + b'"}'


JSON_HEADERS = (("Content-Type", "application/json"),)
FORM_HEADERS = (("Content-Type", "application/x-www-form-urlencoded"),)
JUNK_QUERY = (
    "?page=-1&page=abc&status=%3Cscript%3E&channel=%00&created_from=9999-99-99"
    "&created_to=0000-00-00&attention=maybe&weeks=1000000000&after=abc"
    "&next=%2F%2Fevil.invalid%2F&reference=%27%20OR%201%3D1&action=nope"
)
# Values for the path arguments of the web app's routes, by converter: none names a real row.
PATH_VALUES = {
    "int": ("999999999", "0", str(10**30)),
    "path": ("no-such-file.js", "..%2Fapp.py", "%2e%2e/%2e%2e/etc/passwd"),
    "default": ("HSG-ZZZZZZ", "no-such-reference", "%00%E2%80%AE" + "A" * 300),
}
# Form fields with the wrong values, for posts that do carry a valid CSRF token.
JUNK_FIELDS = {
    "expected_status": "no-such-status",
    "to_status": "<script>",
    "note": "x" * 5000,
    "appointment_date": "9999-99-99",
    "appointment_time": "25:61",
    "expected_version": str(10**30),
    "text": "x" * 100_000,
    "q": "A" * 10_000,
    "username": "u" * 1000,
    "password": "p" * 10_000,
    "next": "//evil.invalid/",
}


def web_routes() -> list[tuple[str, frozenset[str], str]]:
    """(pattern, methods, endpoint) of every route of the web app, from Flask's url_map.

    The app is built here only to be read: its settings keep it off any file or store.
    """
    from web.app import create_app

    app = create_app(
        {
            "SECRET_KEY": secrets.token_hex(16),
            "RATE_LIMIT_STORAGE_URI": "memory://",
            "DATABASE_URL": "sqlite://",
        }
    )
    return sorted(
        (str(rule), frozenset(rule.methods or ()) - {"HEAD", "OPTIONS"}, rule.endpoint)
        for rule in app.url_map.iter_rules()
    )


def concrete_paths(pattern: str) -> list[str]:
    """The pattern with each argument filled in by each of its converter's PATH_VALUES."""
    arguments = ROUTE_ARGUMENT.findall(pattern)
    if not arguments:
        return [pattern]
    paths = []
    for index in range(3):
        path = pattern
        for converter, _name in arguments:
            values = PATH_VALUES.get(converter or "default", PATH_VALUES["default"])
            path = ROUTE_ARGUMENT.sub(values[index], path, count=1)
        paths.append(path)
    return paths


def web_probes(
    routes: list[tuple[str, frozenset[str], str]], csrf_token: str | None, signed_in: bool
) -> list[Probe]:
    """Malformed requests at every web route, as a signed-out visitor or the staff account."""
    probes = []
    for pattern, methods, endpoint in routes:
        for number, path in enumerate(concrete_paths(pattern)):
            probes += route_probes(
                partial(Probe, "web", route=pattern, path=path, signed_in=signed_in),
                methods,
                # A valid token with missing or wrong fields: never to sign-out, which would work.
                csrf_token if endpoint != "staff.logout" else None,
                oversize=number == 0,
            )
    return probes


def route_probes(
    probe: Callable[..., Probe], methods: frozenset[str], csrf_token: str | None, oversize: bool
) -> list[Probe]:
    """The probes of one concrete path: wrong methods always, malformed bodies where it posts."""
    probes = []
    if "GET" in methods:
        probes.append(probe(method="GET", variant="plain"))
        probes.append(probe(method="GET", variant="junk query"))
        probes.append(probe(method="DELETE", variant="wrong method"))
    if "POST" not in methods:
        probes.append(
            probe(method="POST", variant="wrong method", body=b"a=1", headers=FORM_HEADERS)
        )
        return probes
    if "GET" not in methods:
        probes.append(probe(method="GET", variant="wrong method"))

    def form(variant: str, body: bytes) -> Probe:
        return probe(method="POST", variant=variant, body=body, headers=FORM_HEADERS)

    probes += [
        probe(method="POST", variant="no body"),
        probe(
            method="POST", variant="JSON body", body=b'{"csrf_token": "x"}', headers=JSON_HEADERS
        ),
        probe(method="POST", variant="invalid JSON", body=b'{"csrf_token": ', headers=JSON_HEADERS),
        form("forged CSRF token", form_fields({"csrf_token": "forged"})),
        form("no CSRF token, wrong fields", form_fields(JUNK_FIELDS)),
    ]
    if oversize:
        probes.append(form("oversize body", oversize_form()))
    if csrf_token:
        probes.append(form("valid CSRF, no fields", form_fields({"csrf_token": csrf_token})))
        probes.append(
            form("valid CSRF, wrong fields", form_fields(dict(JUNK_FIELDS, csrf_token=csrf_token)))
        )
    return [
        replace(p, path=p.path + JUNK_QUERY) if p.variant == "junk query" else p for p in probes
    ]


def form_fields(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def rest_probes(target: str) -> list[Probe]:
    """The REST channel: bodies it must refuse with a 4xx, never a 5xx."""
    route = REST_PATH
    bodies = {
        "no body": (None, ()),
        "form body": (b"sender=a&message=b", FORM_HEADERS),
        "text/plain": (b'{"sender": "a", "message": "b"}', (("Content-Type", "text/plain"),)),
        "invalid JSON": (b'{"sender": ', JSON_HEADERS),
        "JSON array": (b"[]", JSON_HEADERS),
        "JSON string": (b'"hello"', JSON_HEADERS),
        "JSON number": (b"42", JSON_HEADERS),
        "no sender": (b'{"message": "hi"}', JSON_HEADERS),
        "no message": (b'{"sender": "fuzz-probe"}', JSON_HEADERS),
        "null sender": (b'{"sender": null, "message": "hi"}', JSON_HEADERS),
        "empty sender": (b'{"sender": "", "message": "hi"}', JSON_HEADERS),
        "object sender": (b'{"sender": {"a": 1}, "message": "hi"}', JSON_HEADERS),
        "list message": (b'{"sender": "fuzz-probe", "message": ["hi"]}', JSON_HEADERS),
        "sender of 10,000 characters": (
            json.dumps({"sender": "s" * 10_000, "message": "hi"}).encode(),
            JSON_HEADERS,
        ),
        "invalid UTF-8 in sender": (b'{"sender": "\xff\xfe", "message": "hi"}', JSON_HEADERS),
        "oversize body": (oversize_json(), JSON_HEADERS),
    }
    probes = [
        Probe(target, "POST", route, route, variant, body, headers)
        for variant, (body, headers) in bodies.items()
    ]
    probes += [
        Probe(target, method, route, route, "wrong method") for method in ("GET", "PUT", "DELETE")
    ]
    probes += [
        Probe(target, "GET", "/webhooks/rest/", "/webhooks/rest/", "health"),
        Probe(target, "POST", "/webhooks/rest/", "/webhooks/rest/", "wrong method"),
    ]
    return probes


def twilio_probes(target: str, rasa_url: str, validator: RequestValidator) -> list[Probe]:
    """The SMS webhook and status callback: unsigned, forged, tampered, incomplete, oversize."""
    url = rasa_url + SMS_PATH
    params = {
        "MessageSid": "SM" + "0" * 32,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": f"{SMS_NUMBER_PREFIX}0000",
        "To": CLINIC_SMS_NUMBER,
        "Body": "hello",
    }
    body, seen = form_encode(list(params.items()))
    signature = validator.compute_signature(url, seen)
    other_token = RequestValidator("not-the-token").compute_signature(url, seen)
    https_url = validator.compute_signature(url.replace("http://", "https://"), seen)
    tampered, _ = form_encode(list(dict(params, Body="tampered").items()))
    no_from = {key: value for key, value in params.items() if key != "From"}
    no_from_body, no_from_seen = form_encode(list(no_from.items()))

    def signed(sig: str) -> tuple[tuple[str, str], ...]:
        return (*FORM_HEADERS, ("X-Twilio-Signature", sig))

    variants = {
        "no signature": (body, FORM_HEADERS),
        "forged signature": (body, signed("Zm9yZ2VkIHNpZ25hdHVyZQ==")),
        "another account's signature": (body, signed(other_token)),
        "signed for another URL": (body, signed(https_url)),
        "tampered after signing": (tampered, signed(signature)),
        "empty signature header": (body, signed("")),
        "signed, no body": (None, signed(validator.compute_signature(url, {}))),
        "signed, no From": (no_from_body, signed(validator.compute_signature(url, no_from_seen))),
        "JSON body, signed as empty": (
            json.dumps(params).encode(),
            (*JSON_HEADERS, ("X-Twilio-Signature", validator.compute_signature(url, {}))),
        ),
        "oversize body": (oversize_form(), signed(signature)),
    }
    probes = [
        Probe(target, "POST", SMS_PATH, SMS_PATH, variant, data, headers)
        for variant, (data, headers) in variants.items()
    ]
    probes.append(Probe(target, "GET", SMS_PATH, SMS_PATH, "wrong method"))
    status_url = rasa_url + SMS_STATUS_PATH
    status_params = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"}
    status_body, status_seen = form_encode(list(status_params.items()))
    probes += [
        Probe(target, "POST", SMS_STATUS_PATH, SMS_STATUS_PATH, "no signature", status_body, FORM_HEADERS),
        Probe(
            target, "POST", SMS_STATUS_PATH, SMS_STATUS_PATH, "signed, no MessageSid", None,
            signed(validator.compute_signature(status_url, {})),
        ),
        Probe(
            target, "POST", SMS_STATUS_PATH, SMS_STATUS_PATH, "signed, unknown MessageSid",
            status_body, signed(validator.compute_signature(status_url, status_seen)),
        ),
        Probe(target, "GET", SMS_STATUS_PATH, SMS_STATUS_PATH, "wrong method"),
        Probe(target, "GET", "/webhooks/twilio/", "/webhooks/twilio/", "health"),
        Probe(target, "POST", "/webhooks/twilio/", "/webhooks/twilio/", "wrong method"),
    ]  # fmt: skip
    return probes


def socketio_http_probes(target: str) -> list[Probe]:
    """engine.io's HTTP side: bad versions, transports, sessions and origins."""
    route = "/socket.io/"
    cases = [
        ("GET", "", "no query", None, ()),
        ("GET", "?EIO=4&transport=polling", "foreign origin", None, (("Origin", "http://evil.invalid"),)),
        ("GET", "?EIO=99&transport=polling", "unknown protocol version", None, ()),
        ("GET", "?EIO=4&transport=bogus", "unknown transport", None, ()),
        ("GET", "?EIO=4&transport=websocket", "websocket without upgrade", None, ()),
        ("POST", "?EIO=4&transport=polling&sid=no-such-sid", "unknown session", b"4junk", ()),
        ("POST", "?EIO=4&transport=polling&sid=no-such-sid", "oversize body", oversize_form(), ()),
        ("DELETE", "?EIO=4&transport=polling", "wrong method", None, ()),
    ]  # fmt: skip
    probes = [
        Probe(target, method, route, route + query, variant, body, headers)
        for method, query, variant, body, headers in cases
    ]
    probes += [
        Probe(target, "GET", "/webhooks/socketio/", "/webhooks/socketio/", "health"),
        Probe(target, "POST", "/webhooks/socketio/", "/webhooks/socketio/", "wrong method"),
    ]
    return probes


# Rasa's HTTP API: asked without a token, or with a forged one, it must refuse (never train).
RASA_API_ROUTES = (
    ("GET", "/status"),
    ("GET", "/domain"),
    ("GET", "/conversations/<conversation_id>/tracker"),
    ("POST", "/conversations/<conversation_id>/tracker/events"),
    ("PUT", "/conversations/<conversation_id>/tracker/events"),
    ("GET", "/conversations/<conversation_id>/story"),
    ("POST", "/conversations/<conversation_id>/execute"),
    ("POST", "/conversations/<conversation_id>/trigger_intent"),
    ("POST", "/conversations/<conversation_id>/predict"),
    ("POST", "/conversations/<conversation_id>/messages"),
    ("POST", "/model/train"),
    ("POST", "/model/test/stories"),
    ("POST", "/model/test/intents"),
    ("POST", "/model/predict"),
    ("POST", "/model/parse"),
    ("PUT", "/model"),
    ("DELETE", "/model"),
)


def rasa_api_probes(target: str, api_token: str) -> list[Probe]:
    """The API refuses without its token; with it, only reads of unknown conversations."""
    probes = []
    for method, route in RASA_API_ROUTES:
        path = route.replace("<conversation_id>", "sms:+10000000000")
        body = b'{"event": "slot", "name": "phone", "value": "+15555550100"}'
        kwargs = {"body": body, "headers": JSON_HEADERS} if method in ("POST", "PUT") else {}
        probes += [
            Probe(target, method, route, path, "no token", **kwargs),
            Probe(target, method, route, path + "?token=forged", "forged token", **kwargs),
            Probe(
                target, method, route, path, "forged JWT", kwargs.get("body"),
                (*kwargs.get("headers", ()), ("Authorization", "Bearer forged.jwt.token")),
            ),
        ]  # fmt: skip
    tracker = "/conversations/<conversation_id>/tracker"
    token = quote(api_token)
    reads = {
        "unknown conversation": f"/conversations/fuzz-no-such/tracker?token={token}",
        "wrong include_events": f"/conversations/fuzz-no-such/tracker?token={token}&include_events=NOPE",
        "wrong until": f"/conversations/fuzz-no-such/tracker?token={token}&until=abc",
        "id of 5,000 characters": f"/conversations/{'i' * 5000}/tracker?token={token}",
        "NUL in the id": f"/conversations/fuzz%00id/tracker?token={token}",
    }
    probes += [Probe(target, "GET", tracker, path, variant) for variant, path in reads.items()]
    probes += [
        Probe(target, "GET", "/", "/", "public"),
        Probe(target, "GET", "/version", "/version", "public"),
        Probe(target, "GET", "/no-such-route", "/no-such-route", "unknown route"),
    ]
    return probes


def action_server_probes(target: str) -> list[Probe]:
    """The action server refuses callers without its secret, and unknown routes, calmly."""
    call = b'{"next_action": "action_submit_appointment_request", "tracker": {}}'
    forged_token = (*JSON_HEADERS, ("X-Action-Server-Token", "forged"))
    return [
        Probe(target, "GET", "/health", "/health", "health"),
        Probe(target, "POST", "/webhook", "/webhook", "no token", call, JSON_HEADERS),
        Probe(target, "POST", "/webhook", "/webhook", "forged token", call, forged_token),
        Probe(target, "POST", "/webhook", "/webhook", "invalid JSON", b"{", forged_token),
        Probe(target, "POST", "/webhook", "/webhook", "oversize body", oversize_json(), JSON_HEADERS),
        Probe(target, "GET", "/webhook", "/webhook", "wrong method"),
        Probe(target, "GET", "/actions", "/actions", "no token"),
        Probe(target, "GET", "/no-such-route", "/no-such-route", "unknown route"),
    ]  # fmt: skip


def csrf_token_in(html: str) -> str | None:
    """The value of the page's first csrf_token input."""
    field_match = CSRF_INPUT.search(html)
    value = INPUT_VALUE.search(field_match.group(0)) if field_match else None
    return value.group(1) if value else None


class MalformedRequests:
    """Sends the probes: signed out with a session of its own, signed in with the staff account's."""

    def __init__(self, run: FuzzRun, concurrency: int) -> None:
        self.run = run
        self.staff_cookies = aiohttp.CookieJar(unsafe=True)
        self.staff_token: str | None = None
        self.cluster = run.cluster
        self.result = run.result
        self.semaphore = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)

    def base_url(self, target: str) -> str:
        if target == "web":
            return self.cluster.web_url
        kind, _, index = target.partition("_")
        urls = self.cluster.rasa_urls if kind == "rasa" else self.cluster.action_urls
        return urls[int(index)]

    async def send(self, session: aiohttp.ClientSession, probe: Probe) -> None:
        """One probe; the status is counted, a 5xx recorded with its route."""
        url = self.base_url(probe.target) + probe.path
        async with self.semaphore:
            self.result.malformed_requests += 1
            try:
                async with session.request(
                    probe.method,
                    URL(url, encoded=True),
                    data=probe.body,
                    headers=dict(probe.headers),
                    allow_redirects=False,
                    timeout=self.timeout,
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                # Servers may close the connection on a body they will not read (oversize).
                self.result.malformed_dropped += 1
                return
        self.result.malformed_statuses[status] += 1
        if status >= 500:
            self.result.malformed_5xx += 1
            self.result.server_error(probe.where(), status)

    async def send_all(self, session: aiohttp.ClientSession, probes: list[Probe]) -> None:
        await asyncio.gather(*(self.send(session, probe) for probe in probes))

    async def sign_in(self, session: aiohttp.ClientSession) -> str | None:
        """Signs the staff account in; the CSRF token of a signed-in page, or None on failure."""
        web = self.cluster.web_url
        async with session.get(f"{web}/staff/login", timeout=self.timeout) as response:
            token = csrf_token_in(await response.text())
        form = {
            "csrf_token": token or "",
            "username": self.cluster.staff_username,
            "password": self.cluster.staff_password,
            "next": "",
        }
        async with session.post(
            f"{web}/staff/login", data=form, allow_redirects=False, timeout=self.timeout
        ) as response:
            if response.status != 302:
                logger.warning("Fuzz: the staff account could not sign in (%d)", response.status)
                return None
        async with session.get(f"{web}/staff/requests", timeout=self.timeout) as response:
            return csrf_token_in(await response.text()) if response.status == 200 else None

    async def inbox_probes(self, session: aiohttp.ClientSession) -> list[Probe]:
        """GETs of the inbox conversations the fuzz created (their pages show what was sent)."""
        async with session.get(
            f"{self.cluster.web_url}/staff/inbox.json", timeout=self.timeout
        ) as response:
            rows = (
                (await response.json()).get("conversations", []) if response.status == 200 else []
            )
        probes = []
        for row in rows[:5]:
            number = int(row["id"])
            page = "/staff/inbox/<int:handoff_id>"
            probes += [
                Probe("web", "GET", page, f"/staff/inbox/{number}", "existing conversation", signed_in=True),
                Probe(
                    "web", "GET", page + "/messages.json",
                    f"/staff/inbox/{number}/messages.json?after=abc", "existing, junk after", signed_in=True,
                ),
                Probe(
                    "web", "GET", page + "/messages.json",
                    f"/staff/inbox/{number}/messages.json?after={10**30}", "existing, huge after",
                    signed_in=True,
                ),
            ]  # fmt: skip
        return probes

    async def run_all(self) -> None:
        """Rasa, action servers and the web app signed out; then the staff area signed in."""
        routes = await asyncio.to_thread(web_routes)
        probes: list[Probe] = []
        for index, url in enumerate(self.cluster.rasa_urls):
            target = f"rasa_{index}"
            probes += rest_probes(target)
            probes += twilio_probes(target, url, self.run.validator)
            probes += socketio_http_probes(target)
            probes += rasa_api_probes(target, self.cluster.rasa_api_token)
        for index in range(len(self.cluster.action_urls)):
            probes += action_server_probes(f"action_{index}")
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1 (an IP) are kept too
        async with aiohttp.ClientSession(cookie_jar=jar) as signed_out:
            async with signed_out.get(
                f"{self.cluster.web_url}/staff/login", timeout=self.timeout
            ) as response:
                signed_out_token = csrf_token_in(await response.text())
            probes += web_probes(routes, signed_out_token, signed_in=False)
            await self.send_all(signed_out, probes)
        # One sign-in for every pass: the staff area allows 10 sign-in posts a minute per address
        # (web/staff/throttle.py), and the signed-out probes spend them.
        async with aiohttp.ClientSession(cookie_jar=self.staff_cookies) as staff:
            if self.staff_token is None:
                self.staff_token = await self.sign_in(staff)
            token = self.staff_token
            self.result.staff_signed_in = token is not None
            signed_in_probes: list[Probe] = []
            if token is not None:
                signed_in_probes = web_probes(routes, token, signed_in=True)
                signed_in_probes += await self.inbox_probes(staff)
            await self.send_all(staff, signed_in_probes)
            probes += signed_in_probes
        self.result.malformed_routes = len({(probe.target, probe.route) for probe in probes})


# --- Socket.io events that are not messages ----------------------------------------------------


async def socketio_event_probes(run: FuzzRun) -> None:
    """Forged session tokens, messages before a session, unknown events, an oversize packet.

    Counted by what happened: a forged token must get a new conversation, never its own.
    """
    url = run.cluster.rasa_urls[0]
    forged_tokens = ["0" * 32 + "." + "0" * 32, {"nested": "token"}, "t" * 10_000, None, 42]
    for forged in forged_tokens:
        outcome = await socketio_session_probe(url, run.cluster.web_origin, forged)
        run.result.socketio_probes[outcome] += 1


async def socketio_session_probe(url: str, origin: str, forged: Any) -> str:
    """What a socket gets for one forged session token, after a message sent before any session.

    Last, a packet past the channel's size limit: the server may drop the socket for it.
    """
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False, request_timeout=30)
    confirmed: asyncio.Future = asyncio.get_running_loop().create_future()

    @client.on("session_confirm")
    async def session_confirm(token: Any) -> None:
        if not confirmed.done():
            confirmed.set_result(token)

    try:
        await client.connect(
            url, headers={"Origin": origin}, transports=["websocket"], socketio_path="socket.io"
        )
        await client.call("user_uttered", {"message": "before any session"}, timeout=30)
        with contextlib.suppress(SocketIOError):
            # No handler: python-socketio does not acknowledge it, so this times out.
            await client.call("no_such_event", {"message": "?"}, timeout=3)
        await client.emit("session_request", {"session_id": forged})
        token = await asyncio.wait_for(confirmed, 30)
        await client.emit("user_uttered", {"message": "x" * 20_000})
        await asyncio.sleep(1)
    except (SocketIOError, asyncio.TimeoutError) as error:
        return f"socket failed: {type(error).__name__}"
    finally:
        await client.disconnect()
    if token == forged:
        return FORGED_SESSION_ACCEPTED
    return "forged session token refused (new conversation)"


# --- The scenario ------------------------------------------------------------------------------

# The web app's resident memory levels off after its third pass of the malformed requests
# (measured: 167, 176, 192, 194, 194 MB after passes 1-5): allocator arenas and worker threads
# reaching their working size, not a leak. The warm-up runs that many passes.
WARM_UP_MALFORMED_PASSES = 3


async def run_fuzz(
    cluster: SoakCluster,
    messages: int = 10_000,
    warm_up: int = 1_000,
    concurrency: int = 20,
    seed: int = 0,
) -> FuzzResult:
    """Warm-up, memory, ``messages`` more and the malformed requests, forged slots, memory again.

    The malformed requests go in the warm-up (the web app does nothing else there, so its first
    pages would otherwise look like growth), ``WARM_UP_MALFORMED_PASSES`` times, and once more
    after the messages.
    """
    check_loopback(cluster)
    started = time.monotonic()
    result = FuzzResult(seed=seed, warm_up=warm_up, messages=messages, concurrency=concurrency)
    stream = generate_messages(warm_up + messages, seed)
    servers = len(cluster.rasa_urls)
    warm_conversations = plan_conversations(stream[:warm_up], servers, seed)
    conversations = plan_conversations(
        stream[warm_up:], servers, seed, first_number=len(warm_conversations)
    )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        run = FuzzRun(cluster, result, session)
        malformed = MalformedRequests(run, concurrency)
        await run.converse(warm_conversations, concurrency)
        for _ in range(WARM_UP_MALFORMED_PASSES):
            await malformed.run_all()
        logger.info("Fuzz: warm-up done in %.0f s", time.monotonic() - started)
        result.memory_after_warm_up = await asyncio.to_thread(cluster.resident_memory_mb)
        # Memory every tenth of the way: a trend, so growth that levels off is told from a leak.
        tenth = max(1, len(conversations) // 10)
        for start in range(0, len(conversations), tenth):
            await run.converse(conversations[start : start + tenth], concurrency)
            memory = await asyncio.to_thread(cluster.resident_memory_mb)
            result.memory_trace.append(
                (sum(len(c.messages) for c in conversations[: start + tenth]), memory)
            )
        logger.info("Fuzz: %d messages sent in %.0f s", messages, time.monotonic() - started)
        await malformed.run_all()
        await socketio_event_probes(run)
        await run.check_forged_slots(warm_conversations + conversations, concurrency)
    result.memory_after = await asyncio.to_thread(cluster.resident_memory_mb)
    result.all_answering_after = await asyncio.to_thread(cluster.all_answering)
    result.elapsed = time.monotonic() - started
    return result
