"""The clinic's own details, in one place: every response and page reads them from here.

Each value comes from an environment variable with a documented default. Details the clinic
has not given (hours, address, call-back time) default to empty, and the assistant then
points patients to the phone line instead of inventing them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ClinicSettings:
    name: str
    phone: str
    hours: str
    address: str
    callback_promise: str

    @property
    def hours_sentence(self) -> str:
        if self.hours:
            return f"Our opening hours are {self.hours}."
        return f"I don't have the clinic's opening hours here; the front desk at {self.phone} can tell you."

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


def load_clinic_settings() -> ClinicSettings:
    """Reads the clinic settings from the environment (see README, "Configuration")."""
    return ClinicSettings(
        name=os.environ.get("CLINIC_NAME", "Neighborhood Radiology Services"),
        phone=os.environ.get("CLINIC_PHONE", "800-220-2220"),
        hours=os.environ.get("CLINIC_HOURS", ""),
        address=os.environ.get("CLINIC_ADDRESS", ""),
        callback_promise=os.environ.get("CLINIC_CALLBACK_PROMISE", ""),
    )
