"""Fixtures for the outreach tests; the databases come from tests/database_fixtures.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appointments.database import dispose_engines


@pytest.fixture(autouse=True)
def _dispose_engines_after_test() -> Iterator[None]:
    # Every test has its own database URL, so cached engines and their pools would pile up.
    yield
    dispose_engines()
