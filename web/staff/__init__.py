"""The staff area (/staff): review appointment requests, move them through the workflow, audit."""

from __future__ import annotations

from flask import Flask

from web.staff.auth import login_manager
from web.staff.settings import configure_app
from web.staff.views import blueprint


def register_staff_area(app: Flask) -> None:
    """Adds the staff pages, sign-in and the session settings they need to ``app``."""
    configure_app(app)
    login_manager.init_app(app)
    app.register_blueprint(blueprint)
