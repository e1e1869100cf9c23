"""The web app factory: settings, security headers and every blueprint, registered in one place.

Run it with ``python -m web.app --port 8000`` (``make run`` does).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Mapping, Optional

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from web import clinic_page
from web.security import add_security_headers
from web.staff import register_staff_area

DEFAULT_RASA_PUBLIC_URL = "http://localhost:5005"


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """The web app; ``config`` overrides the settings read from the environment."""
    app = Flask(__name__)
    app.config.from_mapping(
        # Where the visitor's browser reaches Rasa's socket.io channel (also allowed by the CSP).
        RASA_PUBLIC_URL=os.environ.get("RASA_PUBLIC_URL", DEFAULT_RASA_PUBLIC_URL),
        PROXY_COUNT=os.environ.get("PROXY_COUNT", "0"),
    )
    if config:
        app.config.update(config)
    trust_proxies(app)
    register_blueprints(app)
    app.after_request(add_security_headers)
    return app


def proxy_count(value: object) -> int:
    """PROXY_COUNT as a number, or a start-up error that says what is wrong with it."""
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"PROXY_COUNT must be a whole number of proxies (0 or more), not {text!r}")
    return int(text)


def trust_proxies(app: Flask) -> None:
    """Behind PROXY_COUNT proxies (nginx: 1), take the client's address and scheme from them.

    Only that many X-Forwarded-For / X-Forwarded-Proto entries are believed, the ones our own
    proxies added; anything a client sends beyond them is ignored. With 0 (`make run`, no proxy)
    the headers are ignored altogether, since any client could send them.
    """
    count = proxy_count(app.config["PROXY_COUNT"])
    app.config["PROXY_COUNT"] = count
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)


def register_blueprints(app: Flask) -> None:
    """Every part of the site; add new blueprints here and nowhere else."""
    app.register_blueprint(clinic_page.blueprint)
    # The staff area also sets the secret key and session cookie settings it needs.
    register_staff_area(app)


def main(argv: Optional[list] = None) -> int:
    """Serves the app with Flask's own server, as `make run` does."""
    parser = argparse.ArgumentParser(
        prog="python -m web.app", description="Serve the clinic's web app."
    )
    parser.add_argument("--host", default=os.environ.get("WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", "8000")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    create_app().run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
