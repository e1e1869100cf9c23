"""The staff area's settings: the session secret key, cookie flags and the inactivity timeout."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Flask

from appointments.database import REPO_ROOT
from clinic.settings import clinic_timezone as load_clinic_timezone
from clinic.settings import zone_named
from handoff.takeover import idle_timeout
from server_secrets import load_secret_key

logger = logging.getLogger(__name__)

SECRET_KEY_FILE = REPO_ROOT / "var" / "flask_secret_key"
DEFAULT_SESSION_TIMEOUT_MINUTES = 30
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in TRUE_WORDS


def clinic_timezone(name: str) -> ZoneInfo:
    """The zone the staff area shows times in (``STAFF_TIMEZONE``; clinic/settings.py reads it)."""
    return zone_named(name)


def configure_app(app: Flask) -> None:
    """Fills in what the staff area needs; settings already in ``app.config`` win.

    Cookie flags are only ever tightened here, never loosened.
    """
    config = app.config
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY") or load_secret_key(
            SECRET_KEY_FILE
        )
    if "STAFF_SESSION_TIMEOUT" not in config:
        minutes = int(
            os.environ.get("STAFF_SESSION_TIMEOUT_MINUTES", DEFAULT_SESSION_TIMEOUT_MINUTES)
        )
        config["STAFF_SESSION_TIMEOUT"] = timedelta(minutes=minutes)
    # The cookie expires with the inactivity timeout, and Flask re-signs it on every request,
    # so the signature's age is also checked server-side.
    config["PERMANENT_SESSION_LIFETIME"] = config["STAFF_SESSION_TIMEOUT"]
    config["SESSION_REFRESH_EACH_REQUEST"] = True
    config["SESSION_COOKIE_HTTPONLY"] = True
    if not config.get("SESSION_COOKIE_SAMESITE"):
        config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Off by default only because `make run` serves plain http on localhost; set
    # SESSION_COOKIE_SECURE=true wherever the site is served over HTTPS.
    if not config.get("SESSION_COOKIE_SECURE"):
        config["SESSION_COOKIE_SECURE"] = env_flag("SESSION_COOKIE_SECURE")
    # A test or an embedding app may name another zone; otherwise the clinic's (clinic/settings.py).
    config.setdefault("STAFF_TIMEZONE", load_clinic_timezone().key)
    config.setdefault("STAFF_PAGE_SIZE", 25)
    config.setdefault("STAFF_AUDIT_PAGE_SIZE", 50)
    # A taken-over conversation whose holder has not written for this long goes back to the inbox.
    config.setdefault("STAFF_TAKEOVER_IDLE", idle_timeout())
    # None: appointments.database.database_url() and transcript.tracker_database_url() decide.
    config.setdefault("DATABASE_URL", None)
    config.setdefault("TRACKER_DATABASE_URL", None)
