"""`python -m handoff release-idle`: returns idle held conversations to the inbox (e.g. from cron).

The staff pages do the same whenever they are open; this covers the hours nobody is signed in.
"""

from __future__ import annotations

import argparse
import sys

from handoff.takeover import TakeoverSettingError, idle_timeout, release_idle_holds
from rasa_http import RasaApiError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handoff", description=__doc__)
    parser.add_argument("command", choices=["release-idle"])
    parser.parse_args(argv)
    try:
        released = release_idle_holds(idle_timeout())
    except (TakeoverSettingError, RasaApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Returned {released} idle conversation(s) to the inbox.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
