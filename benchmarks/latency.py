"""Turn latency of the real servers, for FAQ and appointment-form turns and the SMS webhook.

`make bench` starts a fresh Rasa server and action server (SQLite) and runs this; it reports,
it does not fail on a number. Conversations run concurrently with aiohttp, one task each, at
two paces: back to back (each conversation sends its next message the moment it has a reply:
a stress test) and at patient pace (a pause of 2-6 s between messages, like someone typing).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from twilio.request_validator import RequestValidator

FAQ_QUESTIONS = [
    "does an hsg hurt?",
    "what is a hysterosalpingogram",
    "when in my cycle should i have the dye test",
    "can i eat before the procedure",
    "is spotting normal after the test",
    "how long does the exam take",
    "will my insurance cover it",
    "can my husband come with me",
]

# The appointment request, turn by turn (see tests/e2e/test_appointment_request_e2e.py).
FORM_TURNS = [
    "/book_appointment",
    "/affirm",
    "I'm Ana Ruiz, born 3/4/1990",
    "(201) 555-0123",
    "ana.ruiz@example.com",
    "no periods",
    "next tuesday afternoon",
    "no",
    "no",
    "no",
    "Dr. Patel",
    "text me",
]


PACES = {"back to back": (0.0, 0.0), "patient pace": (2.0, 6.0)}
# Unique fake sender numbers (555-01xx is reserved for fiction) for the SMS conversations.
SMS_SENDERS = (f"+1201555{n:04d}" for n in itertools.count(2000))


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    wall: float = 0.0

    def summary(self) -> dict:
        ordered = sorted(self.seconds)

        def percentile(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

        return {
            "turns": len(ordered),
            "p50_ms": percentile(50),
            "p95_ms": percentile(95),
            "p99_ms": percentile(99),
            "mean_ms": statistics.fmean(ordered) * 1000,
            "messages_per_second": len(ordered) / self.wall if self.wall else 0.0,
        }


async def conversation(
    session: aiohttp.ClientSession,
    urls: list[str],
    turns: list[str],
    timings: Timings,
    pause: tuple[float, float],
    sms_token: str | None = None,
) -> None:
    """One patient: REST posts, or Twilio-signed form posts when ``sms_token`` is given.

    With several servers' URLs, turns go round them, as behind a load balancer without stickiness.
    """
    sender = next(SMS_SENDERS) if sms_token else f"bench-{uuid.uuid4().hex[:12]}"
    pacing = random.Random(sender)
    for turn, text in enumerate(turns):
        url = urls[turn % len(urls)]
        if pause[1]:
            await asyncio.sleep(pacing.uniform(*pause))
        if sms_token:
            params = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": sender, "Body": text}
            signature = RequestValidator(sms_token).compute_signature(url, params)
            request = session.post(url, data=params, headers={"X-Twilio-Signature": signature})
        else:
            request = session.post(url, json={"sender": sender, "message": text})
        started = time.perf_counter()
        async with request as response:
            await response.read()
            response.raise_for_status()
        timings.seconds.append(time.perf_counter() - started)


async def run_load(
    rasa_urls: list[str],
    kind: str,
    concurrency: int,
    rounds: int,
    pace: str = "back to back",
    sms_token: str | None = None,
) -> dict:
    """``kind`` is faq, form or sms (FAQ questions through the Twilio webhook)."""
    channel = "twilio" if kind == "sms" else "rest"
    urls = [f"{rasa_url}/webhooks/{channel}/webhook" for rasa_url in rasa_urls]
    turns = FORM_TURNS if kind == "form" else FAQ_QUESTIONS
    timings = Timings()
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # One warm-up conversation through every turn, so that model loading and each turn's
        # first-call costs are not measured (make bench reports the first answer after a start on
        # its own). With only the first two turns warmed, one conversation's first rounds after a
        # start were measured at p50 40 ms where the rounds after them took 28-31 ms.
        await conversation(session, urls, turns, Timings(), (0.0, 0.0), sms_token)
        started = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(
                *(
                    conversation(session, urls, turns, timings, PACES[pace], sms_token)
                    for _ in range(concurrency)
                )
            )
        timings.wall = time.perf_counter() - started
    if kind == "form":
        # The first two turns (start, consent) are not form turns.
        per_conversation = len(FORM_TURNS)
        timings.seconds = [s for i, s in enumerate(timings.seconds) if i % per_conversation >= 2]
    return timings.summary()


def markdown_table(results: list[tuple[str, str, int, dict]]) -> str:
    lines = [
        "| turns | pace | concurrent conversations | turns measured | p50 ms | p95 ms | p99 ms | messages/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, pace, concurrency, result in results:
        lines.append(
            f"| {kind} | {pace} | {concurrency} | {result['turns']} | {result['p50_ms']:.0f} | "
            f"{result['p95_ms']:.0f} | {result['p99_ms']:.0f} | {result['messages_per_second']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rasa-url", default="http://localhost:5005")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pace", choices=PACES, default="back to back")
    args = parser.parse_args()
    results = []
    for kind in ("faq", "form"):
        for concurrency in args.concurrency:
            result = asyncio.run(
                run_load([args.rasa_url], kind, concurrency, args.rounds, args.pace)
            )
            results.append((kind, args.pace, concurrency, result))
            print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
