"""The website widget's socket.io channel: server-issued conversation ids, the web origin only.

Rasa 3.6's own channel takes the conversation id from every message the browser sends, so
anyone who knows or guesses an id is inside that conversation. Here the server issues the id
(``channels.conversation_ids``), remembers per socket which conversation it joined, and never
reads an id from a message. Rasa's channel also builds its socket.io server with
``cors_allowed_origins=[]``, which switches the origin check off; browsers apply CORS to HTTP
polling but not to WebSockets, so without the check any site could hold a conversation through
a visitor's browser.

Several Rasa servers: socket.io rooms live in one process, so a message sent outside a turn (the
staff takeover's, through Rasa's HTTP API on whichever server the call reached) would reach only
the browsers connected to that server. With SOCKETIO_REDIS_URL set, the servers share their
emits through Redis (python-socketio's AsyncRedisManager), and the one holding the socket sends it.
When Redis cannot be reached, python-socketio drops the emit with a log line; ``SharedRooms``
delivers it to this server's own sockets instead, which behind sticky sessions (deploy/nginx.conf)
hold the patient's browser: a reply, or the apology of channels/failures.py, still arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncManager, AsyncRedisManager, AsyncServer

from channels.conversation_ids import WebConversationIds
from channels.failures import patient_message_handler
from channels.message_limits import (
    MAX_SOCKET_PACKET_BYTES,
    MessageGate,
    client_address,
)

logger = logging.getLogger(__name__)

DEFAULT_ALLOWED_ORIGINS_ENV = "WEB_ORIGIN"
REDIS_URL_ENV = "SOCKETIO_REDIS_URL"
REDIS_CHANNEL = "hsg-socketio"
CONVERSATION_KEY = "conversation_id"
ADDRESS_KEY = "client_address"


def allowed_origins(value: str) -> Optional[List[str]]:
    """The one web origin; None (nothing set) lets engine.io allow only the server's own."""
    origin = value.strip().rstrip("/")
    return [origin] if origin else None


# How long the socket.io listener waits before subscribing to Redis again, at most (seconds).
MAX_RESUBSCRIBE_WAIT = 30


class SharedRooms(AsyncRedisManager):
    """python-socketio's Redis manager, delivering to this server's own sockets when Redis is down."""

    resubscribe_wait = 1.0

    async def _listen(self) -> Any:
        """python-socketio 5.9's listener, waiting between attempts while Redis is down.

        Its ``_listen`` subscribes outside its own retry loop, and the listening task calls it
        again at once after any error: with Redis down that was a busy loop writing about a
        thousand tracebacks a second to the log and taking a core. Here a failed subscribe
        waits (1 s, doubling up to 30 s) with one log line, then the task tries again.
        """
        try:
            async for data in super()._listen():
                self.resubscribe_wait = 1.0
                yield data
        except RedisError as error:
            logger.warning(
                "socket.io cannot subscribe to Redis (%s): trying again in %.0f s",
                type(error).__name__,
                self.resubscribe_wait,
            )
            await asyncio.sleep(self.resubscribe_wait)
            self.resubscribe_wait = min(self.resubscribe_wait * 2, MAX_RESUBSCRIBE_WAIT)
            self._redis_connect()

    async def _publish(self, data: Dict[str, Any]) -> Any:
        published = await super()._publish(data)
        # python-socketio 5.9 returns None only when it gave up (twice unreachable); nothing went
        # through Redis, so this server's own delivery cannot double anything.
        if published is None and data.get("method") == "emit" and data.get("callback") is None:
            logger.warning(
                "socket.io emit not shared (Redis unreachable): sent to this server's sockets"
            )
            await AsyncManager.emit(
                self,
                data["event"],
                data["data"],
                namespace=data.get("namespace"),
                room=data.get("room"),
                skip_sid=data.get("skip_sid"),
            )
        return published


def client_manager(environ: Dict[str, str] | None = None) -> AsyncRedisManager | None:
    """Redis shared by every Rasa server's socket.io (SOCKETIO_REDIS_URL); None: this process only."""
    url = (os.environ if environ is None else environ).get(REDIS_URL_ENV, "").strip()
    return SharedRooms(url, channel=REDIS_CHANNEL) if url else None


def visitor_address(environ: Dict[str, Any]) -> str | None:
    """The address of the visitor whose socket engine.io is opening (its Sanic request)."""
    request = environ.get("sanic.request")
    return client_address(request) if request is not None else None


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
        on_new_message = patient_message_handler(on_new_message)
        env_name = getattr(self, "allowed_origins_env", DEFAULT_ALLOWED_ORIGINS_ENV)
        sio = AsyncServer(
            async_mode="sanic",
            cors_allowed_origins=allowed_origins(os.environ.get(env_name, "")),
            max_http_buffer_size=MAX_SOCKET_PACKET_BYTES,
            client_manager=client_manager(),
        )
        # Only the check is wanted: Rasa's --cors already sends the CORS headers, and a second
        # Access-Control-Allow-Origin would make browsers refuse the widget's polling requests.
        # (A private hook of python-engineio, pinned at 4.7.1 in requirements.in.)
        sio.eio._cors_headers = lambda environ: []
        # get_output_channel() (Rasa's) hands this server to outbound messages.
        self.sio = sio
        webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        conversation_ids = WebConversationIds.from_environment()
        gate = MessageGate.from_environment()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict]) -> bool:
            await sio.save_session(
                sid, {ADDRESS_KEY: visitor_address(environ)}, namespace=self.namespace
            )
            return True

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Any) -> None:
            """Continues the conversation of a token this server issued, else starts a new one."""
            token = data.get("session_id") if isinstance(data, dict) else None
            conversation_id = conversation_ids.conversation_id(token)
            if conversation_id is None:
                token = conversation_ids.issue()
                conversation_id = conversation_ids.conversation_id(token)
            session = await sio.get_session(sid, namespace=self.namespace)
            previous = session.get(CONVERSATION_KEY)
            if previous and previous != conversation_id:
                sio.leave_room(sid, previous, namespace=self.namespace)
            session[CONVERSATION_KEY] = conversation_id
            await sio.save_session(sid, session, namespace=self.namespace)
            # Replies go to the conversation's room: every tab of this browser sees them.
            sio.enter_room(sid, conversation_id, namespace=self.namespace)
            await sio.emit("session_confirm", token, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Any) -> None:
            """A message of the conversation this socket joined; any id it carries is ignored."""
            session = await sio.get_session(sid, namespace=self.namespace)
            conversation_id = session.get(CONVERSATION_KEY)
            text = data.get("message") if isinstance(data, dict) else None
            if conversation_id is None or not isinstance(text, str):
                logger.warning("Ignored a socket.io message without a session or without text")
                return
            output_channel = SocketIOOutput(sio, self.bot_message_evt)
            refusal = gate.refusal(text, conversation_id, session.get(ADDRESS_KEY))
            if refusal:
                await output_channel.send_text_message(conversation_id, refusal)
                return
            metadata = data.get(self.metadata_key)
            await on_new_message(
                UserMessage(
                    text,
                    output_channel,
                    conversation_id,
                    input_channel=self.name(),
                    metadata=metadata if isinstance(metadata, dict) else None,
                )
            )

        return webhook
