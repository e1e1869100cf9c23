"""The website widget's socket.io channel: Rasa's own, refusing pages from other origins.

Rasa 3.6 builds its socket.io server with ``cors_allowed_origins=[]``, which switches the origin
check off; browsers apply CORS to HTTP polling but not to WebSockets, so without this any site
could hold a conversation through a visitor's browser.
"""

from __future__ import annotations

import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

DEFAULT_ALLOWED_ORIGINS_ENV = "WEB_ORIGIN"


def allowed_origins(value: str) -> Optional[List[str]]:
    """The one web origin; None (nothing set) lets engine.io allow only the server's own."""
    origin = value.strip().rstrip("/")
    return [origin] if origin else None


class WebWidgetInput(SocketIOInput):
    """Named ``socketio`` like Rasa's channel, so the domain's socketio variations still apply."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        channel = super().from_credentials(credentials)
        channel.allowed_origins_env = (credentials or {}).get(
            "allowed_origins_env", DEFAULT_ALLOWED_ORIGINS_ENV
        )
        return channel

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)
        env_name = getattr(self, "allowed_origins_env", DEFAULT_ALLOWED_ORIGINS_ENV)
        engine = self.sio.eio
        engine.cors_allowed_origins = allowed_origins(os.environ.get(env_name, ""))
        # Only the check is wanted: Rasa's --cors already sends the CORS headers, and a second
        # Access-Control-Allow-Origin would make browsers refuse the widget's polling requests.
        # (A private hook of python-engineio, pinned at 4.7.1 in requirements.in.)
        engine._cors_headers = lambda environ: []
        return blueprint
