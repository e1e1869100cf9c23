"""Who is signed in: Flask-Login's user, checked against the database on every request."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app
from flask_login import LoginManager, UserMixin, current_user, login_required

from appointments.staff_accounts import StaffAccount, get_staff_account

login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "Please sign in to see this page."
login_manager.login_message_category = "info"
# A session cookie used from another browser or address is dropped, not trusted.
login_manager.session_protection = "strong"


class StaffIdentity(UserMixin):
    """The signed-in member of staff, as Flask-Login sees them."""

    def __init__(self, account: StaffAccount) -> None:
        self.account = account

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def is_admin(self) -> bool:
        return self.account.is_admin

    def get_id(self) -> str:
        # The token is part of the id, so replacing it in the database (sign-out, new password)
        # ends every session that still carries the old one.
        return f"{self.account.id}:{self.account.session_token}"


@login_manager.user_loader
def load_identity(session_id: str) -> StaffIdentity | None:
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    account = get_staff_account(int(user_id), url=current_app.config.get("DATABASE_URL"))
    if account is None or not account.active:
        return None
    if not hmac.compare_digest(account.session_token, token):
        return None
    return StaffIdentity(account)


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Signed in (else the login page) and an admin (else 403)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped
