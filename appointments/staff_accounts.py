"""Staff accounts: creating them, argon2 password checks, and locking out repeated failures."""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from appointments.database import session_scope
from appointments.models import StaffUser, utc_now

ROLES = ("staff", "admin")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
# argon2 pre-hashes long input, but a cap keeps a megabyte "password" from being a cheap DoS.
MAX_PASSWORD_LENGTH = 1024
MAX_FAILED_LOGINS = 5
LOCKOUT_DURATION = timedelta(minutes=15)

# argon2-cffi's defaults (RFC 9106's second recommended profile). Tests swap in a cheaper one.
password_hasher = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


class StaffAccountError(ValueError):
    """A username, role or password that cannot be used; the message is safe to show."""


class LoginOutcome(enum.Enum):
    SUCCESS = "success"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (an outcome, not a password)
    # This attempt was the one that locked the account.
    LOCKED_NOW = "locked_now"
    # The account was already locked; the password was not considered.
    LOCKED = "locked"
    UNKNOWN_ACCOUNT = "unknown_account"


@dataclass(frozen=True)
class StaffAccount:
    """A staff account without its password hash: what the web app keeps hold of."""

    id: int
    username: str
    role: str
    active: bool
    session_token: str
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None
    failed_login_count: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    # None for an unknown or deactivated account.
    account: StaffAccount | None = None
    failed_login_count: int = 0

    @property
    def succeeded(self) -> bool:
        return self.outcome is LoginOutcome.SUCCESS


def _account(user: StaffUser) -> StaffAccount:
    return StaffAccount(
        id=user.id,
        username=user.username,
        role=user.role,
        active=user.active,
        session_token=user.session_token,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        locked_until=user.locked_until,
        failed_login_count=user.failed_login_count,
    )


def normalize_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str:
    """The normalised username, or StaffAccountError saying what is wrong with it."""
    normalized = normalize_username(username)
    if not USERNAME_PATTERN.match(normalized):
        raise StaffAccountError(
            "A username is 2 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return normalized


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffAccountError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffAccountError(f"A password can have at most {MAX_PASSWORD_LENGTH} characters.")


def _new_session_token() -> str:
    return secrets.token_hex(16)


def create_staff_user(
    username: str, password: str, role: str = "staff", url: str | None = None
) -> StaffAccount:
    """Creates an account; StaffAccountError if the name, role or password cannot be used."""
    username = check_username(username)
    if role not in ROLES:
        raise StaffAccountError(f"The role must be one of: {', '.join(ROLES)}.")
    check_password(password)
    password_hash = password_hasher.hash(password)
    try:
        with session_scope(url) as session:
            user = StaffUser(
                username=username,
                password_hash=password_hash,
                role=role,
                active=True,
                failed_login_count=0,
                session_token=_new_session_token(),
            )
            session.add(user)
            session.flush()
            return _account(user)
    except IntegrityError:
        raise StaffAccountError(f"There is already an account named {username!r}.") from None


def _user_by_name(session, username: str) -> StaffUser | None:
    return session.execute(
        select(StaffUser).where(StaffUser.username == normalize_username(username))
    ).scalar_one_or_none()


def _existing_user(session, username: str) -> StaffUser:
    user = _user_by_name(session, username)
    if user is None:
        raise StaffAccountError(f"There is no account named {normalize_username(username)!r}.")
    return user


def set_password(username: str, password: str, url: str | None = None) -> None:
    """Replaces the password, lifts any lockout and signs the account out everywhere."""
    check_password(password)
    password_hash = password_hasher.hash(password)
    with session_scope(url) as session:
        user = _existing_user(session, username)
        user.password_hash = password_hash
        user.password_changed_at = utc_now()
        user.failed_login_count = 0
        user.locked_until = None
        user.session_token = _new_session_token()


def unlock(username: str, url: str | None = None) -> None:
    """Lifts a lockout before it runs out."""
    with session_scope(url) as session:
        user = _existing_user(session, username)
        user.failed_login_count = 0
        user.locked_until = None


def list_staff_accounts(url: str | None = None) -> list[StaffAccount]:
    with session_scope(url) as session:
        users = session.execute(select(StaffUser).order_by(StaffUser.username)).scalars().all()
        return [_account(user) for user in users]


def get_staff_account(user_id: int, url: str | None = None) -> StaffAccount | None:
    with session_scope(url) as session:
        user = session.get(StaffUser, user_id)
        return _account(user) if user is not None else None


def end_all_sessions(user_id: int, url: str | None = None) -> None:
    """Invalidates every login session of this account (on logout, a cookie copied elsewhere)."""
    with session_scope(url) as session:
        session.execute(
            update(StaffUser)
            .where(StaffUser.id == user_id)
            .values(session_token=_new_session_token())
        )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _spend_verification_time(password: str) -> None:
    # Unknown names and locked accounts take as long as a real check, so response times do not
    # tell which account names exist.
    key = id(password_hasher)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = password_hasher.hash(secrets.token_hex(16))
    _verify(_dummy_hashes[key], password)


def authenticate(username: str, password: str, url: str | None = None) -> LoginResult:
    """Checks a login attempt and counts failures; the 5th in a row locks for 15 minutes."""
    now = utc_now()
    with session_scope(url) as session:
        user = _user_by_name(session, username)
        if user is None or not user.active or len(password) > MAX_PASSWORD_LENGTH:
            _spend_verification_time(password[:MAX_PASSWORD_LENGTH])
            return LoginResult(LoginOutcome.UNKNOWN_ACCOUNT)
        if user.locked_until is not None and user.locked_until > now:
            _spend_verification_time(password)
            return LoginResult(
                LoginOutcome.LOCKED, _account(user), failed_login_count=MAX_FAILED_LOGINS
            )

        if _verify(user.password_hash, password):
            if password_hasher.check_needs_rehash(user.password_hash):
                user.password_hash = password_hasher.hash(password)
            user.failed_login_count = 0
            user.locked_until = None
            user.last_login_at = now
            session.flush()
            return LoginResult(LoginOutcome.SUCCESS, _account(user))

        # Incremented in SQL, not in Python, so that concurrent attempts from several web
        # workers all count.
        session.execute(
            update(StaffUser)
            .where(StaffUser.id == user.id)
            .values(failed_login_count=StaffUser.failed_login_count + 1)
        )
        session.refresh(user)
        failures = user.failed_login_count
        if failures >= MAX_FAILED_LOGINS:
            # The count starts again once the lockout runs out.
            user.locked_until = now + LOCKOUT_DURATION
            user.failed_login_count = 0
            session.flush()
            return LoginResult(LoginOutcome.LOCKED_NOW, _account(user), failed_login_count=failures)
        return LoginResult(LoginOutcome.WRONG_PASSWORD, _account(user), failed_login_count=failures)
