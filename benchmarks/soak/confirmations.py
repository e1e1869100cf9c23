"""Scenario 1: many patients confirm their requests at once while PostgreSQL and a Rasa server fail.

Every patient fills the request form first (spread over both Rasa servers), then all confirm
within a few seconds, some twice at once (a double tap, to both servers). Meanwhile PostgreSQL
is stopped and started again, and one Rasa server is killed and started again. A patient who
gets no answer, or the apology, sends her confirmation again, as anyone would; a patient told
"could not be saved" tries again in half the cases, as the reply invites her to. The stored
rows are then compared with what each patient was told.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy import create_engine, text

from benchmarks.soak.cluster import SoakCluster
from benchmarks.soak.patients import (
    CONFIRM,
    Outcome,
    Patient,
    fill_the_form,
    send,
    send_until_answered,
)

# A question any conversation can take after the request: it shows the conversation goes on.
NEXT_MESSAGE = "how long does the test take"


@dataclass
class Faults:
    """When, after the first confirmation, each fault begins, and how long PostgreSQL is down."""

    postgres_stop_after: float = 2.0
    postgres_down_for: float = 10.0
    rasa_kill_after: float = 4.0
    rasa_killed: int = 0


@dataclass
class ConfirmationResult:
    """Counts only: what patients were told, what was stored, and every disagreement."""

    patients: int = 0
    reached_summary: int = 0
    confirmations_sent: int = 0
    double_taps: int = 0
    outcomes: Counter = field(default_factory=Counter)
    told_saved: int = 0
    told_not_saved_final: int = 0
    never_told: int = 0
    rows: int = 0
    lost: int = 0  # told "saved" with a reference, and that row is not there
    doubled: int = 0  # more than one row, or more than one reference, for one conversation
    false_not_saved: int = 0  # finally told "could not be saved", yet a row is there
    rows_without_saved: int = 0  # a row for a patient never told "saved"
    continued: int = 0  # conversations that answered their next message
    fault_log: list[str] = field(default_factory=list)
    fill_seconds: float = 0.0
    confirm_seconds: float = 0.0

    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.doubled == 0
            and self.false_not_saved == 0
            and self.rows_without_saved == 0
            and self.never_told == 0
            and self.continued == self.reached_summary
        )

    def lines(self) -> list[str]:
        outcomes = ", ".join(f"{name}: {count}" for name, count in sorted(self.outcomes.items()))
        return [
            f"patients: {self.patients}; reached the confirmation: {self.reached_summary} "
            f"(form filled in {self.fill_seconds:.0f} s)",
            f"confirmations sent: {self.confirmations_sent} (double taps: {self.double_taps}; "
            f"the rest are patients sending again), answered in {self.confirm_seconds:.0f} s",
            f"replies to confirmations: {outcomes}",
            f"faults: {'; '.join(self.fault_log)}",
            f"told saved: {self.told_saved}; finally told could not be saved: "
            f"{self.told_not_saved_final}; never told either: {self.never_told}",
            f"rows stored: {self.rows}",
            f"lost: {self.lost}; doubled: {self.doubled}; false 'saved': {self.lost}; "
            f"row despite 'could not be saved': {self.false_not_saved}; "
            f"row without a patient told 'saved': {self.rows_without_saved}",
            f"conversations answering their next message: {self.continued} of "
            f"{self.reached_summary}",
        ]


async def inject_faults(cluster: SoakCluster, faults: Faults, log: list[str]) -> None:
    """Stops PostgreSQL for a while and kills one Rasa server, then brings both back."""
    started = time.monotonic()

    async def postgres_outage() -> None:
        await asyncio.sleep(faults.postgres_stop_after)
        await asyncio.to_thread(cluster.postgres.stop)
        stopped = time.monotonic()
        log.append(f"PostgreSQL stopped at +{stopped - started:.1f} s")
        await asyncio.sleep(faults.postgres_down_for)
        await asyncio.to_thread(cluster.postgres.start)
        log.append(f"started again after {time.monotonic() - stopped:.1f} s down")

    async def rasa_crash() -> None:
        await asyncio.sleep(faults.rasa_kill_after)
        server = cluster.rasa_servers[faults.rasa_killed]
        await asyncio.to_thread(cluster.kill, server)
        killed = time.monotonic()
        log.append(f"{server.name} killed (SIGKILL) at +{killed - started:.1f} s")
        await asyncio.to_thread(cluster.start, server)
        log.append(f"{server.name} answering again after {time.monotonic() - killed:.0f} s")

    await asyncio.gather(postgres_outage(), rasa_crash())


async def confirm(
    session: aiohttp.ClientSession,
    cluster: SoakCluster,
    patient: Patient,
    rng: random.Random,
    result: ConfirmationResult,
    deadline: float,
) -> None:
    """One patient's confirmation: maybe a double tap, then again until she is told."""
    await asyncio.sleep(rng.uniform(0, 3))
    urls = cluster.rasa_urls
    first = rng.randrange(len(urls))
    if rng.random() < 0.1:
        result.double_taps += 1
        result.confirmations_sent += 2
        replies = await asyncio.gather(
            send(session, urls[first], patient.sender, CONFIRM),
            send(session, urls[(first + 1) % len(urls)], patient.sender, CONFIRM),
        )
        patient.replies.extend(replies)
    else:
        result.confirmations_sent += 1
        patient.replies.append(await send(session, urls[first], patient.sender, CONFIRM))
    retry_after_not_saved = rng.random() < 0.5
    server = first + 1
    while time.monotonic() < deadline:
        final = patient.final_outcome()
        if final is Outcome.SAVED:
            return
        if final is Outcome.NOT_SAVED and not retry_after_not_saved:
            return
        await asyncio.sleep(rng.uniform(3, 6))
        before = len(patient.replies)
        result.confirmations_sent += 1
        await send_until_answered(
            session, urls, patient, CONFIRM, server, deadline, pause=rng.uniform(3, 6)
        )
        result.confirmations_sent += len(patient.replies) - before - 1
        server += 1
        if final is Outcome.NOT_SAVED:
            # She tried once more after "could not be saved"; whatever she hears now stands.
            retry_after_not_saved = False


def stored_rows(database_url: str) -> list[tuple[str, str]]:
    """(conversation id, reference) of every stored request."""
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            return [
                (row.conversation_id, row.reference)
                for row in connection.execute(
                    text("SELECT conversation_id, reference FROM appointment_requests")
                )
            ]
    finally:
        engine.dispose()


def compare(
    patients: list[Patient], rows: list[tuple[str, str]], result: ConfirmationResult
) -> None:
    """Counts every disagreement between what patients were told and what is stored."""
    rows_by_conversation: dict[str, list[str]] = {}
    for conversation_id, reference in rows:
        rows_by_conversation.setdefault(conversation_id, []).append(reference)
    ours = {patient.conversation_id for patient in patients}
    result.rows = sum(len(refs) for cid, refs in rows_by_conversation.items() if cid in ours)
    for patient in patients:
        stored = rows_by_conversation.get(patient.conversation_id, [])
        told = patient.references_told()
        final = patient.final_outcome()
        if len(stored) > 1 or len(told) > 1:
            result.doubled += 1
        if told and not told <= set(stored):
            result.lost += 1
        if final is Outcome.SAVED:
            result.told_saved += 1
        elif final is Outcome.NOT_SAVED:
            result.told_not_saved_final += 1
            if stored:
                result.false_not_saved += 1
        else:
            result.never_told += 1
        if stored and not told:
            result.rows_without_saved += 1


async def run_confirmations(
    cluster: SoakCluster,
    patients: int = 1000,
    faults: Faults | None = None,
    fill_concurrency: int = 60,
    seed: int = 0,
    time_limit: float = 3600,
) -> ConfirmationResult:
    """Fills ``patients`` forms, confirms them all at once under ``faults``, then checks."""
    rng = random.Random(seed)
    result = ConfirmationResult(patients=patients)
    run_id = uuid.uuid4().hex[:6]
    everyone = [Patient(f"soak-{run_id}-{index:05d}") for index in range(patients)]
    deadline = time.monotonic() + time_limit
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(fill_concurrency)

        async def fill(patient: Patient) -> bool:
            async with gate:
                return await fill_the_form(session, cluster.rasa_urls, patient, deadline)

        started = time.monotonic()
        filled = await asyncio.gather(*(fill(patient) for patient in everyone))
        result.fill_seconds = time.monotonic() - started
        ready = [patient for patient, ok in zip(everyone, filled) if ok]
        result.reached_summary = len(ready)
        for patient in ready:
            patient.replies.clear()

        started = time.monotonic()
        fault_task = asyncio.create_task(
            inject_faults(cluster, faults or Faults(), result.fault_log)
        )
        await asyncio.gather(
            *(confirm(session, cluster, patient, rng, result, deadline) for patient in ready)
        )
        await fault_task
        result.confirm_seconds = time.monotonic() - started
        for patient in ready:
            result.outcomes.update(reply.outcome.value for reply in patient.replies)

        rows = await asyncio.to_thread(stored_rows, cluster.database_url)
        compare(ready, rows, result)

        async def goes_on(index: int, patient: Patient) -> bool:
            async with gate:
                reply = await send(
                    session, cluster.rasa_urls[index % 2], patient.sender, NEXT_MESSAGE
                )
                return reply.outcome is Outcome.OTHER

        went_on = await asyncio.gather(*(goes_on(i, p) for i, p in enumerate(ready)))
        result.continued = sum(went_on)
    return result
