"""Staff accounts: argon2 hashes, login checks and the lockout, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from appointments import staff_accounts
from appointments.database import session_scope
from appointments.models import StaffUser, utc_now
from appointments.staff_accounts import (
    LOCKOUT_DURATION,
    MAX_FAILED_LOGINS,
    LoginOutcome,
    StaffAccountError,
    authenticate,
    create_staff_user,
    end_all_sessions,
    get_staff_account,
    list_staff_accounts,
    set_password,
    unlock,
)
from tests.appointments.staff_factories import PASSWORD, use_cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)


def _stored_user(url: str, username: str) -> StaffUser:
    with session_scope(url) as session:
        return session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one()


def test_create_stores_an_argon2_hash_not_the_password(database_url: str) -> None:
    account = create_staff_user("Alice", PASSWORD, role="admin", url=database_url)

    assert account.username == "alice"
    assert account.is_admin
    stored = _stored_user(database_url, "alice")
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert stored.active and stored.failed_login_count == 0 and stored.locked_until is None


def test_default_role_is_staff_and_accounts_are_listed(database_url: str) -> None:
    create_staff_user("bob", PASSWORD, url=database_url)
    create_staff_user("alice", PASSWORD, role="admin", url=database_url)

    accounts = list_staff_accounts(url=database_url)

    assert [(account.username, account.role) for account in accounts] == [
        ("alice", "admin"),
        ("bob", "staff"),
    ]


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("a", PASSWORD, "staff", "2 to 64 characters"),
        ("alice smith", PASSWORD, "staff", "2 to 64 characters"),
        ("<script>", PASSWORD, "staff", "2 to 64 characters"),
        ("alice", "short", "staff", "at least 12 characters"),
        ("alice", "x" * 1025, "staff", "at most 1024"),
        ("alice", PASSWORD, "root", "role must be one of"),
    ],
)
def test_create_refuses_unusable_names_passwords_and_roles(
    database_url: str, username: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(StaffAccountError, match=message):
        create_staff_user(username, password, role=role, url=database_url)
    assert list_staff_accounts(url=database_url) == []


def test_create_refuses_a_duplicate_name(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    with pytest.raises(StaffAccountError, match="already an account named 'alice'"):
        create_staff_user("ALICE", "another long password", url=database_url)


def test_authenticate_succeeds_with_the_right_password(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    result = authenticate(" Alice ", PASSWORD, url=database_url)

    assert result.outcome is LoginOutcome.SUCCESS and result.succeeded
    assert result.account.username == "alice"
    assert _stored_user(database_url, "alice").last_login_at is not None


def test_wrong_password_and_unknown_name_fail(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    wrong = authenticate("alice", PASSWORD + "!", url=database_url)
    unknown = authenticate("mallory", PASSWORD, url=database_url)

    assert wrong.outcome is LoginOutcome.WRONG_PASSWORD and wrong.failed_login_count == 1
    assert unknown.outcome is LoginOutcome.UNKNOWN_ACCOUNT and unknown.account is None


def test_five_failures_lock_the_account_even_for_the_right_password(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    outcomes = [
        authenticate("alice", "wrong password!", url=database_url).outcome
        for _ in range(MAX_FAILED_LOGINS)
    ]
    locked = authenticate("alice", PASSWORD, url=database_url)

    assert outcomes == [LoginOutcome.WRONG_PASSWORD] * (MAX_FAILED_LOGINS - 1) + [
        LoginOutcome.LOCKED_NOW
    ]
    assert locked.outcome is LoginOutcome.LOCKED
    stored = _stored_user(database_url, "alice")
    assert stored.locked_until - utc_now() > LOCKOUT_DURATION - timedelta(minutes=1)


def test_lockout_runs_out_after_fifteen_minutes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    for _ in range(MAX_FAILED_LOGINS):
        authenticate("alice", "wrong password!", url=database_url)

    later = utc_now() + LOCKOUT_DURATION + timedelta(seconds=1)
    monkeypatch.setattr(staff_accounts, "utc_now", lambda: later)

    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    assert _stored_user(database_url, "alice").locked_until is None


def test_a_success_resets_the_failure_count(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate("alice", "wrong password!", url=database_url)

    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    assert authenticate("alice", "wrong password!", url=database_url).failed_login_count == 1


def test_unlock_and_set_password_lift_the_lockout(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    create_staff_user("bob", PASSWORD, url=database_url)
    for username in ("alice", "bob"):
        for _ in range(MAX_FAILED_LOGINS):
            authenticate(username, "wrong password!", url=database_url)

    unlock("alice", url=database_url)
    set_password("bob", "a brand new password", url=database_url)

    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    assert not authenticate("bob", PASSWORD, url=database_url).succeeded
    assert authenticate("bob", "a brand new password", url=database_url).succeeded


def test_set_password_and_end_all_sessions_replace_the_session_token(database_url: str) -> None:
    account = create_staff_user("alice", PASSWORD, url=database_url)

    end_all_sessions(account.id, url=database_url)
    after_logout = get_staff_account(account.id, url=database_url).session_token
    set_password("alice", "a brand new password", url=database_url)
    after_new_password = get_staff_account(account.id, url=database_url).session_token

    assert len({account.session_token, after_logout, after_new_password}) == 3


def test_changing_an_unknown_account_says_so(database_url: str) -> None:
    with pytest.raises(StaffAccountError, match="no account named 'ghost'"):
        unlock("ghost", url=database_url)
    with pytest.raises(StaffAccountError, match="no account named 'ghost'"):
        set_password("ghost", "a brand new password", url=database_url)


def test_deactivated_account_cannot_sign_in(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    with session_scope(database_url) as session:
        session.execute(select(StaffUser)).scalar_one().active = False

    assert authenticate("alice", PASSWORD, url=database_url).outcome is (
        LoginOutcome.UNKNOWN_ACCOUNT
    )


def test_hash_is_upgraded_when_the_parameters_change(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    old_hash = _stored_user(database_url, "alice").password_hash
    monkeypatch.setattr(
        staff_accounts,
        "password_hasher",
        staff_accounts.PasswordHasher(time_cost=2, memory_cost=16, parallelism=1),
    )

    assert authenticate("alice", PASSWORD, url=database_url).succeeded

    new_hash = _stored_user(database_url, "alice").password_hash
    assert new_hash != old_hash and "t=2" in new_hash
