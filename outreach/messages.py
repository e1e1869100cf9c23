"""The texts of the plan, read from the domain (domain/checkins.yml), the one place they are written.

Each is the response's SMS (``channel: twilio``) variation with the clinic's details and the
appointment time filled in, and its buttons as numbered choices, exactly as the SMS channel
renders a bot message (channels/sms_text.py).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from channels.sms_text import render_reply
from clinic.settings import ClinicSettings
from outreach.plan import CHECKIN, CONFIRMATION, CYCLE_CHECK, PREPARATION

DOMAIN_FILE = Path(__file__).resolve().parent.parent / "domain" / "checkins.yml"
SMS_CHANNEL = "twilio"
RESPONSE_OF_KIND = {
    CONFIRMATION: "utter_outreach_confirmation",
    CYCLE_CHECK: "utter_outreach_cycle_check",
    PREPARATION: "utter_outreach_preparation",
    CHECKIN: "utter_outreach_checkin",
}


@lru_cache(maxsize=4)
def _responses(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["responses"]


def appointment_time_text(appointment_at: datetime, zone: tzinfo) -> str:
    """ "Tuesday, March 16 at 9:30 AM", in the clinic's zone."""
    local = appointment_at.astimezone(zone)
    hour = local.strftime("%I").lstrip("0")
    return f"{local:%A, %B} {local.day} at {hour}:{local:%M %p}"


def outreach_message(
    kind: str,
    appointment_at: datetime,
    zone: tzinfo,
    clinic: ClinicSettings,
    domain_file: Path = DOMAIN_FILE,
) -> dict[str, Any]:
    """The bot message of a text: ``{"text": ..., "buttons": [...]}``, placeholders filled."""
    variations = _responses(domain_file)[RESPONSE_OF_KIND[kind]]
    variation = next(entry for entry in variations if entry.get("channel") == SMS_CHANNEL)
    values = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "appointment_time": appointment_time_text(appointment_at, zone),
    }
    # The domain's own placeholder syntax is str.format's: {name}, and {{ }} for braces.
    return {
        "text": variation["text"].format(**values),
        "buttons": [
            {
                "title": button["title"].format(**values),
                "payload": button["payload"].format(**values),
            }
            for button in variation.get("buttons") or []
        ],
    }


def sms_body(message: dict[str, Any]) -> str:
    """The message as the patient's phone shows it: text, then the numbered choices."""
    return render_reply(message)
