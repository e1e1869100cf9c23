"""Scenario 3: each dependency fails in turn while patients are in the middle of the request form.

Redis (locks, rate-limit counters, socket.io rooms), the tracker database (PostgreSQL), both
action servers, and the disk under `make run`'s SQLite database. While each is down, every
message must get an answer or the apology (never an error page, never silence, never a false
"saved"); once it is back, the same patients resend and finish their requests, each stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import aiohttp
import socketio

from benchmarks.soak.cluster import SoakCluster
from benchmarks.soak.confirmations import stored_rows
from benchmarks.soak.patients import (
    CONFIRM,
    TURNS_TO_SUMMARY,
    Outcome,
    Patient,
    fill_the_form,
    send,
    send_until_answered,
)
from scripts.assistant_servers import start_assistant

# Patients answer this many questions before the dependency fails, and send the next one during.
TURNS_BEFORE_FAILURE = 4


@dataclass
class DependencyResult:
    """One dependency's failure: what patients heard while it was down, and what came after."""

    dependency: str
    patients: int = 0
    during: Counter = field(default_factory=Counter)  # outcome of each message sent while down
    server_errors: int = 0  # HTTP 5xx while down
    false_saved: int = 0  # told "saved" while down
    resumed: int = 0  # finished the form where it stopped, once the dependency was back
    saved_after: int = 0  # then confirmed and told "saved"
    rows: int = 0
    doubled: int = 0
    widget_answered: bool | None = None  # a widget patient's message while it was down
    note: str = ""

    def passed(self) -> bool:
        return (
            self.server_errors == 0
            and self.false_saved == 0
            and self.during.get(Outcome.NO_ANSWER.value, 0) == 0
            and self.resumed == self.patients
            and self.saved_after == self.patients
            and self.rows == self.patients
            and self.doubled == 0
            and self.widget_answered is not False
        )

    def line(self) -> str:
        during = ", ".join(f"{name}: {count}" for name, count in sorted(self.during.items()))
        widget = {None: "", True: "; widget patient answered while down: yes"}.get(
            self.widget_answered, "; widget patient answered while down: NO"
        )
        return (
            f"{self.dependency}: {self.patients} patients mid-form; while down: {during}; "
            f"5xx: {self.server_errors}; false 'saved': {self.false_saved}; "
            f"resumed the form where it was: {self.resumed}; saved after: {self.saved_after}; "
            f"rows: {self.rows}; doubled: {self.doubled}{widget}"
            + (f" ({self.note})" if self.note else "")
        )


async def while_down(
    name: str,
    rasa_urls: list[str],
    database_url: str,
    break_it: Callable[[], Awaitable[None]],
    mend_it: Callable[[], Awaitable[None]],
    patients: int,
    deadline: float,
) -> DependencyResult:
    """Patients mid-form and one at her confirmation send while ``name`` is down, then finish."""
    result = DependencyResult(name, patients=patients)
    everyone = [
        Patient(f"soak-{name.split()[0].lower()}-{uuid.uuid4().hex[:8]}") for _ in range(patients)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # Half stop mid-form, half at the confirmation: both must come through unharmed.
        stops = [TURNS_BEFORE_FAILURE if i % 2 else len(TURNS_TO_SUMMARY) for i in range(patients)]
        await asyncio.gather(
            *(
                fill_the_form(session, rasa_urls, patient, deadline, slice(0, stop))
                for patient, stop in zip(everyone, stops)
            )
        )
        await break_it()
        try:
            pending = [
                TURNS_TO_SUMMARY[stop] if stop < len(TURNS_TO_SUMMARY) else CONFIRM
                for stop in stops
            ]
            replies = await asyncio.gather(
                *(
                    send(session, rasa_urls[i % len(rasa_urls)], patient.sender, text)
                    for i, (patient, text) in enumerate(zip(everyone, pending))
                )
            )
        finally:
            await mend_it()
        for reply in replies:
            result.during[reply.outcome.value] += 1
            result.server_errors += int(reply.status is not None and reply.status >= 500)
            result.false_saved += int(reply.outcome is Outcome.SAVED)

        async def finish(patient: Patient, stop: int) -> None:
            if stop < len(TURNS_TO_SUMMARY):
                if not await fill_the_form(
                    session, rasa_urls, patient, deadline, slice(stop, None)
                ):
                    return
            result.resumed += 1
            patient.replies.clear()
            reply = await send_until_answered(session, rasa_urls, patient, CONFIRM, 0, deadline)
            result.saved_after += int(reply.outcome is Outcome.SAVED)

        await asyncio.gather(*(finish(patient, stop) for patient, stop in zip(everyone, stops)))
    rows = await asyncio.to_thread(stored_rows, database_url)
    ours = Counter(cid for cid, _ in rows if cid in {p.conversation_id for p in everyone})
    result.rows = sum(ours.values())
    result.doubled = sum(1 for count in ours.values() if count > 1)
    return result


async def widget_reply(rasa_url: str, origin: str, text: str, timeout: float = 60) -> str:
    """A widget patient's message over socket.io (as rasa-webchat sends it); the first reply."""
    client = socketio.AsyncClient(reconnection=False)
    confirmed: asyncio.Queue = asyncio.Queue()
    replies: asyncio.Queue = asyncio.Queue()
    client.on("session_confirm", confirmed.put_nowait)
    client.on("bot_uttered", replies.put_nowait)
    await client.connect(rasa_url, headers={"Origin": origin}, transports=["websocket"])
    try:
        await client.emit("session_request", {"session_id": None})
        await asyncio.wait_for(confirmed.get(), timeout=timeout)
        await client.emit("user_uttered", {"message": text})
        reply = await asyncio.wait_for(replies.get(), timeout=timeout)
        return reply.get("text", "") if isinstance(reply, dict) else ""
    finally:
        await client.disconnect()


async def redis_down(
    cluster: SoakCluster, patients: int, down_for: float, deadline: float
) -> DependencyResult:
    widget: list[bool] = []

    async def stop() -> None:
        await asyncio.to_thread(cluster.redis.stop)
        # socket.io shares its rooms through Redis (SOCKETIO_REDIS_URL): a reply must still come.
        try:
            text = await widget_reply(cluster.rasa_urls[0], cluster.web_origin, TURNS_TO_SUMMARY[0])
            widget.append(bool(text.strip()))
        except (asyncio.TimeoutError, socketio.exceptions.ConnectionError):
            widget.append(False)

    async def start() -> None:
        await asyncio.sleep(down_for)
        await asyncio.to_thread(cluster.redis.start)

    result = await while_down(
        "Redis (locks, rate limits, socket.io rooms)",
        cluster.rasa_urls,
        cluster.database_url,
        stop,
        start,
        patients,
        deadline,
    )
    result.widget_answered = bool(widget) and all(widget)
    return result


async def tracker_database_down(
    cluster: SoakCluster, patients: int, down_for: float, deadline: float
) -> DependencyResult:
    async def stop() -> None:
        await asyncio.to_thread(cluster.postgres.stop)

    async def start() -> None:
        await asyncio.sleep(down_for)
        await asyncio.to_thread(cluster.postgres.start)

    return await while_down(
        "PostgreSQL (conversations and requests)",
        cluster.rasa_urls,
        cluster.database_url,
        stop,
        start,
        patients,
        deadline,
    )


async def action_servers_down(
    cluster: SoakCluster, patients: int, down_for: float, deadline: float
) -> DependencyResult:
    async def stop() -> None:
        for server in cluster.action_servers:
            await asyncio.to_thread(cluster.kill, server)

    async def start() -> None:
        await asyncio.sleep(down_for)
        for server in cluster.action_servers:
            await asyncio.to_thread(cluster.start, server)

    return await while_down(
        "action servers", cluster.rasa_urls, cluster.database_url, stop, start, patients, deadline
    )


def can_mount() -> str | None:
    """Why a size-limited tmpfs cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root"
    return None


@contextlib.contextmanager
def size_limited_directory(megabytes: int = 4) -> Iterator[Path]:
    """A tmpfs of ``megabytes``: a real disk that fills up, without touching the machine's."""
    directory = Path(tempfile.mkdtemp(prefix="hsg-soak-small-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0777", "tmpfs", str(directory)],
        check=True,
        capture_output=True,
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)
        directory.rmdir()


def fill_disk(directory: Path) -> Path:
    """Writes a file until the disk is full; deleting it frees the disk again."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
                handle.flush()
    return filler


async def sqlite_disk_full(workdir: Path, patients: int, deadline: float) -> DependencyResult:
    """`make run`'s setup (one Rasa, SQLite) with the requests database on a disk that is full."""
    reason = can_mount()
    if reason:
        return DependencyResult("SQLite disk full", note=f"not run: {reason}")
    with size_limited_directory() as disk:
        database_url = f"sqlite:///{disk / 'appointments.db'}"
        with start_assistant(workdir / "sqlite-disk-full", database_url) as assistant:
            filler: list[Path] = []

            async def fill() -> None:
                filler.append(await asyncio.to_thread(fill_disk, disk))

            async def free() -> None:
                for path in filler:
                    path.unlink()

            result = await while_down(
                "SQLite disk full",
                [assistant.rasa_url],
                database_url,
                fill,
                free,
                patients,
                deadline,
            )
    result.note = "requests database on a full 4 MB tmpfs; conversations on another disk"
    return result


async def run_dependency_failures(
    cluster: SoakCluster,
    workdir: Path,
    patients: int = 20,
    down_for: float = 10,
    time_limit: float = 1200,
) -> list[DependencyResult]:
    """Each failure in turn, on the same servers; returns one result per dependency."""
    deadline = time.monotonic() + time_limit
    return [
        await redis_down(cluster, patients, down_for, deadline),
        await tracker_database_down(cluster, patients, down_for, deadline),
        await action_servers_down(cluster, patients, down_for, deadline),
        await sqlite_disk_full(workdir, patients, deadline),
    ]
