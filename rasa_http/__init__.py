"""The Rasa server's HTTP API as the web app and the outreach worker use it: its token and the tracker calls.

Rasa serves the API (`--enable-api`) on the same port as the patient channels, so every call needs
the token (`RASA_API_TOKEN`, or a key generated once into var/ on one machine), and only the
patient-facing paths are public at the proxy (deploy/nginx.conf). The token travels as Rasa 3.6
expects it, in the `token` query parameter: never log these URLs.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import requests

from server_secrets import shared_secret

TOKEN_ENV = "RASA_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
TOKEN_FILE = "rasa_api_token"  # noqa: S105 - a file name under var/
URL_ENV = "RASA_URL"
DEFAULT_URL = "http://127.0.0.1:5005"
TIMEOUT_SECONDS = 10.0


class RasaApiError(RuntimeError):
    """The Rasa server could not be reached or refused the call (the message never holds the URL)."""


def api_token() -> str:
    """The token the Rasa server was started with (`rasa run --auth-token`)."""
    return shared_secret(TOKEN_ENV, TOKEN_FILE)


def rasa_url() -> str:
    return os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")


def _tracker_url(conversation_id: str, suffix: str = "") -> str:
    # Conversation ids hold ':' and '+' (sms:+15551234567). Rasa does not decode percent-escapes
    # in this path (an escaped id names another, empty conversation), and both characters are
    # allowed as they are in a URL path; everything else is escaped.
    return f"{rasa_url()}/conversations/{quote(conversation_id, safe=':+')}/tracker{suffix}"


def _call(method: str, url: str, params: dict[str, Any], json: Any = None) -> Any:
    params = {**params, "token": api_token()}
    try:
        reply = requests.request(method, url, params=params, json=json, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise RasaApiError(f"Rasa server unreachable ({type(error).__name__})") from None
    if reply.status_code >= 400:
        raise RasaApiError(f"Rasa server answered {reply.status_code} to {method} /conversations/…")
    return reply.json()


def append_events(
    conversation_id: str,
    events: list[dict[str, Any]],
    *,
    output_channel: str | None = None,
    execute_side_effects: bool = False,
) -> dict[str, Any]:
    """Appends ``events`` to the conversation's tracker; returns the tracker.

    With ``execute_side_effects`` and an ``output_channel`` ("latest", "socketio", "twilio"),
    Rasa also sends the bot events among them to the patient on that channel (Rasa 3.6
    `POST /conversations/{id}/tracker/events`); it does so while the conversation is paused.
    """
    params: dict[str, Any] = {"include_events": "NONE"}
    if execute_side_effects:
        params["execute_side_effects"] = "true"
    if output_channel:
        params["output_channel"] = output_channel
    return _call("POST", _tracker_url(conversation_id, "/events"), params, json=events)


def tracker(conversation_id: str, include_events: str = "AFTER_RESTART") -> dict[str, Any]:
    """The conversation's tracker (slots, paused flag, events), as Rasa's API returns it.

    Rasa creates an empty tracker for an unknown id, so callers pass only ids the server chose.
    """
    return _call("GET", _tracker_url(conversation_id), {"include_events": include_events})
