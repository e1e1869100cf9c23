"""Staff accounts: creating and deactivating them, argon2 password checks, and lockouts.

A lockout holds for one account from one client address: whoever keeps guessing a colleague's
password from one address cannot keep that colleague out from everywhere else.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appointments import audit
from appointments.database import session_scope
from appointments.models import StaffLoginFailure, StaffUser, utc_now

ROLES = ("staff", "admin")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
# argon2 pre-hashes long input, but a cap keeps a megabyte "password" from being a cheap DoS.
MAX_PASSWORD_LENGTH = 1024
MAX_FAILED_LOGINS = 5
LOCKOUT_DURATION = timedelta(minutes=15)
# Where a caller cannot tell the address (a script, a test), its attempts share this one.
UNKNOWN_ADDRESS = "unknown"
MAX_ADDRESS_LENGTH = 64

# argon2-cffi's defaults (RFC 9106's second recommended profile). Tests swap in a cheaper one.
password_hasher = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


class StaffAccountError(ValueError):
    """A username, role or password that cannot be used; the message is safe to show."""


class LoginOutcome(enum.Enum):
    SUCCESS = "success"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 (an outcome, not a password)
    # This attempt was the one that locked the account (from this address).
    LOCKED_NOW = "locked_now"
    # The account was already locked from this address; the password was not considered.
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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Lockout:
    """An account that cannot sign in from one address until a time (UTC)."""

    username: str
    client_address: str
    locked_until: datetime


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    # None for an unknown or deactivated account.
    account: StaffAccount | None = None
    # Failures in a row from this attempt's address.
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
    )


def normalize_username(username: str) -> str:
    return username.strip().lower()


def normalize_address(address: str | None) -> str:
    """The key a client address is counted under; one shared key where it is not known."""
    address = (address or "").strip()
    return address[:MAX_ADDRESS_LENGTH] if address else UNKNOWN_ADDRESS


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
        user.session_token = _new_session_token()
        _forget_failures(session, user.id)


def unlock(username: str, url: str | None = None) -> None:
    """Lifts the account's lockouts, from every address, before they run out."""
    with session_scope(url) as session:
        _forget_failures(session, _existing_user(session, username).id)


def deactivate_staff_user(session: Session, username: str, detail: str = "") -> StaffAccount:
    """Stops the account signing in and ends its live sessions at once; audited.

    Accounts are deactivated rather than deleted, so the audit log and status history keep
    pointing at someone. The new session token ends every session cookie issued before.
    """
    user = _existing_user(session, username)
    user.active = False
    user.session_token = _new_session_token()
    audit.add_audit_event(
        session, action=audit.ACCOUNT_DEACTIVATED, staff_username=user.username, detail=detail
    )
    session.flush()
    return _account(user)


def reactivate_staff_user(session: Session, username: str, detail: str = "") -> StaffAccount:
    """Lets a deactivated account sign in again (with its old password); audited."""
    user = _existing_user(session, username)
    user.active = True
    audit.add_audit_event(
        session, action=audit.ACCOUNT_REACTIVATED, staff_username=user.username, detail=detail
    )
    session.flush()
    return _account(user)


def list_staff_accounts(url: str | None = None) -> list[StaffAccount]:
    with session_scope(url) as session:
        users = session.execute(select(StaffUser).order_by(StaffUser.username)).scalars().all()
        return [_account(user) for user in users]


def active_lockouts(url: str | None = None) -> list[Lockout]:
    """Every lockout in force now, by username, soonest to run out first."""
    now = utc_now()
    with session_scope(url) as session:
        rows = session.execute(
            select(
                StaffUser.username, StaffLoginFailure.client_address, StaffLoginFailure.locked_until
            )
            .join(StaffUser, StaffUser.id == StaffLoginFailure.staff_user_id)
            .where(StaffLoginFailure.locked_until > now)
            .order_by(StaffUser.username, StaffLoginFailure.locked_until)
        ).all()
    return [Lockout(*row) for row in rows]


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


def _failure_key(user_id: int, address: str) -> tuple:
    return (
        StaffLoginFailure.staff_user_id == user_id,
        StaffLoginFailure.client_address == address,
    )


def _forget_failures(session: Session, user_id: int, address: str | None = None) -> None:
    """Removes the account's failure counts and lockouts: from one address, or from all."""
    statement = delete(StaffLoginFailure).where(StaffLoginFailure.staff_user_id == user_id)
    if address is not None:
        statement = statement.where(StaffLoginFailure.client_address == address)
    session.execute(statement.execution_options(synchronize_session=False))


def _locked_until(session: Session, user_id: int, address: str) -> datetime | None:
    return session.execute(
        select(StaffLoginFailure.locked_until).where(*_failure_key(user_id, address))
    ).scalar_one_or_none()


def _count_failure(session: Session, user_id: int, address: str, now: datetime) -> int:
    """One more failure from ``address``; returns how many there have been in a row.

    Counted in SQL, not in Python, so that concurrent attempts from several web workers all
    count. A lockout that has run out is cleared and the count starts again.
    """
    expired = StaffLoginFailure.locked_until.isnot(None)
    changed = session.execute(
        update(StaffLoginFailure)
        .where(*_failure_key(user_id, address))
        .values(
            failed_count=case((expired, 1), else_=StaffLoginFailure.failed_count + 1),
            locked_until=None,
            last_failed_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        try:
            with session.begin_nested():
                session.add(
                    StaffLoginFailure(
                        staff_user_id=user_id,
                        client_address=address,
                        failed_count=1,
                        last_failed_at=now,
                    )
                )
        except IntegrityError:
            # Another worker counted this address's first failure at the same moment.
            return _count_failure(session, user_id, address, now)
    return session.execute(
        select(StaffLoginFailure.failed_count).where(*_failure_key(user_id, address))
    ).scalar_one()


def _lock(session: Session, user_id: int, address: str, until: datetime) -> None:
    session.execute(
        update(StaffLoginFailure)
        .where(*_failure_key(user_id, address))
        .values(locked_until=until)
        .execution_options(synchronize_session=False)
    )


def authenticate(
    username: str, password: str, client_address: str | None = None, url: str | None = None
) -> LoginResult:
    """Checks a sign-in attempt from ``client_address`` and counts its failures.

    The 5th failure in a row from one address locks the account for 15 minutes from that
    address only: its owner can still sign in from anywhere else.
    """
    now = utc_now()
    address = normalize_address(client_address)
    with session_scope(url) as session:
        user = _user_by_name(session, username)
        if user is None or not user.active or len(password) > MAX_PASSWORD_LENGTH:
            _spend_verification_time(password[:MAX_PASSWORD_LENGTH])
            return LoginResult(LoginOutcome.UNKNOWN_ACCOUNT)
        locked_until = _locked_until(session, user.id, address)
        if locked_until is not None and locked_until > now:
            _spend_verification_time(password)
            return LoginResult(
                LoginOutcome.LOCKED, _account(user), failed_login_count=MAX_FAILED_LOGINS
            )

        if _verify(user.password_hash, password):
            if password_hasher.check_needs_rehash(user.password_hash):
                user.password_hash = password_hasher.hash(password)
            user.last_login_at = now
            _forget_failures(session, user.id, address)
            session.flush()
            return LoginResult(LoginOutcome.SUCCESS, _account(user))

        failures = _count_failure(session, user.id, address, now)
        if failures >= MAX_FAILED_LOGINS:
            # The count starts again once the lockout runs out.
            _lock(session, user.id, address, now + LOCKOUT_DURATION)
            return LoginResult(LoginOutcome.LOCKED_NOW, _account(user), failed_login_count=failures)
        return LoginResult(LoginOutcome.WRONG_PASSWORD, _account(user), failed_login_count=failures)
