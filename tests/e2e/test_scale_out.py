"""Two Rasa servers and two action servers sharing PostgreSQL and Redis (endpoints.production.yml).

Runs where TEST_DATABASE_URL and TEST_REDIS_URL point at reachable servers (.ci/run sets both);
skipped elsewhere, except under CI=1, where an unreachable server is a failure.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from appointments.requests import count_appointment_requests, get_appointment_request
from channels.conversation_ids import rest_conversation_id
from scripts.assistant_servers import (
    ScaledOutAssistant,
    new_sender,
    start_scaled_out,
)
from tests.e2e.test_appointment_request_e2e import REFERENCE_PATTERN


def reachable_servers() -> tuple[str, str]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    reason = None
    if not database_url or not redis_url:
        reason = "TEST_DATABASE_URL and TEST_REDIS_URL are not both set (.ci/run sets them)"
    else:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
            engine = create_engine(database_url, future=True, connect_args={"connect_timeout": 3})
            with engine.connect():
                pass
            engine.dispose()
        except Exception as error:  # noqa: BLE001 (any failure to connect means "not here")
            reason = f"PostgreSQL or Redis is not reachable ({type(error).__name__})"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"scale-out test cannot run in CI: {reason}")
        pytest.skip(f"scale-out test skipped: {reason}")
    return database_url, redis_url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledOutAssistant]:
    database_url, redis_url = reachable_servers()
    workdir = tmp_path_factory.mktemp("scale-out")
    with start_scaled_out(workdir, database_url, redis_url) as running:
        yield running


def say(cluster: ScaledOutAssistant, server: int, sender: str, message: str, expect: str) -> str:
    reply = cluster.reply_text(server, message, sender)
    assert expect.lower() in reply.lower(), (
        f"server {server}, after {message!r} expected {expect!r}, got:\n{reply}"
    )
    return reply


# The appointment request turn by turn, with a phrase each reply must contain.
REQUEST_TURNS = [
    ("/book_appointment", "a request, not a booked appointment"),
    ("/affirm", "full name"),
    ("Lena Okafor", "date of birth"),
    ("12/05/1991", "mobile number"),
    ("(201) 555-0147", "email"),
    ("skip", "last period"),
    ("no periods", "days and times"),
    ("monday morning", "could you be pregnant"),
    ("no", "iodine"),
    ("no", "infection"),
    ("no", "referred you"),
    ("skip", "contact you"),
    ("call me", "Here is your request"),
]


def stored_events(cluster: ScaledOutAssistant, sender: str) -> int:
    engine = create_engine(cluster.tracker_database_url, future=True)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM events WHERE sender_id = :sender"), {"sender": sender}
            ).scalar_one()
    finally:
        engine.dispose()


def test_turns_alternating_between_servers_keep_context_and_store_once(
    cluster: ScaledOutAssistant,
) -> None:
    sender = new_sender()
    before = count_appointment_requests(url=cluster.database_url)
    for turn, (message, expect) in enumerate(REQUEST_TURNS):
        say(cluster, turn % 2, sender, message, expect)

    # Both servers get the confirmation at the same moment: the Redis lock lets one handle
    # it first, and the other then sees the request already stored.
    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(
            pool.map(lambda server: cluster.reply_text(server, "/affirm", sender), [0, 1])
        )
    references = {
        match.group(0) for reply in replies for match in REFERENCE_PATTERN.finditer(reply)
    }
    assert len(references) == 1, replies

    assert count_appointment_requests(url=cluster.database_url) == before + 1
    row = get_appointment_request(references.pop(), url=cluster.database_url)
    assert (row.full_name, row.phone_e164, row.conversation_id) == (
        "Lena Okafor",
        "+12015550147",
        rest_conversation_id(sender),
    )
    assert stored_events(cluster, rest_conversation_id(sender)) > 2 * len(REQUEST_TURNS), (
        "events are in PostgreSQL"
    )


def test_a_question_asked_on_one_server_gets_its_detail_from_the_other(
    cluster: ScaledOutAssistant,
) -> None:
    sender = new_sender()
    say(cluster, 0, sender, "/book_appointment", "a request, not a booked appointment")
    # The consent question was asked by server 0; server 1 knows the answer belongs to it.
    say(cluster, 1, sender, "/affirm", "full name")
    say(cluster, 0, sender, "Priya Raman", "date of birth")
    say(cluster, 1, sender, "cancel", "nothing has been stored")


def test_stopping_one_server_mid_conversation_loses_nothing(cluster: ScaledOutAssistant) -> None:
    sender = new_sender()
    before = count_appointment_requests(url=cluster.database_url)
    half = 6
    for message, expect in REQUEST_TURNS[:half]:
        say(cluster, 0, sender, message, expect)

    cluster.stop_rasa_server(0)

    for message, expect in REQUEST_TURNS[half:]:
        say(cluster, 1, sender, message, expect)
    reply = say(cluster, 1, sender, "/affirm", "your reference is")
    reference = REFERENCE_PATTERN.search(reply).group(0)
    assert count_appointment_requests(url=cluster.database_url) == before + 1
    row = get_appointment_request(reference, url=cluster.database_url)
    assert (row.full_name, row.phone_e164) == ("Lena Okafor", "+12015550147")
