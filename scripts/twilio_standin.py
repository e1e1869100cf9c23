"""A local stand-in for Twilio's Messages API, for tests and for trying the reminders out.

It records each `POST /2010-04-01/Accounts/{sid}/Messages.json` and answers with Twilio-shaped
JSON (a new SID, status "queued"), and lists what it took for `GET .../Messages.json?To=...`,
which is what twilio-python's ``client.messages.create`` and ``.list`` call. Point the outreach
worker at it with TWILIO_API_BASE_URL. `python -m scripts.twilio_standin --port 8089` runs it
alone and prints every text it takes (the patient's phone).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class StandIn:
    """The recorded texts and how the next posts are answered."""

    messages: list[dict] = field(default_factory=list)
    # Seconds to wait after recording a post and before answering it (a slow Twilio).
    delay_seconds: float = 0.0
    # (HTTP status, Twilio error code) to refuse posts with, or None to take them.
    refuse_with: tuple[int, int] | None = None
    printing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posted_to(self, number: str) -> list[dict]:
        with self.lock:
            return [message for message in self.messages if message["to"] == number]


def _message_json(message: dict) -> dict:
    return {
        "sid": message["sid"],
        "account_sid": message["account_sid"],
        "to": message["to"],
        "from": message["from"],
        "messaging_service_sid": message["messaging_service_sid"],
        "body": message["body"],
        "status": message["status"],
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": message["date_created"],
        "date_updated": message["date_created"],
        "date_sent": None,
        "error_code": None,
        "error_message": None,
        "price": None,
        "price_unit": "USD",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{message['account_sid']}/Messages/{message['sid']}.json",
        "subresource_uris": {},
    }


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: tests read the records instead
            pass

        def _account(self) -> str | None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["2010-04-01", "Accounts"]:
                if parts[3] == "Messages.json":
                    return parts[2]
            return None

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            account = self._account()
            if account is None:
                return self._json(404, {"code": 20404, "message": "Not found", "status": 404})
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if state.refuse_with is not None:
                status, code = state.refuse_with
                return self._json(status, {"code": code, "message": "Refused", "status": status})
            message = {
                "sid": "SM" + uuid.uuid4().hex,
                "account_sid": account,
                "to": form.get("To", ""),
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body", ""),
                "status_callback": form.get("StatusCallback"),
                "status": "queued",
                "date_created": formatdate(usegmt=True),
            }
            with state.lock:
                state.messages.append(message)
            if state.printing:
                print(f"--> {message['to']} ({message['sid']}):\n{message['body']}\n", flush=True)
            if state.delay_seconds:
                time.sleep(state.delay_seconds)
            self._json(201, _message_json(message))

        def do_GET(self) -> None:
            account = self._account()
            if account is None:
                return self._json(404, {"code": 20404, "message": "Not found", "status": 404})
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            with state.lock:
                found = [
                    _message_json(message)
                    for message in reversed(state.messages)
                    if message["account_sid"] == account
                    and ("To" not in query or message["to"] == query["To"])
                ]
            self._json(
                200,
                {
                    "messages": found,
                    "end": max(len(found) - 1, 0),
                    "first_page_uri": self.path,
                    "next_page_uri": None,
                    "page": 0,
                    "page_size": 50,
                    "previous_page_uri": None,
                    "start": 0,
                    "uri": self.path,
                },
            )

    return Handler


class StandInServer:
    """The stand-in on 127.0.0.1:``port`` (0: a free one), served from a thread."""

    def __init__(self, port: int = 0, printing: bool = False) -> None:
        self.state = StandIn(printing=printing)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandInServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    with StandInServer(args.port, printing=True) as server:
        print(f"Twilio stand-in at {server.url} (TWILIO_API_BASE_URL); Ctrl-C stops it", flush=True)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
