"""Which texts a scheduled appointment gets and when, and the rules for sending one now.

Pure functions: the clock (``now``) and the clinic's zone are passed in, so tests control both.
Local times are built per calendar day in the clinic's zone, so a text planned for 10:00 the day
after the test is at 10:00 on that day also across a daylight-saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from appointments.outbox import CHECKIN_KIND as CHECKIN
from appointments.outbox import CONFIRMATION_KIND as CONFIRMATION
from appointments.outbox import CYCLE_CHECK_KIND as CYCLE_CHECK
from appointments.outbox import PREPARATION_KIND as PREPARATION

KINDS = (CONFIRMATION, CYCLE_CHECK, PREPARATION, CHECKIN)
KIND_LABELS = {
    CONFIRMATION: "Confirmation",
    CYCLE_CHECK: "Cycle and pregnancy check",
    PREPARATION: "Day-before preparation",
    CHECKIN: "Day-after check-in",
}

# Texts go out between 8:00 and 21:00 in the clinic's zone only.
SENDING_STARTS = time(8, 0)
SENDING_ENDS = time(21, 0)
MAX_PER_DAY = 1
MAX_PER_WEEK = 3
WEEK = timedelta(days=7)
# Local clock times of the dated texts: mid-morning, well inside the sending hours.
CYCLE_CHECK_DAYS_BEFORE = 3
CYCLE_CHECK_AT = time(10, 0)
PREPARATION_AT = time(12, 0)
CHECKIN_AT = time(10, 0)
# The preparation text is no use once the pain medicine (an hour before) is due.
PREPARATION_LEAD = timedelta(hours=1)
# The check-in asks about the day after; by the fourth day it would be a new conversation.
CHECKIN_USEFUL_DAYS = 3
# Retries of a send Twilio refused or that could not reach Twilio: 1, 4, 16, 64 minutes.
MAX_SEND_ATTEMPTS = 5
RETRY_BASE_MINUTES = 1
RETRY_FACTOR = 4


@dataclass(frozen=True)
class PlannedMessage:
    kind: str
    due_at: datetime
    useful_until: datetime


@dataclass(frozen=True)
class Decision:
    """What to do with a due text now: send it, wait until ``until``, drop it, or cancel it."""

    action: str  # "send", "wait", "drop", "cancel"
    until: datetime | None = None
    reason: str = ""


def local_at(day: date, at: time, zone: tzinfo) -> datetime:
    """``at`` o'clock on ``day`` in ``zone``, in UTC."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)


def plan_messages(appointment_at: datetime, zone: tzinfo, now: datetime) -> list[PlannedMessage]:
    """The four texts of an appointment at ``appointment_at`` (aware), scheduled at ``now``."""
    day = appointment_at.astimezone(zone).date()
    cycle_check_day = day - timedelta(days=CYCLE_CHECK_DAYS_BEFORE)
    return [
        PlannedMessage(CONFIRMATION, now, appointment_at),
        PlannedMessage(
            CYCLE_CHECK,
            local_at(cycle_check_day, CYCLE_CHECK_AT, zone),
            # "2-3 days before": after that, a late period can no longer move the slot in time.
            local_at(day - timedelta(days=2), SENDING_ENDS, zone),
        ),
        PlannedMessage(
            PREPARATION,
            local_at(day - timedelta(days=1), PREPARATION_AT, zone),
            appointment_at - PREPARATION_LEAD,
        ),
        PlannedMessage(
            CHECKIN,
            local_at(day + timedelta(days=1), CHECKIN_AT, zone),
            local_at(day + timedelta(days=CHECKIN_USEFUL_DAYS), SENDING_ENDS, zone),
        ),
    ]


def next_sending_time(moment: datetime, zone: tzinfo) -> datetime:
    """``moment`` if it falls within the sending hours, else the next 8:00 in ``zone``."""
    local = moment.astimezone(zone)
    if local.time() < SENDING_STARTS:
        return local_at(local.date(), SENDING_STARTS, zone)
    if local.time() >= SENDING_ENDS:
        return local_at(local.date() + timedelta(days=1), SENDING_STARTS, zone)
    return moment


def _after_caps(moment: datetime, zone: tzinfo, sent_times: list[datetime]) -> datetime:
    """The first sending time at or after ``moment`` that keeps within the day and week caps."""
    for _ in range(MAX_PER_WEEK + 3):
        moment = next_sending_time(moment, zone)
        day = moment.astimezone(zone).date()
        same_day = [sent for sent in sent_times if sent.astimezone(zone).date() == day]
        if len(same_day) >= MAX_PER_DAY:
            moment = local_at(day + timedelta(days=1), SENDING_STARTS, zone)
            continue
        in_week = sorted(sent for sent in sent_times if moment - WEEK < sent <= moment)
        if len(in_week) >= MAX_PER_WEEK:
            moment = in_week[-MAX_PER_WEEK] + WEEK
            continue
        return moment
    return moment


def decide(
    message: PlannedMessage,
    *,
    now: datetime,
    zone: tzinfo,
    sent_times: list[datetime],
    opted_out: bool,
) -> Decision:
    """What to do with ``message`` at ``now``, given the times of the automated texts already
    sent to the same number (``sent_times``) and whether that number opted out."""
    if opted_out:
        return Decision("cancel", reason="Cancelled: the patient replied STOP (opted out).")
    start = max(now, message.due_at)
    if start > message.useful_until:
        return Decision("drop", reason="Dropped: its time had passed before it could be sent.")
    if next_sending_time(start, zone) > message.useful_until:
        return Decision(
            "drop", reason="Dropped: after the quiet hours (21:00-8:00) it would be too late."
        )
    earliest = _after_caps(start, zone, sent_times)
    if earliest > message.useful_until:
        return Decision(
            "drop",
            reason="Dropped: the limit of one text a day and three a week left no time for it.",
        )
    if earliest > now:
        local = earliest.astimezone(zone)
        return Decision(
            "wait", until=earliest, reason=f"Waiting until {local:%Y-%m-%d %H:%M} (clinic time)."
        )
    return Decision("send")


def retry_at(attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed sends; None once it is time to give up."""
    if attempts >= MAX_SEND_ATTEMPTS:
        return None
    return now + timedelta(minutes=RETRY_BASE_MINUTES * RETRY_FACTOR ** (attempts - 1))
