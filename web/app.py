"""The web app factory: settings, security headers and every blueprint, registered in one place.

Run it with ``python -m web.app --port 8000`` (``make run`` does).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Mapping, Optional

from flask import Flask

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
    )
    if config:
        app.config.update(config)
    register_blueprints(app)
    app.after_request(add_security_headers)
    return app


def register_blueprints(app: Flask) -> None:
    """Every part of the site; add new blueprints here and nowhere else."""
    app.register_blueprint(clinic_page.blueprint)
    # The staff area also sets the secret key and session cookie settings it needs.
    register_staff_area(app)


def main(argv: Optional[list] = None) -> int:
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
