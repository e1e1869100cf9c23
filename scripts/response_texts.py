"""Every response text in the domain as a patient reads it: its reading grade and its SMS length.

`python -m scripts.response_texts` prints the reading grade of every response variation (the
README's table); tests/test_response_texts.py holds every one to grade 8 and every SMS
variation to one text.

The measure is textstat 0.7.3's ``flesch_kincaid_grade`` (syllables counted by pyphen), on the
text as it reaches the patient:

- clinic placeholders get the default clinic settings (the phone number, and the "please call"
  sentences an unset detail gives), other placeholders a typical value (``SAMPLE_VALUES``);
- a Markdown link counts as its label only (``[800-220-2220](tel:800-220-2220)`` is one number);
- each line is read as its own sentence: a line that ends without ``.``, ``!``, ``?`` or ``:``
  gets a full stop, as a reader pauses there (textstat would otherwise run the lines together);
- button titles are not measured: they are labels, not sentences.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import textstat
import yaml

from clinic.settings import SETTINGS, ClinicSettings, load_clinic_settings

DOMAIN_DIR = Path(__file__).resolve().parents[1] / "domain"
MAX_READING_GRADE = 8.0
DEFAULT_CHANNEL = "default"

# Typical values of the placeholders the actions fill (actions/forms.py, actions/submission.py).
SAMPLE_VALUES = {
    "phone_number": "(201) 555-0123",
    "window_start": "Monday, December 1, 2025",
    "window_end": "Saturday, December 6, 2025",
    "summary": "- Name: Ana Ruiz\n- Mobile: (201) 555-0123",
    "reference": "HSG-7KQ2XM",
    "field_label": "phone number",
    "days_since": "47",
    "next_staffed": "tomorrow at 8:00 AM",
    # outreach/messages.py appointment_time_text
    "appointment_time": "Tuesday, March 16 at 9:30 AM",
}
# The longest value each of those can take, for the SMS length check.
LONGEST_VALUES = {
    **SAMPLE_VALUES,
    "window_start": "Wednesday, September 30, 2026",
    "window_end": "Wednesday, September 30, 2026",
    "field_label": "answers to the health questions",
    "days_since": "90",
    "next_staffed": "on Wednesday at 12:30 PM",
    "appointment_time": "Wednesday, September 30 at 12:30 PM",
}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\([^)\s]+\)")


@dataclass(frozen=True)
class Variation:
    """One text of one response: the default, or a channel's own (socketio, twilio)."""

    response: str
    channel: str
    text: str
    buttons: tuple[dict, ...] = ()

    @property
    def label(self) -> str:
        return (
            self.response
            if self.channel == DEFAULT_CHANNEL
            else f"{self.response} ({self.channel})"
        )


def variations(domain_dir: Path = DOMAIN_DIR) -> Iterator[Variation]:
    """Every response variation with a text, in the order of the domain files."""
    for path in sorted(domain_dir.glob("*.yml")):
        responses = (yaml.safe_load(path.read_text()) or {}).get("responses") or {}
        for response, entries in responses.items():
            for entry in entries:
                if entry.get("text"):
                    yield Variation(
                        response=response,
                        channel=entry.get("channel", DEFAULT_CHANNEL),
                        text=entry["text"],
                        buttons=tuple(entry.get("buttons") or ()),
                    )


def default_clinic() -> ClinicSettings:
    """The settings a clinic gets without setting anything: the phone stands in for the rest."""
    return load_clinic_settings(environ={})


def longest_clinic() -> ClinicSettings:
    """A clinic that fills every detail to its maximum length (clinic/settings.py)."""
    longest = {
        "CLINIC_NAME": "Saint Bartholomew Women's Imaging and Radiology Ctr",
        "CLINIC_PHONE": "+1 (800) 220-2220 x9",
        "CLINIC_HOURS": "Monday to Friday 7:30am to 7pm, Saturdays 8am to 12:30pm",
        "CLINIC_ADDRESS": (
            "1234 Northwest Martin Luther King Jr Boulevard, Suite 2100, Springfield, OR 97477"
        ),
        "CLINIC_CALLBACK_PROMISE": "within one business day of your request",
    }
    for variable, _default, limit in SETTINGS.values():
        if variable in longest:
            longest[variable] = longest[variable].ljust(limit, "x")[:limit]
    # A structured detail: a valid value of its full length, not padded text.
    longest["CLINIC_STAFFED_HOURS"] = (
        "Mon-Thu 07:30-19:00, Fri 07:30-17:00,".ljust(
            SETTINGS["staffed_hours"][2] - len(" Sat 08:00-12:30"), " "
        )
        + " Sat 08:00-12:30"
    )
    return load_clinic_settings(environ=longest)


def filled(text: str, clinic: ClinicSettings, values: Mapping[str, str] = SAMPLE_VALUES) -> str:
    """``text`` with its placeholders filled as the patient would see them."""
    known = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "clinic_hours_sentence": clinic.hours_sentence,
        "clinic_address_sentence": clinic.address_sentence,
        "callback_sentence": clinic.callback_sentence,
        **values,
    }
    return _PLACEHOLDER.sub(lambda match: known[match.group(1)], text)


def readable_text(text: str, clinic: ClinicSettings | None = None) -> str:
    """The text as prose for the grade formula: placeholders filled, links as labels, lines as sentences."""
    text = _MARKDOWN_LINK.sub(r"\1", filled(text, clinic or default_clinic()))
    lines = [line.strip() for line in text.replace("**", "").splitlines() if line.strip()]
    return " ".join(line if line.endswith((".", "!", "?", ":")) else f"{line}." for line in lines)


def reading_grade(text: str, clinic: ClinicSettings | None = None) -> float:
    """Flesch-Kincaid grade (textstat 0.7.3) of a response text as the patient reads it."""
    return textstat.flesch_kincaid_grade(readable_text(text, clinic))


def grade_table(domain_dir: Path = DOMAIN_DIR) -> list[tuple[str, float]]:
    """(label, grade) for every response variation, hardest first."""
    grades = [
        (variation.label, reading_grade(variation.text)) for variation in variations(domain_dir)
    ]
    return sorted(grades, key=lambda row: (-row[1], row[0]))


def main() -> int:
    table = grade_table()
    grades = [grade for _, grade in table]
    print(
        f"{len(table)} response texts; mean grade {statistics.mean(grades):.1f}, "
        f"highest {max(grades):.1f}, {sum(g > MAX_READING_GRADE for g in grades)} above {MAX_READING_GRADE:g}"
    )
    print("\n| response | grade |\n|---|---|")
    for label, grade in table:
        print(f"| `{label}` | {grade:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
