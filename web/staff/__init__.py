"""The staff area (/staff): review appointment requests, move them through the workflow, audit;
the inbox of conversations that need a person, and what the assistant could not answer."""

from __future__ import annotations

from flask import Flask

from web.staff.auth import login_manager
from web.staff.settings import configure_app
from web.staff.throttle import configure_sign_in_throttle
from web.staff.views import blueprint

# Their routes join the staff blueprint (its sign-in, CSRF and header checks) when imported.
from web.staff import inbox as _inbox  # noqa: E402,F401  isort: skip
from web.staff import insights as _insights  # noqa: E402,F401  isort: skip


def register_staff_area(app: Flask) -> None:
    """Adds the staff pages, sign-in (throttled) and the session settings they need to ``app``."""
    configure_app(app)
    configure_sign_in_throttle(app)
    login_manager.init_app(app)
    app.register_blueprint(blueprint)
