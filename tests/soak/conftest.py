"""The soak suite's servers, started once for the short scenarios that `make test` runs."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from benchmarks.soak.cluster import SoakCluster, start_soak_cluster
from benchmarks.soak.stores import stores_available


@pytest.fixture(scope="session")
def soak_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoakCluster]:
    """Two Rasa and two action servers on a throwaway PostgreSQL and Redis, and the web app."""
    reason = stores_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the soak scenarios cannot run in CI: {reason}")
        pytest.skip(f"soak scenarios skipped: {reason}")
    with start_soak_cluster(tmp_path_factory.mktemp("soak")) as cluster:
        yield cluster
