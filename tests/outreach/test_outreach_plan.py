"""The plan of texts and the sending rules, with a controlled clock and real time zones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from outreach.plan import (
    CHECKIN,
    CONFIRMATION,
    CYCLE_CHECK,
    MAX_SEND_ATTEMPTS,
    PREPARATION,
    PlannedMessage,
    decide,
    next_sending_time,
    plan_messages,
    retry_at,
)

NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def ny(*args: int) -> datetime:
    """A New York wall-clock time, as an aware datetime."""
    return datetime(*args, tzinfo=NEW_YORK)


def by_kind(messages: list[PlannedMessage]) -> dict[str, PlannedMessage]:
    return {message.kind: message for message in messages}


def test_the_plan_has_four_texts_at_their_local_times() -> None:
    appointment = ny(2026, 6, 18, 9, 30)
    now = ny(2026, 6, 1, 15, 0)
    plan = by_kind(plan_messages(appointment, NEW_YORK, now))

    assert list(plan) == [CONFIRMATION, CYCLE_CHECK, PREPARATION, CHECKIN]
    assert plan[CONFIRMATION].due_at == now
    assert plan[CYCLE_CHECK].due_at == ny(2026, 6, 15, 10, 0)
    assert plan[CYCLE_CHECK].useful_until == ny(2026, 6, 16, 21, 0)
    assert plan[PREPARATION].due_at == ny(2026, 6, 17, 12, 0)
    assert plan[PREPARATION].useful_until == ny(2026, 6, 18, 8, 30)
    assert plan[CHECKIN].due_at == ny(2026, 6, 19, 10, 0)
    # Stored in UTC: 10:00 EDT is 14:00 UTC.
    assert plan[CHECKIN].due_at.astimezone(UTC).hour == 14


def test_the_day_after_check_in_keeps_its_local_time_when_the_clocks_go_back() -> None:
    # 2026-11-01: EDT ends in New York. The test is the day before, the check-in the day of.
    plan = by_kind(plan_messages(ny(2026, 10, 31, 9, 0), NEW_YORK, ny(2026, 10, 20, 9, 0)))
    checkin = plan[CHECKIN].due_at
    assert checkin.astimezone(NEW_YORK).hour == 10
    assert checkin.astimezone(UTC) == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)  # EST, UTC-5
    # The same local hour the day before was 14:00 UTC (EDT, UTC-4).
    assert plan[PREPARATION].due_at.astimezone(UTC) == datetime(2026, 10, 30, 16, 0, tzinfo=UTC)


def test_the_cycle_check_keeps_its_local_time_when_the_clocks_go_forward() -> None:
    # 2027-03-14: EDT starts. The cycle check (3 days before) is in EST, the test in EDT.
    plan = by_kind(plan_messages(ny(2027, 3, 16, 9, 0), NEW_YORK, ny(2027, 3, 1, 9, 0)))
    assert plan[CYCLE_CHECK].due_at.astimezone(UTC) == datetime(2027, 3, 13, 15, 0, tzinfo=UTC)
    assert plan[CHECKIN].due_at.astimezone(UTC) == datetime(2027, 3, 17, 14, 0, tzinfo=UTC)


def test_a_night_falling_on_the_change_of_clocks_waits_for_8_local() -> None:
    # 01:30 on 2026-11-01 happens twice in New York; 8:00 that morning is EST.
    at_night = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert next_sending_time(at_night, NEW_YORK) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local_now", "expected"),
    [
        (ny(2026, 6, 10, 7, 59), ny(2026, 6, 10, 8, 0)),
        (ny(2026, 6, 10, 8, 0), ny(2026, 6, 10, 8, 0)),
        (ny(2026, 6, 10, 20, 59), ny(2026, 6, 10, 20, 59)),
        (ny(2026, 6, 10, 21, 0), ny(2026, 6, 11, 8, 0)),
        (ny(2026, 6, 10, 23, 30), ny(2026, 6, 11, 8, 0)),
    ],
)
def test_quiet_hours_are_21_to_8_in_the_clinic_zone(local_now, expected) -> None:
    assert next_sending_time(local_now.astimezone(UTC), NEW_YORK) == expected


def _message(kind: str = CHECKIN, due: datetime | None = None, useful: datetime | None = None):
    due = due or ny(2026, 6, 19, 10, 0)
    return PlannedMessage(kind, due, useful or due + timedelta(days=2))


def test_a_message_due_at_night_waits_for_the_morning() -> None:
    message = _message(due=ny(2026, 6, 19, 22, 0))
    decision = decide(
        message, now=ny(2026, 6, 19, 22, 5), zone=NEW_YORK, sent_times=[], opted_out=False
    )
    assert decision.action == "wait"
    assert decision.until == ny(2026, 6, 20, 8, 0)
    assert "2026-06-20 08:00" in decision.reason


def test_a_message_no_longer_useful_after_the_night_is_dropped_with_a_reason() -> None:
    # Scheduled at 22:00 for 8:30 the next morning: the preparation text would come too late.
    message = PlannedMessage(PREPARATION, ny(2026, 6, 17, 12, 0), ny(2026, 6, 18, 7, 30))
    decision = decide(
        message, now=ny(2026, 6, 17, 22, 0), zone=NEW_YORK, sent_times=[], opted_out=False
    )
    assert decision.action == "drop"
    assert "quiet hours" in decision.reason


def test_a_message_whose_time_has_passed_is_dropped() -> None:
    message = PlannedMessage(CYCLE_CHECK, ny(2026, 6, 15, 10, 0), ny(2026, 6, 16, 21, 0))
    decision = decide(
        message, now=ny(2026, 6, 17, 9, 0), zone=NEW_YORK, sent_times=[], opted_out=False
    )
    assert decision.action == "drop"


def test_one_text_a_day_the_second_waits_for_the_next_morning() -> None:
    sent_this_morning = [ny(2026, 6, 19, 9, 0).astimezone(UTC)]
    decision = decide(
        _message(),
        now=ny(2026, 6, 19, 10, 0),
        zone=NEW_YORK,
        sent_times=sent_this_morning,
        opted_out=False,
    )
    assert decision.action == "wait"
    assert decision.until == ny(2026, 6, 20, 8, 0)


def test_the_day_is_the_clinic_day_not_the_utc_day() -> None:
    # 20:30 in New York is 00:30 UTC the next day: still the same clinic day as 9:00.
    decision = decide(
        _message(due=ny(2026, 6, 19, 20, 30)),
        now=ny(2026, 6, 19, 20, 30),
        zone=NEW_YORK,
        sent_times=[ny(2026, 6, 19, 9, 0)],
        opted_out=False,
    )
    assert decision.action == "wait"
    assert decision.until == ny(2026, 6, 20, 8, 0)


def test_three_texts_a_week_the_fourth_waits_until_the_oldest_is_a_week_old() -> None:
    sent = [ny(2026, 6, 15, 9, 0), ny(2026, 6, 16, 9, 0), ny(2026, 6, 17, 9, 0)]
    decision = decide(
        _message(due=ny(2026, 6, 18, 10, 0), useful=ny(2026, 6, 30, 21, 0)),
        now=ny(2026, 6, 18, 10, 0),
        zone=NEW_YORK,
        sent_times=sent,
        opted_out=False,
    )
    assert decision.action == "wait"
    assert decision.until == ny(2026, 6, 22, 9, 0)


def test_the_caps_drop_a_message_they_would_delay_past_its_use() -> None:
    decision = decide(
        _message(due=ny(2026, 6, 19, 10, 0), useful=ny(2026, 6, 19, 21, 0)),
        now=ny(2026, 6, 19, 10, 0),
        zone=NEW_YORK,
        sent_times=[ny(2026, 6, 19, 8, 30)],
        opted_out=False,
    )
    assert decision.action == "drop"
    assert "one text a day" in decision.reason


def test_nothing_goes_to_an_opted_out_number() -> None:
    decision = decide(
        _message(), now=ny(2026, 6, 19, 10, 0), zone=NEW_YORK, sent_times=[], opted_out=True
    )
    assert decision.action == "cancel"
    assert "STOP" in decision.reason


def test_a_due_message_within_the_rules_is_sent() -> None:
    decision = decide(
        _message(),
        now=ny(2026, 6, 19, 10, 0),
        zone=NEW_YORK,
        sent_times=[ny(2026, 6, 17, 9)],
        opted_out=False,
    )
    assert decision.action == "send"


def test_a_message_not_due_yet_waits_for_its_time() -> None:
    decision = decide(
        _message(), now=ny(2026, 6, 18, 10, 0), zone=NEW_YORK, sent_times=[], opted_out=False
    )
    assert decision.action == "wait"
    assert decision.until == ny(2026, 6, 19, 10, 0)


def test_failed_sends_back_off_then_give_up() -> None:
    now = datetime(2026, 6, 19, 14, 0, tzinfo=UTC)
    delays = [retry_at(attempts, now) - now for attempts in range(1, MAX_SEND_ATTEMPTS)]
    assert delays == sorted(delays) and delays[0] == timedelta(minutes=1)
    assert retry_at(MAX_SEND_ATTEMPTS, now) is None


def test_rescheduling_plans_from_the_new_time() -> None:
    first = by_kind(plan_messages(ny(2026, 6, 18, 9, 30), NEW_YORK, ny(2026, 6, 1, 9)))
    moved = by_kind(plan_messages(ny(2026, 6, 25, 14, 0), NEW_YORK, ny(2026, 6, 10, 9)))
    assert moved[CYCLE_CHECK].due_at - first[CYCLE_CHECK].due_at == timedelta(days=7)
    assert moved[PREPARATION].useful_until == ny(2026, 6, 25, 13, 0)
