"""Short versions of `make soak`'s confirmation and dependency scenarios, on the same servers."""

from __future__ import annotations

import asyncio
import os

import pytest

from benchmarks.soak.cluster import SoakCluster
from benchmarks.soak.confirmations import Faults, run_confirmations
from benchmarks.soak.dependencies import run_dependency_failures
from benchmarks.soak.patients import Outcome

PATIENTS = 24


def test_confirmations_while_postgres_and_a_rasa_server_fail_lose_and_double_nothing(
    soak_cluster: SoakCluster,
) -> None:
    faults = Faults(postgres_stop_after=0.5, postgres_down_for=4, rasa_kill_after=1.5)
    result = asyncio.run(
        run_confirmations(
            soak_cluster, patients=PATIENTS, faults=faults, fill_concurrency=12, time_limit=600
        )
    )
    print("\n".join(result.lines()))
    assert result.reached_summary == PATIENTS
    assert (result.lost, result.doubled, result.false_not_saved, result.rows_without_saved) == (
        0,
        0,
        0,
        0,
    )
    assert result.never_told == 0
    assert result.continued == PATIENTS
    # The faults hit the confirmations: some were refused or went unanswered on the way.
    hit = sum(result.outcomes[o.value] for o in (Outcome.APOLOGY, Outcome.NO_ANSWER))
    assert hit + result.outcomes[Outcome.NOT_SAVED.value] > 0, result.outcomes
    assert result.rows == result.told_saved


def test_each_dependency_failure_is_answered_and_resumed(
    soak_cluster: SoakCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    results = asyncio.run(
        run_dependency_failures(
            soak_cluster, tmp_path_factory.mktemp("dependencies"), patients=4, down_for=3
        )
    )
    for result in results:
        print(result.line())
    for result in results:
        if result.note.startswith("not run") and not os.environ.get("CI"):
            continue
        assert result.passed(), result.line()
        # While it was down, every message got an answer or the apology: none went silent.
        assert sum(result.during.values()) == result.patients, result.line()
