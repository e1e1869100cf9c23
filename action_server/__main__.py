"""``python -m action_server``: the action server for `make run` (loopback) and compose (with a token)."""

from __future__ import annotations

import argparse
import logging
import os

from action_server import serve
from clinic.settings import load_clinic_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m action_server", description=__doc__)
    parser.add_argument("--actions", default="actions", help="the package of actions")
    parser.add_argument("--host", default=os.environ.get("ACTION_SERVER_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("ACTION_SERVER_PORT", "5055"))
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Fails here, at start, rather than in the middle of a patient's conversation.
    load_clinic_settings()
    serve(args.actions, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
