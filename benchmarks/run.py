"""`make bench`: latency, throughput and memory of the real servers; writes benchmarks/RESULTS.md.

A benchmark, not a test: it reports figures and never fails on them. It starts its own Rasa
server and action server (SQLite in a temporary directory), so `make run` can keep running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.latency import markdown_table, run_load
from scripts.assistant_servers import MODEL, REPO_ROOT, start_assistant

RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
PLOT = REPO_ROOT / "benchmarks" / "latency.png"


def resident_megabytes(pid: int) -> float:
    """Resident memory of a process and its children (the action server forks none; Rasa may)."""
    total_kb = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def time_to_first_answer(rasa_url: str) -> float:
    started = time.perf_counter()
    requests.post(
        f"{rasa_url}/webhooks/rest/webhook",
        json={"sender": "bench-first", "message": "hi"},
        timeout=120,
    ).raise_for_status()
    return time.perf_counter() - started


def plot(results: list[tuple[str, int, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for kind in ("faq", "form"):
        rows = [(c, r) for k, c, r in results if k == kind]
        axis.plot(
            [c for c, _ in rows], [r["p50_ms"] for _, r in rows], marker="o", label=f"{kind} p50"
        )
        axis.plot(
            [c for c, _ in rows],
            [r["p95_ms"] for _, r in rows],
            marker="s",
            linestyle="--",
            label=f"{kind} p95",
        )
    axis.set_xlabel("concurrent conversations")
    axis.set_ylabel("turn latency (ms)")
    axis.set_xscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        with start_assistant(workdir, f"sqlite:///{workdir / 'appointments.db'}") as assistant:
            up = time.perf_counter() - started
            first_answer = time_to_first_answer(assistant.rasa_url)
            rasa_pid = assistant.processes["rasa_server"].pid
            action_pid = assistant.processes["action_server"].pid
            memory = {"at rest": (resident_megabytes(rasa_pid), resident_megabytes(action_pid))}
            results = []
            for kind in ("faq", "form"):
                for concurrency in args.concurrency:
                    result = asyncio.run(
                        run_load(assistant.rasa_url, kind, concurrency, args.rounds)
                    )
                    results.append((kind, concurrency, result))
                    print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
            memory["after load"] = (resident_megabytes(rasa_pid), resident_megabytes(action_pid))
    plot(results)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}, with `make bench`",
        "(Rasa server + action server over the REST channel, SQLite, one process each).",
        "",
        markdown_table(results),
        "",
        "![turn latency](latency.png)",
        "",
        "| cost | value |",
        "|---|---|",
        f"| model size on disk | {MODEL.stat().st_size / 1e6:.1f} MB |",
        f"| servers started (both listening) | {up:.1f} s |",
        f"| first answer after start | {first_answer * 1000:.0f} ms |",
    ]
    for moment, (rasa_mb, action_mb) in memory.items():
        lines.append(
            f"| resident memory {moment}: Rasa server / action server | {rasa_mb:.0f} MB / {action_mb:.0f} MB |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
