"""Engines and migrations of the appointment store, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import OperationalError

from appointments.database import (
    DEFAULT_SQLITE_PATH,
    REPO_ROOT,
    database_url,
    get_engine,
    migrate,
    session_scope,
)
from appointments.models import Base, SmsOptOut

# The newest migration: every test below expects the schema to be there.
HEAD_REVISION = ScriptDirectory.from_config(
    Config(str(REPO_ROOT / "alembic.ini"))
).get_current_head()

APPOINTMENT_TABLES = {"appointment_requests", "sms_opt_outs"}
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/none"


def _table_names(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def _schema_version(url: str) -> str:
    with get_engine(url).connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_database_url_defaults_to_sqlite_file_under_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url() == f"sqlite:///{REPO_ROOT / 'var' / 'appointments.db'}"
    assert DEFAULT_SQLITE_PATH.is_absolute()


def test_database_url_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://clinic@db.internal/appointments")
    assert database_url() == "postgresql://clinic@db.internal/appointments"


def test_get_engine_is_cached_per_url(sqlite_url: str, tmp_path: Path) -> None:
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    assert get_engine(sqlite_url) is get_engine(sqlite_url)
    assert get_engine(sqlite_url) is not get_engine(other_url)


def test_sqlite_file_is_private_whatever_the_umask(sqlite_url: str, tmp_path: Path) -> None:
    previous_umask = os.umask(0)
    try:
        migrate(sqlite_url)
    finally:
        os.umask(previous_umask)
    database_file = tmp_path / "var" / "appointments.db"
    assert stat.S_IMODE(database_file.stat().st_mode) == 0o600
    for companion in (tmp_path / "var").glob("appointments.db-*"):
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion.name


def test_sqlite_uses_wal_and_a_busy_timeout(sqlite_url: str) -> None:
    with get_engine(sqlite_url).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() >= 5000


def test_migrate_creates_tables_and_is_idempotent(empty_database_url: str) -> None:
    assert not APPOINTMENT_TABLES & _table_names(empty_database_url)

    migrate(empty_database_url)
    migrate(empty_database_url)

    assert APPOINTMENT_TABLES | {"alembic_version"} <= _table_names(empty_database_url)
    assert _schema_version(empty_database_url) == HEAD_REVISION
    index_names = {
        index["name"]
        for index in inspect(get_engine(empty_database_url)).get_indexes("appointment_requests")
    }
    assert {
        "ix_appointment_requests_conversation_id",
        "ix_appointment_requests_status",
        "ix_appointment_requests_created_at",
        "ix_appointment_requests_needs_attention",
    } <= index_names


def test_migrations_match_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_leaves_the_callers_logging_alone(sqlite_url: str) -> None:
    existing_logger = logging.getLogger("clinic.example")
    root_handlers = list(logging.getLogger().handlers)
    root_level = logging.getLogger().level

    migrate(sqlite_url)

    assert not existing_logger.disabled
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger().level == root_level


def test_session_scope_commits_on_success_and_rolls_back_on_error(database_url: str) -> None:
    with pytest.raises(RuntimeError):
        with session_scope(database_url) as session:
            session.add(SmsOptOut(phone_e164="+15555550100", opted_out=True))
            session.flush()
            raise RuntimeError("abandon")
    with session_scope(database_url) as session:
        session.add(SmsOptOut(phone_e164="+15555550101", opted_out=True))

    with session_scope(database_url) as session:
        stored = session.execute(select(SmsOptOut.phone_e164)).scalars().all()
    assert stored == ["+15555550101"]


def test_unreachable_database_raises_operational_error() -> None:
    with pytest.raises(OperationalError):
        migrate(UNREACHABLE_URL)
    with pytest.raises(OperationalError):
        with session_scope(UNREACHABLE_URL) as session:
            session.execute(text("SELECT 1"))


def _run(command: list[str], url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_command_line(sqlite_url: str) -> None:
    for _ in range(2):
        result = _run([sys.executable, "-m", "appointments.database", "migrate"], sqlite_url)
        assert result.returncode == 0, result.stderr
    assert APPOINTMENT_TABLES <= _table_names(sqlite_url)


@pytest.mark.timeout(120)
def test_concurrent_migrations_from_several_processes(empty_database_url: str) -> None:
    # As when the action server and the web app start together on a new database.
    migrate_command = [sys.executable, "-m", "appointments.database", "migrate"]
    env = {**os.environ, "DATABASE_URL": empty_database_url, "PYTHONPATH": str(REPO_ROOT)}
    processes = [
        subprocess.Popen(migrate_command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=100)
        assert process.returncode == 0, stderr
    assert _schema_version(empty_database_url) == HEAD_REVISION


def test_downgrade_removes_the_tables(database_url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False

    command.downgrade(config, "base")
    assert not APPOINTMENT_TABLES & _table_names(database_url)

    migrate(database_url)
    assert APPOINTMENT_TABLES <= _table_names(database_url)


def test_alembic_command_line_uses_database_url(sqlite_url: str, tmp_path: Path) -> None:
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini")]
    result = _run([*alembic, "upgrade", "head"], sqlite_url)
    assert result.returncode == 0, result.stderr
    assert _schema_version(sqlite_url) == HEAD_REVISION
    result = _run([*alembic, "current"], sqlite_url)
    assert f"{HEAD_REVISION} (head)" in result.stdout, result.stderr
