"""Rasa's REST channel for tools and tests, with its senders kept in their own ``rest:`` namespace.

Not enabled in production (credentials.production.yml); `make run` keeps it on loopback only.
A REST sender can never name a web or SMS conversation, nor claim to be another channel.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from channels.conversation_ids import rest_conversation_id
from channels.failures import patient_message_handler
from channels.message_limits import MessageGate, client_address


class NamespacedRestInput(RestInput):
    """POST /webhooks/rest/webhook, as Rasa's; senders become ``rest:<sender>``."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    async def _extract_sender(self, req: Request) -> str:
        # refuse_before_nlu (below) has already refused posts without a sender.
        return rest_conversation_id(str(req.json["sender"]))

    def _extract_input_channel(self, req: Request) -> Text:
        # Rasa lets the client name any channel here; an SMS or web claim must not be believed.
        return self.name()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(patient_message_handler(on_new_message))
        gate = MessageGate.from_environment()

        @webhook.on_request
        async def refuse_before_nlu(request: Request) -> Any:
            """Malformed, over-long and flooding posts are answered here, before the parse."""
            if request.method != "POST" or not request.path.endswith("/webhook"):
                return None
            body = request.json if isinstance(request.json, dict) else None
            if body is None or not isinstance(body.get("message"), str) or not body.get("sender"):
                return response.json(
                    {"error": "Send JSON with a 'sender' and a 'message' text."}, status=400
                )
            sender = await self._extract_sender(request)
            refusal = gate.refusal(body["message"], sender, client_address(request))
            if refusal:
                return response.json([{"recipient_id": sender, "text": refusal}])
            return None

        return webhook
