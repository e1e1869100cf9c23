"""Every server `make run` starts listens on loopback only, read from the kernel's socket tables."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scripts.assistant_servers import REPO_ROOT, base_environment, free_port, require_model

TCP_LISTEN = "0A"


def listening_addresses(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids``."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != TCP_LISTEN or inode not in inodes:
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(packed if width == 16 else raw[::-1])
            found.append((str(address), int(hex_port, 16)))
    return found


def process_group(group: int) -> set[int]:
    """Every process in ``group`` (run.sh is started in a session of its own)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # state, ppid, pgrp
            pids.add(int(stat.parent.name))
    return pids


def test_every_server_of_make_run_listens_on_loopback_only(tmp_path: Path) -> None:
    require_model()
    ports = {"ACTION_SERVER_PORT": free_port(), "RASA_PORT": free_port(), "WEB_PORT": free_port()}
    env = base_environment()
    env.update({name: str(port) for name, port in ports.items()})
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'appointments.db'}")
    log = tmp_path / "run.log"
    process = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "run.sh")],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            listening = listening_addresses(process_group(process.pid))
            if set(ports.values()) <= {port for _, port in listening}:
                break
            if process.poll() is not None:
                pytest.fail(f"make run's servers exited:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        else:
            pytest.fail(f"not every server listened in time:\n{log.read_text()[-3000:]}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)

    assert listening
    assert all(ipaddress.ip_address(address).is_loopback for address, _ in listening), listening
