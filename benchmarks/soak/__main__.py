"""`make soak`: runs the three scenarios on throwaway servers and writes benchmarks/SOAK.md.

Bounded in time (each scenario has its own limit) and in requests (the counts below); every
request goes to 127.0.0.1. Takes about 30-40 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.run import load_average
from benchmarks.soak.cluster import start_soak_cluster
from benchmarks.soak.confirmations import Faults, run_confirmations
from benchmarks.soak.dependencies import run_dependency_failures
from benchmarks.soak.fuzz import run_fuzz
from scripts.assistant_servers import REPO_ROOT

REPORT = REPO_ROOT / "benchmarks" / "SOAK.md"


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def verdict(passed: bool) -> str:
    return "**passed**" if passed else "**FAILED**"


def report(sections: list[tuple[str, bool, list[str]]], started: float, load_start: str) -> str:
    lines = [
        "# Soak and fault suite",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}, with "
        f"`make soak` ({(time.monotonic() - started) / 60:.0f} minutes). Two Rasa servers and two "
        "action servers on endpoints.production.yml, a throwaway PostgreSQL cluster and Redis "
        "of their own, and the web app. Load average (1 / 5 / 15 min) at the start: "
        f"{load_start}; at the end: {load_average()}.",
        "",
    ]
    for title, passed, body in sections:
        lines += [f"## {title}: {verdict(passed)}", ""]
        lines += [f"- {line}" for line in body]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dependency-patients", type=int, default=20)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    started, load_start = time.monotonic(), load_average()
    sections = []
    with tempfile.TemporaryDirectory(prefix="hsg-soak-") as tmp:
        with start_soak_cluster(Path(tmp)) as cluster:
            print(f"Fuzz: {args.messages} messages on every entry point...", flush=True)
            fuzz = asyncio.run(run_fuzz(cluster, messages=args.messages))
            print("\n".join(fuzz.lines()), flush=True)
            sections.append((f"{args.messages:,} fuzzed messages", fuzz.passed(), fuzz.lines()))

            print(f"Confirmations: {args.patients} patients under faults...", flush=True)
            confirmations = asyncio.run(
                run_confirmations(cluster, patients=args.patients, faults=Faults())
            )
            print("\n".join(confirmations.lines()), flush=True)
            sections.append(
                (
                    f"{args.patients:,} confirmations while PostgreSQL and a Rasa server fail",
                    confirmations.passed(),
                    confirmations.lines(),
                )
            )

            print("Dependency failures...", flush=True)
            failures = asyncio.run(
                run_dependency_failures(cluster, Path(tmp), patients=args.dependency_patients)
            )
            for failure in failures:
                print(failure.line(), flush=True)
            sections.append(
                (
                    "Dependency failures",
                    all(
                        failure.passed() or failure.note.startswith("not run")
                        for failure in failures
                    ),
                    [failure.line() for failure in failures],
                )
            )
    args.report.write_text(report(sections, started, load_start))
    print(f"Wrote {args.report}")
    return 0 if all(passed for _, passed, _ in sections) else 1


if __name__ == "__main__":
    raise SystemExit(main())
