"""`make bench`: understanding, speed and cost of the assistant; writes benchmarks/RESULTS.md.

A benchmark, not a test: it reports figures and never fails on them. It trains and starts its
own servers (SQLite in a temporary directory), so `make run` can keep running. Where
TEST_DATABASE_URL and TEST_REDIS_URL are reachable it also measures two Rasa servers sharing
PostgreSQL and Redis (endpoints.production.yml).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests
import yaml

from benchmarks import encoder as encoder_bench
from benchmarks.compare_pipelines import rasa_init_pipeline
from benchmarks.latency import PACES, markdown_table, run_load
from benchmarks.understanding import evaluate_all
from benchmarks.understanding import markdown_table as understanding_table
from scripts.assistant_servers import (
    REPO_ROOT,
    TEST_TWILIO_AUTH_TOKEN,
    start_assistant,
    start_scaled_out,
)

RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
PLOT = REPO_ROOT / "benchmarks" / "latency.png"
# Patient pace at one conversation is the back-to-back figure with pauses: not worth measuring.
PATIENT_PACE_CONCURRENCY = (10, 50)


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


@contextmanager
def peak_memory(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """Samples resident memory twice a second while the block runs; yields the peaks."""
    peaks = {name: 0.0 for name in pids}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for name, pid in pids.items():
                peaks[name] = max(peaks[name], resident_megabytes(pid))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        done.set()
        sampler.join()


def train_project_model(workdir: Path) -> tuple[Path, float, float]:
    """Trains config.yml from scratch: the model, seconds, and the trainer's peak memory (MB)."""
    started = time.monotonic()
    subprocess.run(
        # --force: Rasa would otherwise reuse components from its training cache (.rasa/).
        [str(Path(sys.executable).parent / "rasa"), "train", "--force", "--domain", "domain"]
        + ["--fixed-model-name", "bench", "--out", str(workdir)],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return workdir / "bench.tar.gz", seconds, peak_mb


def train_stock_model(workdir: Path) -> tuple[Path, float]:
    """Rasa's stock pipeline (what `rasa init` trains: DIET) with this project's dialogue.

    Same domain, data and policies as config.yml, so that serving both the same way compares
    the NLU pipelines; Rasa's policies differ only in TED, which would slow the stock side.
    """
    project = yaml.safe_load((REPO_ROOT / "config.yml").read_text())
    config = workdir / "stock-config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "recipe": "default.v1",
                "assistant_id": "stock-rasa",
                "language": "en",
                "pipeline": rasa_init_pipeline(),
                "policies": project["policies"],
            }
        )
    )
    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).parent / "rasa"), "train", "--force", "--config", str(config)]
        + ["--domain", "domain", "--fixed-model-name", "stock", "--out", str(workdir)],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return workdir / "stock.tar.gz", time.monotonic() - started


def comparison_table(
    stock: list[tuple[str, str, int, dict]], project: list[tuple[str, str, int, dict]]
) -> str:
    """FAQ turns of both servers side by side, with this project's latency over stock Rasa's."""
    ours = {(pace, level): result for kind, pace, level, result in project if kind == "faq"}
    lines = [
        "| pace | concurrent conversations | stock p50 ms | this p50 ms | p50 ratio | "
        "stock p95 ms | this p95 ms | p95 ratio | stock msg/s | this msg/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, pace, level, theirs in stock:
        mine = ours.get((pace, level))
        if mine is None:
            continue
        lines.append(
            f"| {pace} | {level} | {theirs['p50_ms']:.0f} | {mine['p50_ms']:.0f} | "
            f"{mine['p50_ms'] / theirs['p50_ms']:.2f} | {theirs['p95_ms']:.0f} | "
            f"{mine['p95_ms']:.0f} | {mine['p95_ms'] / theirs['p95_ms']:.2f} | "
            f"{theirs['messages_per_second']:.1f} | {mine['messages_per_second']:.1f} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def time_to_first_answer(rasa_url: str) -> float:
    started = time.perf_counter()
    requests.post(
        f"{rasa_url}/webhooks/rest/webhook",
        json={"sender": "bench-first", "message": "hi"},
        timeout=120,
    ).raise_for_status()
    return time.perf_counter() - started


def measure_speed(
    rasa_urls: list[str], concurrency: list[int], rounds: int, kinds: tuple[str, ...]
) -> list[tuple[str, str, int, dict]]:
    results = []
    for pace in PACES:
        for kind in kinds:
            for level in concurrency:
                if pace != "back to back" and level not in PATIENT_PACE_CONCURRENCY:
                    continue
                sms_token = TEST_TWILIO_AUTH_TOKEN if kind == "sms" else None
                result = asyncio.run(
                    run_load(
                        rasa_urls,
                        kind,
                        level,
                        rounds if pace == "back to back" else 1,
                        pace,
                        sms_token,
                    )
                )
                results.append((kind, pace, level, result))
                print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
    return results


def measure_scale_out(concurrency: list[int], rounds: int) -> list[tuple[str, str, int, dict]]:
    """FAQ turns spread over two Rasa servers sharing PostgreSQL and Redis, if both are here."""
    database_url, redis_url = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if not (database_url and redis_url):
        print("Two-server figures skipped: set TEST_DATABASE_URL and TEST_REDIS_URL", flush=True)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        with start_scaled_out(Path(tmp), database_url, redis_url) as cluster:
            results = []
            for level in concurrency:
                result = asyncio.run(run_load(cluster.rasa_urls, "faq", level, rounds))
                results.append(("faq, 2 Rasa servers", "back to back", level, result))
                print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
            return results


def plot(results: list[tuple[str, str, int, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    kinds = sorted({kind for kind, _, _, _ in results})
    # One colour per kind of turn in both panels.
    colours = {kind: f"C{index}" for index, kind in enumerate(kinds)}
    for axis, pace in zip(axes, PACES):
        for kind in kinds:
            rows = [(c, r) for k, p, c, r in results if k == kind and p == pace]
            if not rows:
                continue
            axis.plot(
                [c for c, _ in rows],
                [r["p95_ms"] for _, r in rows],
                marker="o",
                color=colours[kind],
                label=kind,
            )
        axis.set_title(f"p95 turn latency, {pace}")
        axis.set_xlabel("concurrent conversations")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0].set_ylabel("ms")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)


def cpu_description() -> str:
    """The CPU's name and which of the vector instructions the int8 encoder's speed hangs on it
    has: the int8 graph answered one question 5.4 times faster on a CPU with AVX-512 VNNI than on
    one with AVX2 alone, where fp32 was 2.7 times faster (README, "Speed and memory")."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "CPU unknown"
    # The first processor's fields: every core of these machines is the same.
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in reversed(lines))
    }
    name = fields.get("model name", "CPU unknown")
    flags = set(fields.get("flags", "").split())
    found = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if flag in flags]
    return f"{name} ({', '.join(found) or 'no AVX2'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    machine = (
        f"{platform.machine()}, {cpu_description()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}"
    )
    load_at_start = load_average()
    print("The sentence encoder: int8 against fp32, build and speed...", flush=True)
    encoder = encoder_bench.measure()
    print(encoder_bench.markdown_table(encoder), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("Training this project's model from scratch...", flush=True)
        model, training_seconds, training_peak_mb = train_project_model(workdir)
        print("Training Rasa's stock pipeline with this project's dialogue...", flush=True)
        stock_model, stock_seconds = train_stock_model(workdir)
        print("Scoring it and the two baselines on the held-out questions...", flush=True)
        understanding = evaluate_all(model, stock_model, stock_seconds)
        print(understanding_table(understanding), flush=True)

        print("Serving the stock model the same way...", flush=True)
        stock_servers = workdir / "stock-servers"
        with start_assistant(
            stock_servers, f"sqlite:///{stock_servers / 'appointments.db'}", model=stock_model
        ) as stock:
            time_to_first_answer(stock.rasa_url)
            stock_rasa_at_rest = resident_megabytes(stock.processes["rasa_server"].pid)
            stock_speed = measure_speed([stock.rasa_url], args.concurrency, args.rounds, ("faq",))

        started = time.perf_counter()
        servers = workdir / "servers"
        database_url = f"sqlite:///{servers / 'appointments.db'}"
        with start_assistant(servers, database_url, model=model) as assistant:
            up = time.perf_counter() - started
            first_answer = time_to_first_answer(assistant.rasa_url)
            pids = {name: process.pid for name, process in assistant.processes.items()}
            at_rest = {name: resident_megabytes(pid) for name, pid in pids.items()}
            with peak_memory(pids) as under_load:
                speed = measure_speed(
                    [assistant.rasa_url], args.concurrency, args.rounds, ("faq", "form", "sms")
                )
        model_megabytes = model.stat().st_size / 1e6
        speed += measure_scale_out([c for c in args.concurrency if c > 1], args.rounds)
    plot(speed)
    load_at_end = load_average()

    lines = [
        "# Benchmark results",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}, with "
        "`make bench`. One Rasa server and one action server on SQLite unless a row says otherwise. "
        f"Load average (1 / 5 / 15 min) at the start: {load_at_start}; at the end: {load_at_end}.",
        "",
        "## Understanding (held-out questions in tests/nlu, never trained on)",
        "",
        understanding_table(understanding),
        "",
        "## This pipeline beside stock Rasa, served the same way",
        "",
        "The same run, machine, load generator and FAQ questions: Rasa's stock pipeline (what "
        "`rasa init` trains: DIET), trained on this project's data with this project's domain and "
        "policies, served by stock Rasa 3.6 with the same channels, tracker store and action server; "
        "then this project's model. Ratio: this project's latency over stock Rasa's.",
        "",
        comparison_table(stock_speed, speed),
        "",
        "## The sentence encoder",
        "",
        encoder_bench.markdown_table(encoder),
        "",
        "## Speed",
        "",
        "Back to back: each conversation sends its next message as soon as it has a reply (a "
        "stress test). Patient pace: 2-6 s between messages, like a person typing. "
        "sms: FAQ questions through the Twilio webhook, signed as Twilio signs them.",
        "",
        markdown_table(speed),
        "",
        "![p95 turn latency](latency.png)",
        "",
        "## Cost",
        "",
        "| cost | value |",
        "|---|---|",
        f"| training from scratch (config.yml, NLU + dialogue) | {training_seconds:.0f} s, "
        f"peak {training_peak_mb:.0f} MB |",
        f"| model size on disk | {model_megabytes:.1f} MB |",
        f"| start to both servers listening | {up:.1f} s |",
        f"| first answer after start | {first_answer * 1000:.0f} ms |",
        f"| training Rasa's stock pipeline with the same dialogue (DIET, 100 epochs) | "
        f"{stock_seconds:.0f} s |",
        f"| resident memory at rest: Rasa server / action server | "
        f"{at_rest['rasa_server']:.0f} MB / {at_rest['action_server']:.0f} MB |",
        f"| resident memory at rest: stock Rasa server | {stock_rasa_at_rest:.0f} MB |",
        f"| peak resident memory under load: Rasa server / action server | "
        f"{under_load['rasa_server']:.0f} MB / {under_load['action_server']:.0f} MB |",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
