"""Staff accounts: argon2 hashes, login checks, per-address lockouts and deactivation, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from appointments import staff_accounts
from appointments.audit import AuditFilters, list_audit_events
from appointments.database import session_scope
from appointments.models import StaffLoginFailure, StaffUser, utc_now
from appointments.staff_accounts import (
    LOCKOUT_DURATION,
    MAX_ADDRESS_LENGTH,
    MAX_FAILED_LOGINS,
    LoginOutcome,
    StaffAccountError,
    active_lockouts,
    authenticate,
    create_staff_user,
    deactivate_staff_user,
    end_all_sessions,
    get_staff_account,
    list_staff_accounts,
    normalize_address,
    reactivate_staff_user,
    set_password,
    unlock,
)
from tests.appointments.staff_factories import PASSWORD, use_cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_cheap_password_hashing(monkeypatch)


ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"


def _stored_user(url: str, username: str) -> StaffUser:
    with session_scope(url) as session:
        return session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one()


def _failure_rows(url: str) -> list[tuple[str, int]]:
    with session_scope(url) as session:
        rows = session.execute(select(StaffLoginFailure)).scalars()
        return sorted((row.client_address, row.failed_count) for row in rows)


def _fail(url: str, times: int, address: str | None = None, username: str = "alice") -> list:
    return [
        authenticate(username, "wrong password!", client_address=address, url=url).outcome
        for _ in range(times)
    ]


def test_create_stores_an_argon2_hash_not_the_password(database_url: str) -> None:
    account = create_staff_user("Alice", PASSWORD, role="admin", url=database_url)

    assert account.username == "alice"
    assert account.is_admin
    stored = _stored_user(database_url, "alice")
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert stored.active and _failure_rows(database_url) == []


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
    (lockout,) = active_lockouts(url=database_url)
    assert (lockout.username, lockout.client_address) == ("alice", "unknown")
    assert lockout.locked_until - utc_now() > LOCKOUT_DURATION - timedelta(minutes=1)


def test_lockout_runs_out_after_fifteen_minutes(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    for _ in range(MAX_FAILED_LOGINS):
        authenticate("alice", "wrong password!", url=database_url)

    later = utc_now() + LOCKOUT_DURATION + timedelta(seconds=1)
    monkeypatch.setattr(staff_accounts, "utc_now", lambda: later)

    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    assert active_lockouts(url=database_url) == [] and _failure_rows(database_url) == []


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


def test_a_lockout_holds_only_for_the_address_it_came_from(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    outcomes = _fail(database_url, MAX_FAILED_LOGINS + 3, ATTACKER)

    assert outcomes[MAX_FAILED_LOGINS - 1] is LoginOutcome.LOCKED_NOW
    assert outcomes[MAX_FAILED_LOGINS:] == [LoginOutcome.LOCKED] * 3
    assert authenticate("alice", PASSWORD, client_address=OWNER, url=database_url).succeeded
    # The owner's success clears only the owner's address.
    locked = authenticate("alice", PASSWORD, client_address=ATTACKER, url=database_url)
    assert locked.outcome is LoginOutcome.LOCKED
    assert [(lock.username, lock.client_address) for lock in active_lockouts(database_url)] == [
        ("alice", ATTACKER)
    ]


def test_failures_are_counted_per_address(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    _fail(database_url, 3, ATTACKER)
    _fail(database_url, 2, OWNER)
    assert _failure_rows(database_url) == [(OWNER, 2), (ATTACKER, 3)]

    assert authenticate("alice", PASSWORD, client_address=OWNER, url=database_url).succeeded
    assert _failure_rows(database_url) == [(ATTACKER, 3)]
    assert _fail(database_url, 2, ATTACKER) == [
        LoginOutcome.WRONG_PASSWORD,
        LoginOutcome.LOCKED_NOW,
    ]


def test_the_count_starts_again_after_a_lockout_runs_out(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    _fail(database_url, MAX_FAILED_LOGINS, ATTACKER)
    later = utc_now() + LOCKOUT_DURATION + timedelta(seconds=1)
    monkeypatch.setattr(staff_accounts, "utc_now", lambda: later)

    result = authenticate("alice", "wrong password!", client_address=ATTACKER, url=database_url)

    assert result.outcome is LoginOutcome.WRONG_PASSWORD and result.failed_login_count == 1


def test_unlock_and_set_password_lift_the_lockouts_from_every_address(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    for address in (ATTACKER, OWNER):
        _fail(database_url, MAX_FAILED_LOGINS, address)
    assert len(active_lockouts(url=database_url)) == 2

    unlock("alice", url=database_url)

    assert active_lockouts(url=database_url) == [] and _failure_rows(database_url) == []
    _fail(database_url, MAX_FAILED_LOGINS, ATTACKER)
    set_password("alice", "a brand new password", url=database_url)
    assert _failure_rows(database_url) == []


@pytest.mark.parametrize(
    ("address", "key"),
    [(None, "unknown"), ("", "unknown"), (" 10.0.0.1 ", "10.0.0.1"), ("x" * 100, "x" * 64)],
)
def test_addresses_are_normalised(address: str | None, key: str) -> None:
    assert normalize_address(address) == key
    assert len(normalize_address(address)) <= MAX_ADDRESS_LENGTH


def test_deactivation_ends_sessions_and_is_audited_with_the_change(database_url: str) -> None:
    account = create_staff_user("alice", PASSWORD, url=database_url)

    with session_scope(database_url) as session:
        deactivated = deactivate_staff_user(session, " Alice ", detail="on the command line")

    stored = get_staff_account(account.id, url=database_url)
    assert not deactivated.active and not stored.active
    assert stored.session_token != account.session_token
    outcome = authenticate("alice", PASSWORD, url=database_url).outcome
    assert outcome is LoginOutcome.UNKNOWN_ACCOUNT
    events = list_audit_events(AuditFilters(action="account_deactivated"), url=database_url).items
    assert [(e.staff_username, e.detail) for e in events] == [("alice", "on the command line")]


def test_reactivation_lets_the_account_sign_in_again(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    with session_scope(database_url) as session:
        deactivate_staff_user(session, "alice")

    with session_scope(database_url) as session:
        assert reactivate_staff_user(session, "alice").active

    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    events = list_audit_events(AuditFilters(action="account_reactivated"), url=database_url).items
    assert [e.staff_username for e in events] == ["alice"]


def test_a_failed_deactivation_changes_and_records_nothing(database_url: str) -> None:
    account = create_staff_user("alice", PASSWORD, url=database_url)
    with pytest.raises(StaffAccountError, match="no account named 'ghost'"):
        with session_scope(database_url) as session:
            deactivate_staff_user(session, "ghost")
    # The caller's transaction rolls back as a whole: the audit event goes with the change.
    with pytest.raises(RuntimeError):
        with session_scope(database_url) as session:
            deactivate_staff_user(session, "alice")
            raise RuntimeError("the caller's next step failed")

    assert get_staff_account(account.id, url=database_url).active
    assert list_audit_events(AuditFilters(), url=database_url).total == 0
