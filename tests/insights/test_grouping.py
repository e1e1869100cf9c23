"""The insights' grouping with the real sentence encoder: similar messages together, others apart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from insights.grouping import (
    Message,
    counts_per_week_and_channel,
    group_labels,
    group_messages,
    week_of,
)

COMPANION = [
    "can i bring my husband with me",
    "is my partner allowed in the room",
    "can my bf come w me",
]
COST = [
    "how much does it cost without insurance",
    "whats the price if im self pay",
    "how much do i pay no insurance",
]
PARKING = ["where do i park", "is there parking at the clinic"]
UNRELATED = ["my dog ate my homework", "asdf qwerty"]
MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_similar_messages_share_a_group_and_dissimilar_ones_do_not() -> None:
    texts = COMPANION + COST + PARKING + UNRELATED
    labels = group_labels(texts)
    companion, cost, parking = (
        labels[: len(COMPANION)],
        labels[len(COMPANION) : len(COMPANION) + len(COST)],
        labels[len(COMPANION) + len(COST) : len(COMPANION) + len(COST) + len(PARKING)],
    )
    unrelated = labels[-len(UNRELATED) :]
    for group in (companion, cost, parking):
        assert len(set(group)) == 1, labels
    assert len({companion[0], cost[0], parking[0], *unrelated}) == 3 + len(UNRELATED), labels


def test_groups_come_largest_first_named_by_a_member_with_their_counts() -> None:
    messages = [
        Message(text, "rephrase", "twilio" if n % 2 else "socketio", MONDAY + timedelta(hours=n))
        for n, text in enumerate(COST + PARKING + ["asdf qwerty"])
    ]
    groups = group_messages(messages)
    assert [group.count for group in groups] == [3, 2, 1]
    assert groups[0].label in COST and groups[1].label in PARKING
    assert sum(groups[0].channels.values()) == 3 and groups[0].kinds == {"rephrase": 3}


def test_counts_per_week_and_channel_use_the_clinic_time_zone() -> None:
    zone = ZoneInfo("America/New_York")
    # Monday 02:00 UTC is still Sunday (the week before) in New York.
    early = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)
    messages = [
        Message("a", "rephrase", "twilio", early),
        Message("b", "rephrase", "twilio", MONDAY),
        Message("c", "handoff", "socketio", MONDAY),
    ]
    weeks, channels, counts = counts_per_week_and_channel(messages, zone)
    assert weeks == ["2026-W49", "2026-W48"] and channels == ["socketio", "twilio"]
    assert counts == {
        ("2026-W48", "twilio"): 1,
        ("2026-W49", "twilio"): 1,
        ("2026-W49", "socketio"): 1,
    }
    assert week_of(early, timezone.utc) == "2026-W49"
