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
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

logger = logging.getLogger(__name__)

# Environment variable, default, maximum length (characters), per setting.
SETTINGS = {
    "name": ("CLINIC_NAME", "Neighborhood Radiology Services", 50),
    "phone": ("CLINIC_PHONE", "800-220-2220", 20),
    "hours": ("CLINIC_HOURS", "", 60),
    "address": ("CLINIC_ADDRESS", "", 90),
    "callback_promise": ("CLINIC_CALLBACK_PROMISE", "", 40),
}

# The clinic's time zone (IANA name): staff pages show times in it, appointments are entered in it,
# and the text reminders keep its quiet hours. Not a text detail, so kept apart from SETTINGS.
TIMEZONE_SETTING = ("CLINIC_TIMEZONE", "UTC", 64)


class ClinicSettingsError(ValueError):
    """A clinic detail is longer than the answers have room for."""


@dataclass(frozen=True)
class ClinicSettings:
    name: str
    phone: str
    hours: str
    address: str
    callback_promise: str

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
