"""Rasa's socket.io channel as the web widget uses it: persistent sessions, the web origin only."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any, Dict, List, Tuple

import requests
import socketio

ENTER_ROOM_TRAP = (
    "python-socketio's AsyncServer.enter_room is a coroutine in this version (5.10 or later). "
    "Rasa 3.6's socket.io channel calls it without await, so with session_persistence the "
    "socket never joins its session's room and the web widget never gets a reply. "
    "Keep python-socketio below 5.10 (requirements.in)."
)


def test_enter_room_is_a_plain_call_as_rasa_36_expects() -> None:
    assert not inspect.iscoroutinefunction(socketio.AsyncServer.enter_room), ENTER_ROOM_TRAP


async def converse(
    rasa_url: str, origin: str | None, session_id: str | None, text: str
) -> Tuple[str, List[Dict]]:
    """Connects like rasa-webchat (session_request, then user_uttered) and collects the replies.

    Returns the session token the server confirmed (its own, whatever was asked for) and the replies.
    """
    client = socketio.AsyncClient(reconnection=False)
    confirmed: asyncio.Queue = asyncio.Queue()
    replies: asyncio.Queue = asyncio.Queue()
    client.on("session_confirm", confirmed.put_nowait)
    client.on("bot_uttered", replies.put_nowait)
    headers = {"Origin": origin} if origin else {}
    await client.connect(rasa_url, headers=headers, transports=["websocket"])
    try:
        await client.emit("session_request", {"session_id": session_id})
        token = await asyncio.wait_for(confirmed.get(), timeout=10)
        # rasa-webchat sends its stored id with every message; the server must not believe it.
        await client.emit("user_uttered", {"message": text, "session_id": session_id})
        try:
            messages = [await asyncio.wait_for(replies.get(), timeout=30)]
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply over socket.io. {ENTER_ROOM_TRAP}") from None
        while True:
            try:
                messages.append(await asyncio.wait_for(replies.get(), timeout=2))
            except asyncio.TimeoutError:
                return token, messages
    finally:
        await client.disconnect()


def conversation_of(token: str) -> str:
    """The tracker's sender id of a token the server issued."""
    random_part, _, _ = token.partition(".")
    return f"web:{random_part}"


def test_a_persistent_session_gets_replies_before_and_after_a_reload(
    assistant, tracker_event_count
) -> None:
    origin = assistant.env["WEB_ORIGIN"]

    token, first = asyncio.run(converse(assistant.rasa_url, origin, None, "does an hsg hurt"))
    events_before_reload = tracker_event_count(conversation_of(token))
    # A page reload: a new socket, the same token from the browser's storage.
    same_token, second = asyncio.run(converse(assistant.rasa_url, origin, token, "/greet"))

    assert same_token == token
    assert "cramping" in " ".join(message.get("text", "") for message in first).lower()
    assert any(message.get("quick_replies") for message in second)
    assert tracker_event_count(conversation_of(token)) > events_before_reload > 0


def test_an_id_the_server_did_not_issue_starts_a_new_conversation(
    assistant, tracker_event_count
) -> None:
    origin = assistant.env["WEB_ORIGIN"]
    token, _ = asyncio.run(converse(assistant.rasa_url, origin, None, "hi"))
    events = tracker_event_count(conversation_of(token))
    random_part, _, tag = token.partition(".")
    guesses = [
        random_part,
        conversation_of(token),
        f"{random_part}.{'0' * len(tag)}",
        f"{uuid.uuid4().hex}.{tag}",
        "",
        "x" * 10_000,
    ]

    for guess in guesses:
        issued, _ = asyncio.run(converse(assistant.rasa_url, origin, guess, "/greet"))
        assert issued not in (guess, token)
        assert conversation_of(issued) != conversation_of(token)
    assert tracker_event_count(conversation_of(token)) == events


def test_only_the_web_apps_origin_is_allowed(assistant) -> None:
    web_origin = assistant.env["WEB_ORIGIN"]
    targets = {
        "socket.io": ("GET", f"{assistant.rasa_url}/socket.io/?EIO=4&transport=polling"),
        "rest": ("OPTIONS", f"{assistant.rasa_url}/webhooks/rest/webhook"),
    }
    preflight = {"Access-Control-Request-Method": "POST"}

    for name, (method, url) in targets.items():
        allowed = requests.request(
            method, url, headers={"Origin": web_origin, **preflight}, timeout=10
        )
        foreign = requests.request(
            method, url, headers={"Origin": "http://evil.example", **preflight}, timeout=10
        )
        assert allowed.headers.get("Access-Control-Allow-Origin") == web_origin, name
        assert "Access-Control-Allow-Origin" not in foreign.headers, name


def test_a_websocket_from_another_site_is_refused(assistant) -> None:
    """Browsers do not apply CORS to WebSockets: the channel itself must check the origin."""

    async def connect(origin: str) -> bool:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(
                assistant.rasa_url, headers={"Origin": origin}, transports=["websocket"]
            )
        except socketio.exceptions.ConnectionError:
            return False
        await client.disconnect()
        return True

    assert asyncio.run(connect(assistant.env["WEB_ORIGIN"]))
    assert not asyncio.run(connect("http://evil.example"))


def test_allowed_origins_come_from_one_variable() -> None:
    from channels.web_widget import allowed_origins

    assert allowed_origins("https://clinic.example/") == ["https://clinic.example"]
    # Unset: engine.io's own default, the server's own origin only (never "any origin").
    assert allowed_origins("") is None


def test_the_widget_shares_its_rooms_through_redis_when_told_to() -> None:
    from socketio import AsyncRedisManager

    from channels.web_widget import client_manager

    assert client_manager({}) is None
    manager = client_manager({"SOCKETIO_REDIS_URL": "redis://127.0.0.1:6379/2"})
    assert isinstance(manager, AsyncRedisManager)


def test_with_redis_unreachable_a_reply_still_reaches_this_servers_sockets() -> None:

    from socketio import AsyncServer

    from channels.web_widget import SharedRooms
    from scripts.assistant_servers import free_port

    # Nothing listens on the port: python-socketio alone would log "giving up" and drop it.
    manager = SharedRooms(f"redis://127.0.0.1:{free_port()}/2")
    server = AsyncServer(async_mode="asgi", client_manager=manager)
    sent: list[tuple[str, Any]] = []

    async def send_packet(eio_sid: str, packet: Any) -> None:
        sent.append((eio_sid, packet))

    server._send_eio_packet = send_packet
    sid = manager.connect("eio-patient", "/")
    manager.enter_room(sid, "/", "web:conversation")
    manager.connect("eio-someone-else", "/")  # another patient's socket, not in the room

    asyncio.run(
        manager.emit("bot_uttered", {"text": "Hello"}, namespace="/", room="web:conversation")
    )

    assert [(eio_sid, "Hello" in str(packet.encode())) for eio_sid, packet in sent] == [
        ("eio-patient", True)
    ]


def test_with_redis_unreachable_the_listener_waits_between_attempts() -> None:
    from socketio import AsyncServer

    from channels.web_widget import SharedRooms
    from scripts.assistant_servers import free_port

    class CountedAttempts(SharedRooms):
        attempts = 0

        async def _listen(self) -> Any:
            CountedAttempts.attempts += 1
            async for data in super()._listen():
                yield data

    manager = CountedAttempts(f"redis://127.0.0.1:{free_port()}/2")
    AsyncServer(async_mode="asgi", client_manager=manager)

    async def listen_for_a_while() -> None:
        listener = asyncio.ensure_future(manager._thread())
        await asyncio.sleep(1.5)
        listener.cancel()

    asyncio.run(listen_for_a_while())

    # python-socketio 5.9 alone tried again at once: thousands of attempts in that time.
    assert 1 <= CountedAttempts.attempts <= 3
