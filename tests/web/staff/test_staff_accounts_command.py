"""`python -m web.staff.accounts` (behind `make staff-user`): create, set-password, unlock, list,
deactivate and reactivate.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from appointments.audit import AuditFilters, list_audit_events
from appointments.database import REPO_ROOT
from appointments.staff_accounts import (
    MAX_FAILED_LOGINS,
    authenticate,
    create_staff_user,
    list_staff_accounts,
)
from web.staff import accounts

PASSWORD = "a long enough password"


def _run(url: str, *arguments: str, password: str | None = PASSWORD):
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("STAFF_PASSWORD", None)
    if password is not None:
        env["STAFF_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "web.staff.accounts", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_create_with_staff_password_from_the_environment(database_url: str) -> None:
    result = _run(database_url, "create", "alice", "--role", "admin")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Created admin account 'alice'."
    assert PASSWORD not in result.stdout + result.stderr
    (account,) = list_staff_accounts(url=database_url)
    assert (account.username, account.role) == ("alice", "admin")
    assert authenticate("alice", PASSWORD, url=database_url).succeeded


def test_default_role_is_staff(database_url: str) -> None:
    assert _run(database_url, "create", "bob").returncode == 0
    assert list_staff_accounts(url=database_url)[0].role == "staff"


@pytest.mark.parametrize(
    ("arguments", "password", "message"),
    [
        (("create", "alice"), "short", "at least 12 characters"),
        (("create", "Not A Name!"), PASSWORD, "2 to 64 characters"),
        (("create", "alice", "--role", "root"), PASSWORD, "invalid choice"),
    ],
)
def test_create_refuses_bad_input(database_url, arguments, password, message) -> None:
    result = _run(database_url, *arguments, password=password)
    assert result.returncode != 0
    assert message in result.stderr
    assert list_staff_accounts(url=database_url) == []


def test_create_refuses_a_duplicate(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    result = _run(database_url, "create", "alice")
    assert result.returncode == 1
    assert "already an account named 'alice'" in result.stderr


def test_missing_tables_and_unreachable_database_are_explained(
    sqlite_url: str,
) -> None:
    missing = _run(sqlite_url, "create", "alice")
    unreachable = _run("postgresql://postgres@127.0.0.1:1/none", "create", "alice")

    assert missing.returncode == 1
    assert "run `make migrate` first" in missing.stderr
    assert unreachable.returncode == 1
    assert "Could not reach the database" in unreachable.stderr
    assert "Traceback" not in missing.stderr + unreachable.stderr


def test_password_is_asked_for_twice_without_the_variable(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("STAFF_PASSWORD", raising=False)
    answers = iter([PASSWORD, PASSWORD + " typo"])
    prompts = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(accounts.getpass, "getpass", fake_getpass)
    assert accounts.main(["create", "alice"]) == 1
    assert "did not match" in capsys.readouterr().err
    assert list_staff_accounts(url=database_url) == []

    answers = iter([PASSWORD, PASSWORD])
    assert accounts.main(["create", "alice"]) == 0
    assert prompts[-2:] == ["Password for alice: ", "Repeat the password: "]
    assert authenticate("alice", PASSWORD, url=database_url).succeeded


def test_set_password_unlock_and_list(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)
    create_staff_user("bob", PASSWORD, role="admin", url=database_url)
    for _ in range(MAX_FAILED_LOGINS):
        authenticate("alice", "wrong password", client_address="203.0.113.66", url=database_url)

    listed = _run(database_url, "list")
    assert listed.returncode == 0
    assert "alice\tstaff\tactive, locked from 203.0.113.66 until" in listed.stdout
    assert "bob\tadmin\tactive" in listed.stdout

    assert _run(database_url, "unlock", "alice").returncode == 0
    assert authenticate(
        "alice", PASSWORD, client_address="203.0.113.66", url=database_url
    ).succeeded

    changed = _run(database_url, "set-password", "bob", password="a different password")
    assert changed.returncode == 0, changed.stderr
    assert "sessions have been signed out" in changed.stdout
    assert authenticate("bob", "a different password", url=database_url).succeeded

    assert "no account named 'carol'" in _run(database_url, "unlock", "carol").stderr


def test_deactivate_and_reactivate(database_url: str) -> None:
    create_staff_user("alice", PASSWORD, url=database_url)

    deactivated = _run(database_url, "deactivate", "Alice")

    assert deactivated.returncode == 0, deactivated.stderr
    assert deactivated.stdout.strip() == (
        "Deactivated 'alice'; their sessions have been signed out."
    )
    assert not authenticate("alice", PASSWORD, url=database_url).succeeded
    assert "alice\tstaff\tdeactivated" in _run(database_url, "list").stdout

    reactivated = _run(database_url, "reactivate", "alice")

    assert reactivated.returncode == 0, reactivated.stderr
    assert "Reactivated 'alice'" in reactivated.stdout
    assert authenticate("alice", PASSWORD, url=database_url).succeeded
    events = list_audit_events(AuditFilters(staff_username="alice"), url=database_url).items
    assert [(e.action, e.detail) for e in reversed(events)] == [
        ("account_deactivated", "on the command line"),
        ("account_reactivated", "on the command line"),
    ]


def test_deactivating_an_unknown_account_says_so(database_url: str) -> None:
    for command in ("deactivate", "reactivate"):
        result = _run(database_url, command, "carol")
        assert result.returncode == 1
        assert "no account named 'carol'" in result.stderr
        assert "Traceback" not in result.stderr
    assert list_audit_events(AuditFilters(), url=database_url).total == 0
