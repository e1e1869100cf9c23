"""Alembic environment: the URL comes from the Alembic config if set, else from DATABASE_URL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from appointments.database import database_url, get_engine
from appointments.models import Base

# Any constant shared by every process that migrates this database.
MIGRATION_LOCK_ID = 4_711_001

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url()


def _lock_out_concurrent_migrations(connection: Connection) -> None:
    # The action server, the web app and `make` may all migrate at start-up: the first one to
    # take the lock migrates, the others wait and then find nothing left to do. Both locks are
    # held until the migration transaction ends, and the version table is read after them.
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": MIGRATION_LOCK_ID}
        )
    elif connection.dialect.name == "sqlite":
        # pysqlite never begins a transaction before DDL, so take SQLite's write lock by hand.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _run_migrations(connection: Connection) -> None:
    _lock_out_concurrent_migrations(connection)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite alters tables by copying them; batch mode lets later migrations do that.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # The connection is already in a transaction, so this commits nothing by itself.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # migrate() passes its connection, already in a transaction; the alembic CLI does not.
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection)
        return
    with get_engine(_url()).begin() as connection:
        _run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
