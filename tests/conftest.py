"""Shared fixtures: the real Rasa server and action server, started once per test session."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Callable, Iterator

import pytest

from scripts.assistant_servers import Assistant, scratch_postgres_database, start_assistant

# sqlite_url, postgres_url, database_url: one database per test, for every folder; axe: the
# accessibility check of the browser tests.
pytest_plugins = ["tests.database_fixtures", "tests.browser_fixtures", "tests.web.accessibility"]


@pytest.fixture(scope="session")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """The assistant on SQLite, as `make run` runs it."""
    workdir = tmp_path_factory.mktemp("assistant")
    with start_assistant(workdir, f"sqlite:///{workdir / 'appointments.db'}") as running:
        yield running


@pytest.fixture(scope="session")
def assistant_on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    """The assistant storing requests in PostgreSQL (TEST_DATABASE_URL; CI sets it)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set; PostgreSQL end-to-end tests run in CI")
    with scratch_postgres_database(url) as scratch_url:
        with start_assistant(tmp_path_factory.mktemp("assistant-pg"), scratch_url) as running:
            yield running


@pytest.fixture(scope="session")
def tracker_event_count(assistant) -> Callable[[str], int]:
    """How many events the test Rasa server's tracker store holds for a conversation."""
    path = assistant.tracker_database_url.removeprefix("sqlite:///")

    def count(sender_id: str) -> int:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            (events,) = connection.execute(
                "SELECT count(*) FROM events WHERE sender_id = ?", (sender_id,)
            ).fetchone()
        return events

    return count
