"""Every action test records into its own migrated SQLite database, never into the repository's var/."""

from __future__ import annotations

from pathlib import Path

import pytest

from appointments.database import dispose_engines, migrate


@pytest.fixture(scope="session")
def _actions_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('actions-db')) / 'appointments.db'}"
    migrate(url)
    return url


@pytest.fixture(autouse=True)
def _actions_record_into_a_test_database(
    _actions_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests that need a database of their own (test_submission.py) set DATABASE_URL again.
    monkeypatch.setenv("DATABASE_URL", _actions_database)


@pytest.fixture(scope="session", autouse=True)
def _dispose_at_the_end():
    yield
    dispose_engines()
