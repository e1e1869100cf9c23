"""SMS through Twilio's messaging webhook: signed form posts in, the assistant's replies as TwiML.

Unlike Rasa's built-in connector it checks signatures, replies without API calls and handles HELP/STOP.
Messages sent outside a patient's turn (the staff takeover's, through Rasa's HTTP API with
``output_channel=twilio``) go out through Twilio's REST API instead (``TwilioRestOutput``, with
outreach/twilio_sender.py), when Twilio's API settings are there.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text
from urllib.parse import parse_qs

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.shared.core.events import BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request, RequestParameters
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from appointments.requests import is_sms_opted_out, set_sms_opt_out, update_sms_delivery_status
from channels.conversation_ids import sms_conversation_id, sms_phone_number
from channels.failures import could_not_answer_text, patient_message_handler
from channels.message_limits import MessageGate
from channels.sms_text import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_IN_KEYWORDS_WHEN_OPTED_OUT,
    OPT_OUT_KEYWORDS,
    chosen_payload,
    keyword_of,
    sms_messages,
    split_for_sms,
)
from clinic.settings import load_clinic_settings
from outreach.twilio_sender import SendError, TwilioSender, twilio_settings

logger = logging.getLogger(__name__)

DEFAULT_AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name, not a secret
# Actions can read the sender's number here without knowing SMS conversation ids are numbers.
PHONE_NUMBER_METADATA_KEY = "phone_number"
TWIML_CONTENT_TYPE = "text/xml"


class TwilioSmsOutput(CollectingOutputChannel):
    """Collects the replies to one incoming SMS; named "twilio" so SMS response variations apply."""

    @classmethod
    def name(cls) -> Text:
        return TwilioSmsInput.name()


class TwilioRestOutput(OutputChannel):
    """Sends to an SMS conversation through Twilio's REST API: messages outside a patient's turn.

    Rasa hands it out (``TwilioSmsInput.get_output_channel``) for bot events appended through its
    HTTP API with ``execute_side_effects``: the staff takeover's messages. Named "twilio", so the
    SMS variations of responses apply. Texts are packed like the webhook's replies; nothing goes
    to a number that texted STOP. A refusal by Twilio is raised, so the API call fails and the
    staff member is told, rather than a message silently lost.
    """

    @classmethod
    def name(cls) -> Text:
        return TwilioSmsInput.name()

    def __init__(self, sender: TwilioSender) -> None:
        self.sender = sender

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        phone_number = sms_phone_number(recipient_id)
        if phone_number is None:
            logger.warning("No SMS sent: the conversation is not an SMS conversation")
            return
        if await asyncio.to_thread(is_sms_opted_out, phone_number):
            logger.info("No SMS sent to %s: the number texted STOP", masked(phone_number))
            return
        for body in sms_messages([message]):
            try:
                await asyncio.to_thread(self.sender.send_sms, phone_number, body)
            except SendError as error:
                logger.error("SMS to %s not sent: %s", masked(phone_number), error)
                raise

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})


def buttons_offered_last(events: List[Any]) -> List[Dict[str, Any]]:
    """The buttons of the bot's latest message with buttons since the user last wrote."""
    for event in reversed(events):
        if isinstance(event, UserUttered):
            return []
        if isinstance(event, BotUttered) and event.data.get("buttons"):
            return list(event.data["buttons"])
    return []


def masked(phone_number: str) -> str:
    """Enough of a number to tell log lines apart, not enough to identify the patient."""
    return f"…{phone_number[-2:]}" if phone_number else "(none)"


def twiml(messages: List[str]) -> HTTPResponse:
    reply = MessagingResponse()
    for message in messages:
        reply.message(message)
    return response.text(str(reply), content_type=TWIML_CONTENT_TYPE)


def posted_params(request: Request) -> RequestParameters:
    """The form Twilio posted, empty values included.

    Sanic's ``request.form`` drops empty values, but Twilio signs them: a picture sent without
    text comes with ``Body=`` and would fail the signature check.
    """
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return RequestParameters()
    return RequestParameters(
        parse_qs(request.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    )


def requested_url(request: Request) -> str:
    """The URL Twilio posted to, as seen before any proxy (Twilio signs that URL)."""
    # Only the first value counts: each proxy in a chain appends its own.
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    url = f"{proto or request.scheme}://{host or request.host}{request.path}"
    if request.query_string:
        url += f"?{request.query_string}"
    return url


class TwilioSmsInput(InputChannel):
    """Twilio messaging webhook at POST /webhooks/twilio/webhook, answered with TwiML."""

    @classmethod
    def name(cls) -> Text:
        # The actions and the responses' channel variations know SMS by this name.
        return "twilio"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        # credentials.yml names the variable instead of using ${...}: Rasa refuses to start when
        # a ${...} variable is unset, and the web channel should not go down with SMS.
        env_name = (credentials or {}).get("auth_token_env") or DEFAULT_AUTH_TOKEN_ENV
        return cls(auth_token=os.environ.get(env_name, "").strip(), auth_token_env=env_name)

    def __init__(self, auth_token: str, auth_token_env: str = DEFAULT_AUTH_TOKEN_ENV) -> None:
        self.auth_token_env = auth_token_env
        self.validator = RequestValidator(auth_token) if auth_token else None
        self._missing_token_logged = False
        self.gate = MessageGate.from_environment()

    def get_output_channel(self) -> Optional[OutputChannel]:
        """Twilio's REST API for messages outside a patient's turn; None while it is not set up."""
        settings = twilio_settings()
        if settings is None:
            logger.warning(
                "An SMS was to be sent outside a reply, but Twilio's API settings "
                "(TWILIO_ACCOUNT_SID, TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID) are not set"
            )
            return None
        return TwilioRestOutput(TwilioSender(settings))

    def is_signed_by_twilio(self, request: Request, params: RequestParameters) -> bool:
        if self.validator is None:
            if not self._missing_token_logged:
                logger.error(
                    "%s is not set, so SMS webhook posts cannot be verified: every post is "
                    "refused with 403 until it is set and Rasa restarted.",
                    self.auth_token_env,
                )
                self._missing_token_logged = True
            return False
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        return self.validator.validate(requested_url(request), params, signature)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("twilio_sms_webhook", __name__)
        on_new_message = patient_message_handler(on_new_message)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_post(request, on_new_message)

        @webhook.route("/status", methods=["POST"])
        async def delivery_status(request: Request) -> HTTPResponse:
            return await self.handle_status(request)

        return webhook

    async def handle_post(
        self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> HTTPResponse:
        """403 unless Twilio signed the post; otherwise TwiML with the replies (maybe none)."""
        params = posted_params(request)
        if not self.is_signed_by_twilio(request, params):
            # The URL helps to spot a proxy that hides the address Twilio signed.
            logger.warning(
                "Refused an SMS webhook post to %s: no valid Twilio signature",
                requested_url(request),
            )
            return response.text("Forbidden", status=403)
        sender = (params.get("From") or "").strip()
        if not sender:
            return response.text("Bad Request: no From", status=400)
        try:
            return twiml(await self.answer(request, params, sender, on_new_message))
        except Exception:  # noqa: BLE001 - never a 500; answer() fails only before it knows
            # whether the number opted out (the database), and then saying nothing is safe.
            logger.exception("Could not handle the SMS from %s", masked(sender))
            return twiml([])

    async def handle_status(self, request: Request) -> HTTPResponse:
        """A delivery status callback for a text the outreach worker sent: 403 unless signed."""
        params = posted_params(request)
        if not self.is_signed_by_twilio(request, params):
            logger.warning(
                "Refused a status callback to %s: no valid Twilio signature",
                requested_url(request),
            )
            return response.text("Forbidden", status=403)
        sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
        if not sid or not status:
            return response.text("Bad Request: no MessageSid or MessageStatus", status=400)
        error_code = (params.get("ErrorCode") or "").strip()
        await asyncio.to_thread(update_sms_delivery_status, sid, status, error_code)
        # Twilio only needs a 2xx; an unknown SID (a reply's, a staff text's) is not an error.
        return response.empty(status=204)

    async def answer(
        self,
        request: Request,
        params: RequestParameters,
        sender: str,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> List[str]:
        """The SMS replies to one signed post, after handling opt-out and help keywords."""
        body = (params.get("Body") or "").strip()
        keyword = keyword_of(body)
        # Twilio's Advanced Opt-Out says which keyword it acted on; follow it to stay in step.
        twilio_opt_out_type = (params.get("OptOutType") or "").strip().upper()

        if twilio_opt_out_type == "STOP" or keyword in OPT_OUT_KEYWORDS:
            await asyncio.to_thread(set_sms_opt_out, sender, True)
            logger.info("SMS opt-out recorded for %s", masked(sender))
            # Twilio itself confirms a STOP; it would block a reply of ours anyway.
            return []

        opted_out = await asyncio.to_thread(is_sms_opted_out, sender)
        if (
            twilio_opt_out_type == "START"
            or keyword in OPT_IN_KEYWORDS
            or (opted_out and keyword in OPT_IN_KEYWORDS_WHEN_OPTED_OUT)
        ):
            await asyncio.to_thread(set_sms_opt_out, sender, False)
            logger.info("SMS opt-in recorded for %s", masked(sender))
            return split_for_sms(resubscribed_text())
        if opted_out:
            logger.debug("Ignored an SMS from opted-out %s", masked(sender))
            return []

        if twilio_opt_out_type == "HELP" or keyword in HELP_KEYWORDS:
            return split_for_sms(help_text())
        if not body:
            # Pictures and other media arrive with an empty body.
            return split_for_sms(no_text_reply())

        conversation_id = sms_conversation_id(sender)
        # Twilio's addresses are shared by every patient: only the conversation is counted.
        refusal = self.gate.refusal(body, conversation_id, client_address=None)
        if refusal:
            return split_for_sms(refusal)

        collector = TwilioSmsOutput()
        try:
            text = await self.with_button_payload(request, conversation_id, body)
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    conversation_id,
                    input_channel=self.name(),
                    message_id=params.get("MessageSid") or None,
                    metadata={PHONE_NUMBER_METADATA_KEY: sender},
                )
            )
        except Exception:  # noqa: BLE001 - the patient is subscribed and must hear something
            logger.exception("The assistant could not answer the SMS from %s", masked(sender))
            return split_for_sms(could_not_answer_text())
        return sms_messages(collector.messages)

    async def with_button_payload(self, request: Request, conversation_id: str, body: str) -> str:
        """The payload of the button the patient picked by number or title, else ``body``.

        The offered buttons come from the tracker, not from memory here, so that several Rasa
        instances behind a load balancer agree on what "2" means.
        """
        agent = getattr(request.app.ctx, "agent", None)
        tracker_store = getattr(agent, "tracker_store", None)
        if tracker_store is None:
            return body
        tracker = await tracker_store.retrieve(conversation_id)
        if tracker is None:
            return body
        return chosen_payload(body, buttons_offered_last(list(tracker.events))) or body


def help_text() -> str:
    clinic = load_clinic_settings()
    return (
        f"{clinic.name}: this is our automated assistant. It answers general questions about "
        "the HSG (hysterosalpingogram) and takes appointment requests; it can't give medical "
        f"advice. For help, call {clinic.phone}. In an emergency, call 911. "
        "Reply STOP to stop getting texts."
    )


def resubscribed_text() -> str:
    clinic = load_clinic_settings()
    return (
        f"You can text {clinic.name}'s assistant again. Ask a question about your HSG, "
        "or reply HELP for help."
    )


def no_text_reply() -> str:
    clinic = load_clinic_settings()
    return (
        "Sorry, I can only read text, not pictures or other files. Please type your question "
        f"about the HSG, or call {clinic.phone}."
    )
