"""Sends one SMS through Twilio's REST API with the official client: no plan logic in here.

The staff takeover reuses it for staff messages. Settings come from the environment, read here
only: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, and TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID;
TWILIO_STATUS_CALLBACK_URL (default: RASA_PUBLIC_URL + /webhooks/twilio/status); and
TWILIO_API_BASE_URL, which points the client at another server speaking Twilio's Messages API
(the tests' stand-in).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
DEFAULT_PUBLIC_URL = "http://localhost:5005"
# Twilio error codes that will not go away by trying again (invalid or unsubscribed number...).
# https://www.twilio.com/docs/api/errors: 21211 invalid To, 21610 unsubscribed, 21614 not mobile.
PERMANENT_ERROR_CODES = frozenset({21211, 21408, 21610, 21612, 21614})


class SendError(Exception):
    """Twilio did not take the message; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    from_number: str
    messaging_service_sid: str
    status_callback_url: str
    api_base_url: str


def twilio_settings(environ: Mapping[str, str] | None = None) -> TwilioSettings | None:
    """The Twilio settings, or None when SMS is not configured (then nothing is ever sent)."""
    environ = os.environ if environ is None else environ

    def value(name: str) -> str:
        return (environ.get(name) or "").strip()

    if not (value("TWILIO_ACCOUNT_SID") and value("TWILIO_AUTH_TOKEN")):
        return None
    if not (value("TWILIO_FROM_NUMBER") or value("TWILIO_MESSAGING_SERVICE_SID")):
        return None
    public_url = (value("RASA_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    return TwilioSettings(
        account_sid=value("TWILIO_ACCOUNT_SID"),
        auth_token=value("TWILIO_AUTH_TOKEN"),
        from_number=value("TWILIO_FROM_NUMBER"),
        messaging_service_sid=value("TWILIO_MESSAGING_SERVICE_SID"),
        status_callback_url=value("TWILIO_STATUS_CALLBACK_URL")
        or public_url + STATUS_CALLBACK_PATH,
        api_base_url=value("TWILIO_API_BASE_URL"),
    )


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str


class TwilioSender:
    """``send_sms(to, body)`` through one Twilio client."""

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        self.client = Client(settings.account_sid, settings.auth_token)
        if settings.api_base_url:
            # The "api" domain's base URL (https://api.twilio.com by default): the Messages API.
            self.client.api.base_url = settings.api_base_url.rstrip("/")

    def send_sms(
        self, to_e164: str, body: str, status_callback_url: str | None = None
    ) -> SentMessage:
        """Hands one text to Twilio; returns its SID and Twilio's status (usually "queued")."""
        sender = (
            {"messaging_service_sid": self.settings.messaging_service_sid}
            if self.settings.messaging_service_sid
            else {"from_": self.settings.from_number}
        )
        try:
            message = self.client.messages.create(
                to=to_e164,
                body=body,
                status_callback=status_callback_url or self.settings.status_callback_url,
                **sender,
            )
        except TwilioRestException as error:
            retryable = error.status == 429 or error.status >= 500
            retryable = retryable and error.code not in PERMANENT_ERROR_CODES
            raise SendError(
                f"Twilio refused it (HTTP {error.status}, error {error.code})", retryable
            ) from None
        except (TwilioException, requests.RequestException) as error:
            raise SendError(f"Could not reach Twilio ({type(error).__name__})", True) from None
        return SentMessage(sid=message.sid, status=message.status or "queued")

    def find_sent(self, to_e164: str, body: str) -> SentMessage | None:
        """A message with this body among the latest 50 Twilio took for this number, if any.

        How a worker that stopped mid-send learns whether its text reached Twilio. The body names
        the appointment's day and time and the kind of text, so it identifies the planned row.
        """
        try:
            # Not filtered by DateSent: a message still queued has none yet. Newest first.
            messages = self.client.messages.list(to=to_e164, limit=50)
        except (TwilioException, requests.RequestException) as error:
            raise SendError(
                f"Could not list Twilio's messages ({type(error).__name__})", True
            ) from None
        for message in messages:
            if (message.body or "") == body:
                return SentMessage(sid=message.sid, status=message.status or "queued")
        return None
