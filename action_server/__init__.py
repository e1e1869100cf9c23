"""The action server: rasa-sdk's, listening where it is told, behind a shared secret, and quiet about patients."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

TOKEN_ENV = "ACTION_SERVER_TOKEN"  # noqa: S105 - the variable's name, not a secret
# Rasa sends it as a header (endpoints.production.yml, action_endpoint.headers): query
# parameters, Rasa's other option, end up in access logs.
TOKEN_HEADER = "X-Action-Server-Token"  # noqa: S105 - a header's name
OPEN_PATHS = frozenset({"/health"})
# Rasa posts the whole tracker, every event of the conversation, on each action call: past
# 64 kB within one appointment request. SANIC_REQUEST_MAX_SIZE is the limit for what patients
# send to Rasa (`make run` exports it), so the action server sets its own: Sanic's default.
ACTION_CALL_MAX_BYTES = 100_000_000


class InsecureBindError(RuntimeError):
    """The server was asked to listen beyond loopback without a secret."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(actions_package: str, token: str) -> Sanic:
    """rasa-sdk's app, refusing calls without ``token`` (when set) and never echoing a tracker."""
    app = create_app(actions_package, cors_origins=None)
    app.config.REQUEST_MAX_SIZE = ACTION_CALL_MAX_BYTES

    @app.on_request
    async def require_token(request: Request) -> HTTPResponse | None:
        """Every call but the health check carries the shared secret."""
        if not token or request.path in OPEN_PATHS:
            return None
        given = request.headers.get(TOKEN_HEADER, "")
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        logger.warning("Refused a call to %s without the action server token", request.path)
        return response.json({"error": "forbidden"}, status=403)

    # rasa-sdk's own handler logs the request and answers with its whole body: the tracker,
    # with everything the patient said. Only the error's type is kept here.
    @app.exception(Exception)
    async def quiet_error(request: Request, exception: Exception) -> HTTPResponse:
        logger.error(
            "Action server error on %s: %s", request.path, type(exception).__name__, exc_info=False
        )
        return response.json({"error": "internal error"}, status=500)

    return app


def serve(actions_package: str, host: str, port: int) -> None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token and not is_loopback(host):
        raise InsecureBindError(
            f"Refusing to listen on {host} without {TOKEN_ENV}: anything that can reach the "
            "action server could store invented appointment requests. Set the token (and the "
            "same value in Rasa's endpoints), or listen on 127.0.0.1."
        )
    app = build_app(actions_package, token)
    logger.info("Action server on %s:%d (token %s)", host, port, "required" if token else "off")
    app.run(host, port, access_log=False)
