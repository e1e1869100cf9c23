"""The SMS channel's own checks, without a Rasa server: signatures, proxies, a missing token."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Dict, Optional
from urllib.parse import urlencode

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator

from channels import twilio_sms
from channels.twilio_sms import (
    TwilioSmsInput,
    TwilioSmsOutput,
    buttons_offered_last,
    posted_params,
    requested_url,
    twiml,
)
from clinic.settings import load_clinic_settings

TOKEN = "unit-test-token"
WEBHOOK_PATH = "/webhooks/twilio/webhook"
PARAMS = {"From": "+12015550123", "Body": "does an hsg hurt", "MessageSid": "SM123"}


def fake_request(
    params: Dict[str, str],
    signature: Optional[str],
    headers: Optional[Dict[str, str]] = None,
    host: str = "127.0.0.1:5005",
) -> SimpleNamespace:
    all_headers = dict(headers or {})
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    return SimpleNamespace(
        headers=all_headers,
        body=urlencode(params).encode(),
        scheme="http",
        host=host,
        path=WEBHOOK_PATH,
        query_string="",
    )


def signed(channel: TwilioSmsInput, request: SimpleNamespace) -> bool:
    return channel.is_signed_by_twilio(request, posted_params(request))


def signature_for(url: str, params: Dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def test_the_channel_is_named_twilio_for_actions_and_response_variations() -> None:
    assert TwilioSmsInput.name() == "twilio"
    assert TwilioSmsOutput.name() == "twilio"


def test_the_token_is_read_from_the_variable_credentials_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINIC_SMS_TOKEN", TOKEN)
    channel = TwilioSmsInput.from_credentials({"auth_token_env": "CLINIC_SMS_TOKEN"})
    url = f"http://127.0.0.1:5005{WEBHOOK_PATH}"

    assert signed(channel, fake_request(PARAMS, signature_for(url, PARAMS)))


def test_a_correct_signature_passes_and_a_wrong_or_missing_one_does_not() -> None:
    channel = TwilioSmsInput(auth_token=TOKEN)
    url = f"http://127.0.0.1:5005{WEBHOOK_PATH}"
    tampered = {**PARAMS, "Body": "something else"}

    assert signed(channel, fake_request(PARAMS, signature_for(url, PARAMS)))
    assert not signed(channel, fake_request(tampered, signature_for(url, PARAMS)))
    assert not signed(
        channel, fake_request(PARAMS, signature_for(url, PARAMS, token="another-account"))
    )
    assert not signed(channel, fake_request(PARAMS, signature=None))
    assert not signed(channel, fake_request(PARAMS, signature=""))


def test_behind_a_proxy_the_forwarded_scheme_and_host_are_checked() -> None:
    channel = TwilioSmsInput(auth_token=TOKEN)
    public_url = f"https://clinic.example.org{WEBHOOK_PATH}"
    proxy_headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "clinic.example.org, internal-proxy",
    }
    request = fake_request(PARAMS, signature_for(public_url, PARAMS), headers=proxy_headers)

    assert requested_url(request) == public_url
    assert signed(channel, request)
    # The same signature does not fit the address the proxy used internally.
    assert not signed(channel, fake_request(PARAMS, signature_for(public_url, PARAMS)))


def test_without_a_token_every_post_is_refused_and_the_reason_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    channel = TwilioSmsInput.from_credentials({"auth_token_env": "TWILIO_AUTH_TOKEN"})
    url = f"http://127.0.0.1:5005{WEBHOOK_PATH}"
    # Even a post signed with an empty token must not pass.
    empty_token_signature = signature_for(url, PARAMS, token="")

    with caplog.at_level(logging.ERROR, logger="channels.twilio_sms"):
        for _ in range(3):
            assert not signed(channel, fake_request(PARAMS, empty_token_signature))

    reasons = [record for record in caplog.records if "TWILIO_AUTH_TOKEN" in record.getMessage()]
    assert len(reasons) == 1


def test_the_buttons_are_those_offered_since_the_patient_last_wrote() -> None:
    greeting_buttons = [{"title": "Does it hurt?", "payload": "/pain"}]
    events = [
        UserUttered("hi"),
        BotUttered("What would you like to know?", data={"buttons": greeting_buttons}),
        ActionExecuted("action_listen"),
    ]

    assert buttons_offered_last(events) == greeting_buttons
    assert buttons_offered_last([*events, UserUttered("2"), BotUttered("Cramping.")]) == []
    assert buttons_offered_last([]) == []


def test_replies_are_escaped_twiml() -> None:
    reply = twiml(["Tom & Jerry <3"])

    assert reply.content_type.startswith("text/xml")
    assert reply.body.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Tom &amp; Jerry &lt;3</Message></Response>"
    )
    assert twiml([]).body.decode().endswith("<Response />")


def test_empty_values_are_kept_because_twilio_signs_them() -> None:
    channel = TwilioSmsInput(auth_token=TOKEN)
    url = f"http://127.0.0.1:5005{WEBHOOK_PATH}"
    picture_only = {**PARAMS, "Body": "", "NumMedia": "1"}
    request = fake_request(picture_only, signature_for(url, picture_only))

    assert posted_params(request).get("Body") == ""
    assert signed(channel, request)


class FakeAssistant:
    """Stands in for Rasa's agent: records each message and answers it with ``replies``."""

    def __init__(self, replies: list, error: Optional[Exception] = None) -> None:
        self.replies = replies
        self.error = error
        self.messages: list = []

    async def __call__(self, message) -> None:
        self.messages.append(message)
        if self.error:
            raise self.error
        for reply in self.replies:
            await message.output_channel.send_response(message.sender_id, reply)


def signed_post(params: Dict[str, str]) -> SimpleNamespace:
    url = f"http://127.0.0.1:5005{WEBHOOK_PATH}"
    request = fake_request(params, signature_for(url, params))
    request.app = SimpleNamespace(ctx=SimpleNamespace())  # no agent: no tracker to read buttons
    return request


@pytest.fixture
def opt_outs(monkeypatch: pytest.MonkeyPatch) -> Dict[str, bool]:
    """The opt-out list in memory instead of the database."""
    stored: Dict[str, bool] = {}
    monkeypatch.setattr(twilio_sms, "is_sms_opted_out", lambda phone: stored.get(phone, False))
    monkeypatch.setattr(
        twilio_sms, "set_sms_opt_out", lambda phone, opted_out: stored.__setitem__(phone, opted_out)
    )
    return stored


def test_a_message_reaches_the_assistant_as_twilio_with_the_number(opt_outs) -> None:
    channel = TwilioSmsInput(auth_token=TOKEN)
    assistant = FakeAssistant([{"text": "Most people feel some cramping."}])

    reply = asyncio.run(channel.handle_post(signed_post(PARAMS), assistant))

    assert reply.status == 200
    assert "cramping" in reply.body.decode()
    (message,) = assistant.messages
    assert message.sender_id == "sms:" + PARAMS["From"]
    assert message.input_channel == "twilio"
    assert message.output_channel.name() == "twilio"
    assert message.message_id == PARAMS["MessageSid"]
    assert message.metadata == {"phone_number": PARAMS["From"]}


def test_an_unsigned_post_reaches_nothing(opt_outs) -> None:
    channel = TwilioSmsInput(auth_token=TOKEN)
    assistant = FakeAssistant([{"text": "unused"}])
    request = signed_post({**PARAMS, "Body": "STOP"})
    request.headers.pop("X-Twilio-Signature")

    reply = asyncio.run(channel.handle_post(request, assistant))

    assert reply.status == 403
    assert assistant.messages == []
    assert opt_outs == {}


def test_when_the_opt_out_list_cannot_be_read_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(phone: str) -> bool:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(twilio_sms, "is_sms_opted_out", unreachable)
    assistant = FakeAssistant([{"text": "unused"}])

    reply = asyncio.run(
        TwilioSmsInput(auth_token=TOKEN).handle_post(signed_post(PARAMS), assistant)
    )

    assert reply.status == 200
    assert reply.body.decode().endswith("<Response />")
    assert assistant.messages == []


def test_when_the_assistant_fails_a_subscribed_patient_gets_the_phone_number(opt_outs) -> None:
    assistant = FakeAssistant([], error=RuntimeError("action server down"))

    reply = asyncio.run(
        TwilioSmsInput(auth_token=TOKEN).handle_post(signed_post(PARAMS), assistant)
    )

    assert reply.status == 200
    assert load_clinic_settings().phone in reply.body.decode()


def test_a_signed_post_without_a_sender_is_a_bad_request(opt_outs) -> None:
    params = {name: value for name, value in PARAMS.items() if name != "From"}

    reply = asyncio.run(
        TwilioSmsInput(auth_token=TOKEN).handle_post(signed_post(params), FakeAssistant([]))
    )

    assert reply.status == 400
