"""The takeover's messages to the patient, from the domain (domain/handoff.yml), as Rasa renders them.

The staff inbox sends them as bot events through Rasa's HTTP API, which sends a bot event's
text as given: so they are filled in here, with the channel's own variation where the domain
has one and the clinic's details from clinic/settings.py, the way Rasa fills a response.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from clinic.settings import load_clinic_settings

DOMAIN_DIR = Path(__file__).resolve().parent.parent / "domain"
STAFF_JOINED = "utter_staff_joined"
ASSISTANT_BACK = "utter_assistant_back"
STAFF_STEPPED_AWAY = "utter_staff_stepped_away"
# The existing escalation answer, for a warning sign reported while a person holds the chat.
WARNING_SIGNS = "utter_warning_signs"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=1)
def _responses() -> dict[str, list[dict]]:
    responses: dict[str, list[dict]] = {}
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        responses.update((yaml.safe_load(path.read_text()) or {}).get("responses") or {})
    return responses


def render(response: str, channel: str) -> str:
    """The response's text for ``channel`` ("socketio", "twilio"), clinic details filled in."""
    variations = _responses()[response]
    chosen = next(
        (entry for entry in variations if entry.get("channel") == channel),
        next(entry for entry in variations if not entry.get("channel")),
    )
    clinic = load_clinic_settings()
    values = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "clinic_hours_sentence": clinic.hours_sentence,
        "clinic_address_sentence": clinic.address_sentence,
    }
    text = _PLACEHOLDER.sub(lambda match: values[match.group(1)], chosen["text"])
    # While a person holds the chat the assistant does not answer "MORE": not offered then.
    lines = [line for line in text.strip().splitlines() if not line.startswith("Reply MORE")]
    return "\n".join(lines)
