"""The fuzz scenario, short: 360 hostile messages and every malformed request, on the soak cluster.

`make soak` runs the long version (benchmarks/soak/fuzz.py); this one keeps its promises in
`make test`: no 5xx anywhere, every server still answering, no slot set from a forged payload,
and every message answered, refused on purpose or silent on purpose (an SMS STOP, say).
"""

from __future__ import annotations

import asyncio

from benchmarks.soak.fuzz import (
    CATEGORIES,
    FuzzResult,
    forged_payloads,
    forged_slot_names,
    form_slots,
    generate_messages,
    run_fuzz,
    sms_expectation,
)


def test_the_generator_is_the_same_for_a_seed_and_covers_every_category() -> None:
    first = generate_messages(200, seed=3)

    assert first == generate_messages(200, seed=3)
    assert first != generate_messages(200, seed=4)
    # Every category in each round of draws: a round is a little over 20 messages.
    assert {message.category for message in first[:30]} == set(CATEGORIES)
    assert {message.kind for message in first} == {"text", "json", "bytes"}
    assert all(b"\xff" in message.raw for message in first if message.kind == "bytes")
    assert max(len(message.text) for message in first) >= 10_000


def test_every_slot_of_the_request_form_is_forged() -> None:
    forged = {name for _, entities in forged_payloads() for name, _ in entities}

    assert set(form_slots()) <= forged
    assert {"requested_slot", "appointment_request_pending"} <= forged


def test_a_slot_set_to_a_forged_value_is_found_in_the_events() -> None:
    forged = [("full_name", "x"), ("phone", "+15555550100"), ("possibly_pregnant", "no")]
    events = [
        {"event": "slot", "name": "full_name", "value": "x"},
        {"event": "slot", "name": "phone_raw", "value": "+15555550100"},
        # A short value counts only in the slot it named: "no" answers many questions.
        {"event": "slot", "name": "contrast_allergy", "value": "no"},
        {"event": "user", "text": "x"},
    ]

    assert forged_slot_names(events, forged) == {"full_name", "phone_raw"}


def test_sms_stop_is_silent_and_start_answers_again() -> None:
    assert sms_expectation("Stop.", opted_out=False) == ("sms opt-out keyword", True)
    assert sms_expectation("does it hurt", opted_out=True) == ("sms from an opted-out number", True)
    assert sms_expectation("yes", opted_out=True) == (None, False)
    assert sms_expectation("yes", opted_out=False) == (None, False)


def test_fuzz_short(soak_cluster) -> None:
    result: FuzzResult = asyncio.run(run_fuzz(soak_cluster, messages=300, warm_up=60))
    summary = "\n".join(result.lines())
    print(summary)  # memory is reported, not asserted: 360 messages say little about growth

    assert sum(result.sent.values()) == 360
    assert not result.server_errors, summary
    assert all(result.all_answering_after.values()), summary
    assert result.trackers_read == result.forged_conversations > 0, summary
    assert not result.forged_slots, summary
    assert result.accounted() == 360, summary
    assert not result.unanswered, summary
    # A failed turn is answered with an apology (channels/failures.py): not a 5xx, still a failure.
    assert not result.apologies, summary
    assert result.transport_errors == 0, summary
    assert result.staff_signed_in, summary
    # And the rest of the scenario's promises (no template evaluated, no forged socket.io session).
    assert not result.problems(memory=False), summary
