"""Conversation ids belong to the server: each channel names its conversations in its own namespace.

A client never chooses an id that reaches someone else's conversation:
- the web widget gets an id issued here, signed with a server secret; a ``session_request``
  with anything else starts a new conversation under a new id;
- an SMS conversation is ``sms:`` plus the number Twilio vouched for (a signed post);
- REST senders are put under ``rest:``, so no REST sender can name a web or SMS conversation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from server_secrets import shared_secret

WEB_PREFIX = "web:"
SMS_PREFIX = "sms:"
REST_PREFIX = "rest:"
SECRET_ENV = "CONVERSATION_ID_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_FILE = "conversation_id_secret"  # noqa: S105 - a file name under var/
# 128 random bits for the id, and an HMAC-SHA256 tag (truncated to 128 bits) that proves the
# server issued it.
ID_BYTES = 16
TAG_HEX_LENGTH = 32


def sms_conversation_id(phone_e164: str) -> str:
    return SMS_PREFIX + phone_e164


def sms_phone_number(conversation_id: str) -> str | None:
    """The E.164 number of an SMS conversation id; None for any other channel's id."""
    if not conversation_id.startswith(SMS_PREFIX):
        return None
    number = conversation_id[len(SMS_PREFIX) :]
    return number if number.startswith("+") and number[1:].isdigit() else None


def rest_conversation_id(sender: str) -> str:
    return REST_PREFIX + sender


class WebConversationIds:
    """Issues and checks the widget's session tokens; a token maps to one ``web:`` conversation."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the conversation id secret must not be empty")
        self._key = secret.encode()

    @classmethod
    def from_environment(cls) -> WebConversationIds:
        return cls(shared_secret(SECRET_ENV, SECRET_FILE))

    def _tag(self, random_part: str) -> str:
        digest = hmac.new(self._key, random_part.encode(), hashlib.sha256).hexdigest()
        return digest[:TAG_HEX_LENGTH]

    def issue(self) -> str:
        """A new session token for the widget to keep: ``<random>.<tag>``."""
        random_part = secrets.token_hex(ID_BYTES)
        return f"{random_part}.{self._tag(random_part)}"

    def conversation_id(self, token: object) -> str | None:
        """The conversation a token names, or None when this server did not issue it."""
        if not isinstance(token, str) or len(token) > 2 * ID_BYTES + 1 + TAG_HEX_LENGTH:
            return None
        random_part, _, tag = token.partition(".")
        if len(random_part) != 2 * ID_BYTES or not tag:
            return None
        if not hmac.compare_digest(tag, self._tag(random_part)):
            return None
        return WEB_PREFIX + random_part
