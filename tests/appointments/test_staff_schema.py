"""Migrations 0002 and 0003 add the staff area's tables next to the requests, and remove only them."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from appointments.database import REPO_ROOT, get_engine, migrate

STAFF_TABLES = {
    "staff_users",
    "request_status_changes",
    "staff_audit_events",
    "staff_login_failures",
}


def _alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def _version(url: str) -> str:
    with get_engine(url).connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_0002_follows_0001_and_0003_follows_0002() -> None:
    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    assert script.get_revision("0002").down_revision == "0001"
    assert script.get_revision("0003").down_revision == "0002"
    assert len(script.get_heads()) == 1


def test_migrate_creates_the_staff_tables(database_url: str) -> None:
    assert STAFF_TABLES <= _tables(database_url)
    inspector = inspect(get_engine(database_url))
    foreign_keys = inspector.get_foreign_keys("request_status_changes")
    assert [(fk["referred_table"], fk["constrained_columns"]) for fk in foreign_keys] == [
        ("appointment_requests", ["request_id"])
    ]
    assert {"uq_staff_users_username"} <= {
        constraint["name"] for constraint in inspector.get_unique_constraints("staff_users")
    }
    lockouts = inspector.get_pk_constraint("staff_login_failures")
    assert lockouts["constrained_columns"] == ["staff_user_id", "client_address"]


def test_downgrade_to_0002_removes_only_the_lockout_table(database_url: str) -> None:
    command.downgrade(_alembic_config(database_url), "0002")

    tables = _tables(database_url)
    assert "staff_login_failures" not in tables
    assert STAFF_TABLES - {"staff_login_failures"} <= tables
    assert _version(database_url) == "0002"

    migrate(database_url)
    assert STAFF_TABLES <= _tables(database_url)


def test_downgrade_to_0001_removes_only_the_staff_tables(database_url: str) -> None:
    command.downgrade(_alembic_config(database_url), "0001")

    tables = _tables(database_url)
    assert not STAFF_TABLES & tables
    assert {"appointment_requests", "sms_opt_outs"} <= tables
    assert _version(database_url) == "0001"

    migrate(database_url)
    assert STAFF_TABLES <= _tables(database_url)
