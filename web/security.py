"""Security headers for every page: a strict Content Security Policy, no sniffing or framing,
and HTTPS only from the first visit over HTTPS on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, current_app, request

# A year, subdomains included. Sent over HTTPS only: browsers ignore it over plain http, and
# `make run` on http://localhost must not teach a browser to insist on https for localhost.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(rasa_public_url: str) -> str:
    """Only this site, plus Rasa's socket.io endpoint (HTTP polling and WebSocket) for the chat."""
    rasa_origin = origin_of(rasa_public_url)
    rasa_socket_origin = "ws" + rasa_origin[len("http") :]  # http -> ws, https -> wss
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        # rasa-webchat adds its stylesheet as <style> elements when it starts.
        "style-src": "'self' 'unsafe-inline'",
        # The widget's icons are data: URIs too.
        "img-src": "'self' data:",
        # The widget's carousel icon font is inlined as a data: URI.
        "font-src": "'self' data:",
        "connect-src": f"'self' {rasa_origin} {rasa_socket_origin}",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def add_security_headers(response: Response) -> Response:
    """Sets the headers unless a view chose its own (setdefault)."""
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        content_security_policy(current_app.config["RASA_PUBLIC_URL"]),
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Page addresses stay on this site: another site never learns which health page was read.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    # Behind a proxy that terminates TLS, request.is_secure needs PROXY_COUNT (web/app.py).
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response
