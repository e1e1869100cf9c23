"""The clinic's own details, in one place: every response and page reads them from here.

Each value comes from an environment variable with a documented default. Details the clinic
has not given (hours, address, call-back time) default to empty, and the assistant then
points patients to the phone line instead of inventing them.

Each value has a maximum length, so that every SMS answer still fits in one text with the
longest details a clinic may set (tests/test_response_texts.py fills them all in).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

logger = logging.getLogger(__name__)

# Environment variable, default, maximum length (characters), per setting.
SETTINGS = {
    "name": ("CLINIC_NAME", "Neighborhood Radiology Services", 50),
    "phone": ("CLINIC_PHONE", "800-220-2220", 20),
    "hours": ("CLINIC_HOURS", "", 60),
    "address": ("CLINIC_ADDRESS", "", 90),
    "callback_promise": ("CLINIC_CALLBACK_PROMISE", "", 40),
    # When a member of staff can join a chat, e.g. "Mon-Fri 08:00-17:00, Sat 09:00-12:00";
    # empty: never (the hand-off then leaves a note for the team and gives the phone).
    "staffed_hours": ("CLINIC_STAFFED_HOURS", "", 60),
}
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FULL_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_STAFFED_PART = re.compile(
    r"^(?P<first>[A-Za-z]{3})(?:\s*-\s*(?P<last>[A-Za-z]{3}))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$"
)

# The clinic's time zone (IANA name): staff pages show times in it, appointments are entered in it,
# and the text reminders keep its quiet hours. Not a text detail, so kept apart from SETTINGS.
TIMEZONE_SETTING = ("CLINIC_TIMEZONE", "UTC", 64)


class ClinicSettingsError(ValueError):
    """A clinic detail is longer than the answers have room for, or cannot be read."""


@dataclass(frozen=True)
class StaffedPeriod:
    """One weekday's staffed time, in the clinic's time zone (weekday 0 is Monday)."""

    weekday: int
    start: time
    end: time


def _clock(text: str, variable: str) -> time:
    hours, _, minutes = text.partition(":")
    try:
        return time(int(hours), int(minutes))
    except ValueError:
        raise ClinicSettingsError(f"{variable}: {text!r} is not a time like 08:00") from None


def _day(text: str, variable: str) -> int:
    name = text[:1].upper() + text[1:].lower()
    if name not in DAY_NAMES:
        raise ClinicSettingsError(f"{variable}: {text!r} is not a day ({', '.join(DAY_NAMES)})")
    return DAY_NAMES.index(name)


def parse_staffed_hours(
    text: str, variable: str = "CLINIC_STAFFED_HOURS"
) -> tuple[StaffedPeriod, ...]:
    """ "Mon-Fri 08:00-17:00, Sat 09:00-12:00" as periods; empty text: none (never staffed)."""
    periods = []
    for part in filter(None, (piece.strip() for piece in re.split(r"[,;]", text))):
        match = _STAFFED_PART.match(part)
        if not match:
            raise ClinicSettingsError(
                f"{variable}: {part!r} is not like 'Mon-Fri 08:00-17:00' or 'Sat 09:00-12:00'"
            )
        first = _day(match["first"], variable)
        last = _day(match["last"], variable) if match["last"] else first
        start, end = _clock(match["start"], variable), _clock(match["end"], variable)
        if end <= start:
            raise ClinicSettingsError(f"{variable}: {part!r} ends before it starts")
        days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        periods.extend(StaffedPeriod(day, start, end) for day in days)
    return tuple(periods)


@dataclass(frozen=True)
class ClinicSettings:
    name: str
    phone: str
    hours: str
    address: str
    callback_promise: str
    timezone: str = "UTC"
    staffed_hours: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return zone_named(self.timezone)

    @property
    def staffed_periods(self) -> tuple[StaffedPeriod, ...]:
        return parse_staffed_hours(self.staffed_hours)

    def is_staffed(self, now: datetime) -> bool:
        """Whether a member of staff can join a chat at ``now`` (an aware datetime)."""
        local = now.astimezone(self.zone)
        return any(
            period.weekday == local.weekday() and period.start <= local.time() < period.end
            for period in self.staffed_periods
        )

    def next_staffed_start(self, now: datetime) -> datetime | None:
        """The next start of staffed hours after ``now``, in the clinic's time zone; None: never."""
        local = now.astimezone(self.zone)
        for days_ahead in range(8):
            day = (local + timedelta(days=days_ahead)).date()
            starts = sorted(
                datetime.combine(day, period.start, tzinfo=self.zone)
                for period in self.staffed_periods
                if period.weekday == day.weekday()
            )
            for start in starts:
                if start > local:
                    return start
        return None

    def next_staffed_phrase(self, now: datetime) -> str | None:
        """When the team reads messages next, as said to a patient: "tomorrow at 8:00 AM"."""
        start = self.next_staffed_start(now)
        if start is None:
            return None
        local_today = now.astimezone(self.zone).date()
        clock = start.strftime("%I:%M %p").lstrip("0")
        if start.date() == local_today:
            return f"today at {clock}"
        if start.date() == local_today + timedelta(days=1):
            return f"tomorrow at {clock}"
        return f"on {FULL_DAY_NAMES[start.weekday()]} at {clock}"

    def slot_values(self) -> dict[str, str]:
        """The conversation slots that let responses say the clinic's details without copying them."""
        return {
            "clinic_name": self.name,
            "clinic_phone": self.phone,
            "clinic_hours_sentence": self.hours_sentence,
            "clinic_address_sentence": self.address_sentence,
        }

    @property
    def hours_sentence(self) -> str:
        if self.hours:
            return f"Our opening hours are {self.hours}."
        return f"I don't have our opening hours here. Please call us at {self.phone} to ask."

    @property
    def address_sentence(self) -> str:
        if self.address:
            return f"We are at {self.address}."
        return f"For directions and parking, please call {self.phone}."

    @property
    def callback_sentence(self) -> str:
        if self.callback_promise:
            return f"Our team will contact you {self.callback_promise} to confirm a time."
        return f"Our team will contact you to confirm a time. If you have not heard from us, call {self.phone}."


def load_clinic_settings(environ: Mapping[str, str] | None = None) -> ClinicSettings:
    """Reads the clinic settings from the environment (see README, "Configuration").

    Raises ClinicSettingsError for a value over its maximum length: cutting an address or a
    phone number short would send patients to the wrong place.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for field, (variable, default, limit) in SETTINGS.items():
        value = environ.get(variable, default).strip()
        if len(value) > limit:
            raise ClinicSettingsError(f"{variable} is {len(value)} characters; at most {limit} fit")
        values[field] = value
    variable, default, limit = TIMEZONE_SETTING
    values["timezone"] = (environ.get(variable) or default).strip()[:limit]
    # Read once here, so that a typo stops the server at start-up, not a patient's hand-off.
    parse_staffed_hours(values["staffed_hours"])
    return ClinicSettings(**values)


def clinic_timezone(environ: Mapping[str, str] | None = None) -> ZoneInfo:
    """The clinic's time zone (CLINIC_TIMEZONE), UTC with a warning when the name is unknown."""
    environ = os.environ if environ is None else environ
    variable, default, limit = TIMEZONE_SETTING
    name = (environ.get(variable) or default).strip()
    return zone_named(name[:limit])


def zone_named(name: str) -> ZoneInfo:
    """The zone called ``name``; UTC, with a warning, when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("Unknown time zone %r in CLINIC_TIMEZONE; using UTC", name)
        return ZoneInfo("UTC")
