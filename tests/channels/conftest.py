"""Helpers for talking to the running assistant as Twilio would: signed form posts, TwiML back."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional

import pytest
import requests
from twilio.request_validator import RequestValidator

WEBHOOK_PATH = "/webhooks/twilio/webhook"


# Fictional US numbers (555-0100 to 555-0199), each handed out once, so that one test's STOP
# or conversation never reaches another's.
_FICTIONAL_NUMBERS = iter(random.sample(range(100, 200), 100))


@pytest.fixture
def phone_number() -> str:
    """A number of its own for this test's SMS conversation."""
    return f"+120155501{next(_FICTIONAL_NUMBERS) - 100:02d}"


@dataclass
class SmsReply:
    status: int
    content_type: str
    body: str

    @property
    def messages(self) -> List[str]:
        """The texts of the TwiML <Message> elements."""
        root = ET.fromstring(self.body)  # noqa: S314 - our own server's TwiML
        assert root.tag == "Response"
        return [message.text or "" for message in root.findall("Message")]

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


class TwilioClient:
    """Posts to the SMS webhook like Twilio does, signing with the test account's token."""

    def __init__(self, rasa_url: str, auth_token: str) -> None:
        self.url = f"{rasa_url}{WEBHOOK_PATH}"
        self.validator = RequestValidator(auth_token)

    def params(self, sender: str, body: str, **extra: str) -> Dict[str, str]:
        return {
            "MessageSid": f"SM{random.getrandbits(128):032x}",
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": "+12015550100",
            "Body": body,
            "NumMedia": "0",
            **extra,
        }

    def post(
        self,
        params: Dict[str, str],
        signature: Optional[str] = "sign",
        headers: Optional[Dict[str, str]] = None,
    ) -> SmsReply:
        """Posts ``params``; ``signature="sign"`` signs them correctly, None sends no header."""
        all_headers = dict(headers or {})
        if signature == "sign":
            signature = self.validator.compute_signature(self.url, params)
        if signature is not None:
            all_headers["X-Twilio-Signature"] = signature
        response = requests.post(self.url, data=params, headers=all_headers, timeout=60)
        return SmsReply(
            response.status_code, response.headers.get("Content-Type", ""), response.text
        )

    def text(self, sender: str, body: str, **extra: str) -> SmsReply:
        reply = self.post(self.params(sender, body, **extra))
        assert reply.status == 200, reply.body
        assert reply.content_type.startswith("text/xml")
        return reply


@pytest.fixture(scope="session")
def twilio(assistant) -> TwilioClient:
    return TwilioClient(assistant.rasa_url, assistant.env["TWILIO_AUTH_TOKEN"])
