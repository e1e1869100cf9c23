"""Staff accounts from the command line: `python -m web.staff.accounts create alice --role admin`.

Also set-password, unlock, deactivate, reactivate and list. The password comes from
STAFF_PASSWORD (for scripted set-ups) or is asked for twice.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from appointments.database import get_engine, session_scope
from appointments.staff_accounts import (
    ROLES,
    StaffAccountError,
    active_lockouts,
    check_password,
    check_username,
    create_staff_user,
    deactivate_staff_user,
    list_staff_accounts,
    reactivate_staff_user,
    set_password,
    unlock,
)

PASSWORD_VARIABLE = "STAFF_PASSWORD"  # noqa: S105 (the variable's name, not a password)
# The audit event's detail: who acted is whoever could run commands on the server.
COMMAND_LINE = "on the command line"


class CommandError(Exception):
    """Ends the command with this message and exit status 1."""


def read_password(username: str) -> str:
    """From STAFF_PASSWORD, else typed twice without echo."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is not None:
        check_password(password)
        return password
    password = getpass.getpass(f"Password for {username}: ")
    check_password(password)
    if getpass.getpass("Repeat the password: ") != password:
        raise CommandError("The passwords did not match; nothing was changed.")
    return password


def _check_database() -> None:
    try:
        has_table = inspect(get_engine()).has_table("staff_users")
    except OperationalError as error:
        # The driver's message names host and port, never the password.
        raise CommandError(f"Could not reach the database: {error.orig}") from None
    if not has_table:
        raise CommandError("The database has no staff tables yet: run `make migrate` first.")


def _create(arguments: argparse.Namespace) -> str:
    username = check_username(arguments.username)
    account = create_staff_user(username, read_password(username), role=arguments.role)
    return f"Created {account.role} account {account.username!r}."


def _set_password(arguments: argparse.Namespace) -> str:
    username = check_username(arguments.username)
    set_password(username, read_password(username))
    return f"New password set for {username!r}; its sessions have been signed out."


def _unlock(arguments: argparse.Namespace) -> str:
    unlock(arguments.username)
    return f"Unlocked {arguments.username.strip().lower()!r}."


def _deactivate(arguments: argparse.Namespace) -> str:
    with session_scope() as session:
        account = deactivate_staff_user(session, arguments.username, detail=COMMAND_LINE)
    return f"Deactivated {account.username!r}; their sessions have been signed out."


def _reactivate(arguments: argparse.Namespace) -> str:
    with session_scope() as session:
        account = reactivate_staff_user(session, arguments.username, detail=COMMAND_LINE)
    return f"Reactivated {account.username!r}; they can sign in again with their password."


def _list(arguments: argparse.Namespace) -> str:
    lockouts = active_lockouts()
    lines = []
    for account in list_staff_accounts():
        state = "active" if account.active else "deactivated"
        for lockout in lockouts:
            if lockout.username == account.username:
                state += (
                    f", locked from {lockout.client_address} until "
                    f"{lockout.locked_until:%Y-%m-%d %H:%M} UTC"
                )
        lines.append(f"{account.username}\t{account.role}\t{state}")
    return "\n".join(lines) or "No staff accounts yet."


def main(argv: list[str] | None = None) -> int:
    """Runs one command; 1 with a message (never a traceback) when it cannot be done."""
    parser = argparse.ArgumentParser(
        prog="python -m web.staff.accounts",
        description="Manage staff accounts (database: DATABASE_URL, default var/appointments.db).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an account")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, default="staff")
    create.set_defaults(run=_create)
    password = commands.add_parser("set-password", help="replace a password, ending its sessions")
    password.add_argument("username")
    password.set_defaults(run=_set_password)
    unlock_parser = commands.add_parser("unlock", help="lift a lockout after failed sign-ins")
    unlock_parser.add_argument("username")
    unlock_parser.set_defaults(run=_unlock)
    deactivate = commands.add_parser(
        "deactivate", help="stop an account signing in and end its sessions now"
    )
    deactivate.add_argument("username")
    deactivate.set_defaults(run=_deactivate)
    reactivate = commands.add_parser("reactivate", help="let a deactivated account sign in again")
    reactivate.add_argument("username")
    reactivate.set_defaults(run=_reactivate)
    commands.add_parser("list", help="list the accounts").set_defaults(run=_list)
    arguments = parser.parse_args(argv)

    try:
        _check_database()
        print(arguments.run(arguments))
    except (CommandError, StaffAccountError) as error:
        print(error, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\nCancelled; nothing was changed.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
