"""What one conversation or one client address may send: checked in the channel, before any NLU runs.

Over-long messages and floods are answered here with a friendly line (never an error), so they
cost no spaCy, n-gram or encoder work. Counters live in ``RATE_LIMIT_STORAGE_URI``: memory for
one server, Redis (``redis://...``) so that several Rasa servers count together.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from rasa.core.channels.channel import UserMessage

from clinic.settings import load_clinic_settings

logger = logging.getLogger(__name__)

# The message guard (config.yml) refuses the same length inside NLU; here it is refused first.
MAX_MESSAGE_CHARS = 1000
# The socket.io transport drops anything bigger than this outright (engine.io packets, bytes):
# room for a message at the limit in any script, far below the 1 MB default.
MAX_SOCKET_PACKET_BYTES = 16 * 1024
# A patient types a message every few seconds; a flood sends dozens.
DEFAULT_PER_CONVERSATION = "30/minute"
# Several patients can share one address (a clinic's waiting-room Wi-Fi).
DEFAULT_PER_ADDRESS = "120/minute"
DEFAULT_STORAGE_URI = "memory://"

# Half of a UTF-16 pair with no other half: JSON can carry one ("\ud800"), spaCy cannot encode it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters other than tab and line breaks: PostgreSQL refuses NUL in text.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Rasa's default intents "back" (silently undoes the patient's last message) and "restart" (forgets
# her conversation, a staff takeover's pause included: the one message Rasa 3.6 acts on while
# paused). Patients' channels never offer them, so when typed they are read as the words they are.
TYPED_DEFAULT_INTENT = re.compile(r"^\s*/(back|restart)\b", re.IGNORECASE)


def client_address(request: Any) -> str | None:
    """A Sanic request's client address; behind a proxy it follows SANIC_PROXIES_COUNT."""
    return request.remote_addr or request.ip


def counter_key(value: str) -> str:
    """A counter's name without the number or address in it (SMS ids hold phone numbers)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def readable_text(text: str) -> str:
    """The text as NLU and the databases can take it: no lone surrogates, no control characters."""
    text = CONTROL_CHARACTERS.sub("", LONE_SURROGATE.sub("\ufffd", text))
    return TYPED_DEFAULT_INTENT.sub(lambda typed: typed.group(1).lower(), text)


def with_readable_text(
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
) -> Callable[[UserMessage], Awaitable[Any]]:
    """Rasa's message handler, given each message's ``readable_text``.

    Rasa warns with the whole message when a typed "/intent{...}" has arguments it cannot
    parse, which would put the patient's words (a name, a date of birth) in the server's log:
    that warning is switched off here, where each channel is built (after Rasa has set its own
    warning filters, which would otherwise come first).
    """
    warnings.filterwarnings(
        "ignore", message="Failed to parse arguments in line", category=UserWarning
    )

    @functools.wraps(on_new_message)
    async def handle(message: UserMessage) -> Any:
        if isinstance(message.text, str):
            message.text = readable_text(message.text)
        return await on_new_message(message)

    return handle


def nothing_to_read_text() -> str:
    clinic = load_clinic_settings()
    return (
        "I didn't get any words in that message. What would you like to know about the HSG? "
        f"If something feels wrong right now, call {clinic.name} at {clinic.phone}, "
        "or 911 in an emergency."
    )


def too_long_text() -> str:
    clinic = load_clinic_settings()
    return (
        f"That message is too long for me to read (at most {MAX_MESSAGE_CHARS:,} characters). "
        "Could you ask it in a shorter message? If something feels wrong right now, call "
        f"{clinic.name} at {clinic.phone}, or 911 in an emergency."
    )


def slow_down_text() -> str:
    clinic = load_clinic_settings()
    return (
        "You're sending messages faster than I can answer. Please wait a moment, then send "
        f"your question again. If it's urgent, call {clinic.phone}, or 911 in an emergency."
    )


@dataclass(frozen=True)
class MessageGate:
    """Refuses over-long messages and floods, per conversation and per client address."""

    per_conversation: RateLimitItem
    per_address: RateLimitItem
    # limits 2.x's strategies keep only a weak reference to their storage: the gate holds it.
    storage: Storage
    limiter: MovingWindowRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limiter", MovingWindowRateLimiter(self.storage))

    @classmethod
    def from_environment(cls) -> MessageGate:
        storage = storage_from_string(
            os.environ.get("RATE_LIMIT_STORAGE_URI", "").strip() or DEFAULT_STORAGE_URI
        )
        return cls(
            per_conversation=parse(
                os.environ.get("RATE_LIMIT_PER_CONVERSATION", "").strip()
                or DEFAULT_PER_CONVERSATION
            ),
            per_address=parse(
                os.environ.get("RATE_LIMIT_PER_ADDRESS", "").strip() or DEFAULT_PER_ADDRESS
            ),
            storage=storage,
        )

    def refusal(self, text: str, conversation_id: str, client_address: str | None) -> str | None:
        """The friendly reply that stands instead of an answer, or None to let the message in."""
        if len(text) > MAX_MESSAGE_CHARS:
            logger.info("Refused a message of %d characters before NLU", len(text))
            return too_long_text()
        if not readable_text(text).strip():
            # Empty, spaces only or control characters only: no words to classify.
            return nothing_to_read_text()
        if not self.allows(self.per_conversation, "conversation", conversation_id):
            logger.info("Rate limit reached for one conversation; answered 'slow down'")
            return slow_down_text()
        if client_address and not self.allows(self.per_address, "address", client_address):
            logger.info("Rate limit reached for one client address; answered 'slow down'")
            return slow_down_text()
        return None

    def allows(self, limit: RateLimitItem, kind: str, value: str) -> bool:
        """Counts one message; True when the store of counters (Redis) cannot be reached.

        A flood guard that refused every patient while Redis is down would do more harm than
        the flood: the message goes on, and Rasa's own lock store decides what happens next.
        """
        try:
            return self.limiter.hit(limit, kind, counter_key(value))
        except Exception as error:  # noqa: BLE001 - the limits package raises its store's errors
            logger.warning(
                "Rate-limit counters unavailable (%s): message let in", type(error).__name__
            )
            return True
