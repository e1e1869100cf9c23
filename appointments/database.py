"""Engines, sessions and migrations for the appointment store.

SQLite (the default, under var/) for development and small installs; PostgreSQL via DATABASE_URL.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = REPO_ROOT / "alembic.ini"
DEFAULT_SQLITE_PATH = REPO_ROOT / "var" / "appointments.db"

# Long enough for a burst of confirmations to queue behind one another instead of failing.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10

_engines: dict[str, Engine] = {}
_session_factories: dict[str, sessionmaker] = {}
_engines_lock = threading.Lock()


def database_url() -> str:
    """The configured database: env DATABASE_URL, else the SQLite file under var/."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _normalized_url(url: str) -> str:
    # Hosting providers hand out postgres://, which SQLAlchemy 1.4 no longer accepts.
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def _sqlite_file(url: URL) -> Path | None:
    if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def _create_private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created here rather than by SQLite so that patient data is never world-readable,
        # whatever the umask; SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _on_sqlite_connect(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another connection may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        # WAL lets readers (the web app) carry on while the action server writes.
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL still survives application crashes, and writes are much faster.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _create_engine(url_text: str) -> Engine:
    url = make_url(url_text)
    backend = url.get_backend_name()
    # Statement parameters are patient details: keep them out of SQL logs and error messages.
    common_options = {"future": True, "hide_parameters": True}
    if backend == "sqlite":
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None:
            _create_private_file(sqlite_file)
        engine = create_engine(
            url,
            **common_options,
            # Sessions are short and never shared, but the actions run in worker threads.
            connect_args={"check_same_thread": False},
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        if sqlite_file is not None:
            # Switch the file to WAL now, once, rather than racing on it from many threads.
            with engine.connect():
                pass
        return engine
    if backend == "postgresql":
        connect_args = {}
        if url.get_driver_name() == "psycopg2":
            # Fail fast with an OperationalError instead of hanging on an unreachable host.
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        return create_engine(url, **common_options, pool_pre_ping=True, connect_args=connect_args)
    return create_engine(url, **common_options)


def _engine_and_session_factory(url: str | None) -> tuple[Engine, sessionmaker]:
    url_text = _normalized_url(url or database_url())
    with _engines_lock:
        if url_text not in _engines:
            engine = _create_engine(url_text)
            _engines[url_text] = engine
            # Keep loaded rows usable after the session closes: callers get plain values back.
            _session_factories[url_text] = sessionmaker(engine, future=True, expire_on_commit=False)
        return _engines[url_text], _session_factories[url_text]


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``database_url()``), created once per URL."""
    return _engine_and_session_factory(url)[0]


def dispose_engines() -> None:
    """Closes and forgets every cached engine: for tests, and in a worker process after fork."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _session_factories.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    _, session_factory = _engine_and_session_factory(url)
    with session_factory() as session, session.begin():
        yield session


def migrate(url: str | None = None) -> None:
    """Brings the database schema up to date (``alembic upgrade head``); safe to repeat."""
    url_text = _normalized_url(url or database_url())
    config = Config(str(ALEMBIC_INI))
    # ConfigParser interpolates "%", which URL-encoded passwords and options contain.
    config.set_main_option("sqlalchemy.url", url_text.replace("%", "%%"))
    # Tells env.py that the caller owns logging, so it must not run fileConfig.
    config.attributes["configure_logger"] = False
    with get_engine(url_text).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("Database schema is up to date")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appointments.database",
        description="Manage the appointment database (DATABASE_URL, default var/appointments.db).",
    )
    parser.add_argument("command", choices=["migrate"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # One line per plugin at start-up says nothing useful to someone running `make`.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        migrate()
    except OperationalError as error:
        # The driver's message names host and port but never the password.
        logger.error("Could not reach the database to migrate it: %s", error.orig)
        return 1
    return 0


if __name__ == "__main__":
    # Run the imported module's main, so that env.py and this command share one engine cache.
    from appointments.database import main as imported_main

    sys.exit(imported_main())
