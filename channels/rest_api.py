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
from channels.message_limits import MessageGate


class NamespacedRestInput(RestInput):
    """POST /webhooks/rest/webhook, as Rasa's; senders become ``rest:<sender>``."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    async def _extract_sender(self, req: Request) -> str | None:
        sender = (req.json or {}).get("sender")
        return rest_conversation_id(str(sender)) if sender not in (None, "") else None

    def _extract_input_channel(self, req: Request) -> Text:
        # Rasa lets the client name any channel here; an SMS or web claim must not be believed.
        return self.name()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)
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
            sender = rest_conversation_id(str(body["sender"]))
            refusal = gate.refusal(body["message"], sender, request.remote_addr or request.ip)
            if refusal:
                return response.json([{"recipient_id": sender, "text": refusal}])
            return None

        return webhook
