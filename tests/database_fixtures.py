"""Database fixtures for every test folder: each test gets its own database, SQLite and PostgreSQL.

PostgreSQL runs when TEST_DATABASE_URL is set (CI sets it); each test then works in a schema of
its own on that server, dropped afterwards, so it never touches other tests' tables.
Registered for the whole suite in tests/conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from appointments.database import dispose_engines, migrate

POSTGRES_SKIP_REASON = (
    "TEST_DATABASE_URL is not set; set it (e.g. postgresql://postgres@127.0.0.1:5432/test) "
    "to run the appointment store tests on PostgreSQL as well"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite file that does not exist yet, in a directory that does not exist yet."""
    return f"sqlite:///{tmp_path / 'var' / 'appointments.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty schema on the TEST_DATABASE_URL server, first on the search path."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pytest.skip(POSTGRES_SKIP_REASON)
    schema = f"appointments_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, future=True, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        # The schema cannot be dropped while pooled connections still use it.
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database without tables, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A migrated, empty database, once on SQLite and once on PostgreSQL."""
    migrate(empty_database_url)
    return empty_database_url
