"""The screening answers, their labels, the contact methods and why a request needs attention.

One module, imported by the form (actions/), the data layer (appointments/requests.py), the staff
pages and the CSV export (web/staff/), so that a new answer or label cannot reach one and not the
others. Pure Python: no Rasa, no database.
"""

from __future__ import annotations

from datetime import date, timezone
from typing import Any

YES, NO, UNSURE = "yes", "no", "unsure"
SCREENING_ANSWERS = (YES, NO, UNSURE)
ANSWER_LABELS = {YES: "Yes", NO: "No", UNSURE: "Not sure"}

# (slot and column name, label), in the order the form asks them.
SCREENING_QUESTIONS = (
    ("possibly_pregnant", "Could be pregnant"),
    ("contrast_allergy", "Allergy or reaction to iodine / contrast dye"),
    ("pelvic_infection", "Pelvic infection now, or signs of one"),
)
SCREENING_FIELDS = tuple(field for field, _label in SCREENING_QUESTIONS)
FLAGGED_ANSWERS = frozenset({YES, UNSURE})

CONTACT_METHODS = ("text", "call", "email")

# A cycle is usually 21 to 35 days: a period that started longer ago than this is late, and a
# pregnancy has to be ruled out before an HSG (clinic article: the timing "ensures you're not
# pregnant"; facts.md pregnancy_concern).
LATE_PERIOD_DAYS = 35

NO_PERIODS_REASON = (
    "No periods (after menopause, on continuous hormonal birth control, or another reason): "
    "arrange a pregnancy check before booking"
)


def period_is_late(last_period_start: date | None, on: date) -> bool:
    """True when the next period should have started by ``on`` (more than 35 days on)."""
    return last_period_start is not None and (on - last_period_start).days > LATE_PERIOD_DAYS


def late_period_reason(last_period_start: date, on: date) -> str:
    days = (on - last_period_start).days
    return (
        f"Period late: the last one started {days} days before the request. The patient was "
        "asked to take a pregnancy test or call"
    )


def attention_reasons(
    answers: dict[str, str | None],
    *,
    last_period_start: date | None,
    no_periods: bool,
    received_on: date,
) -> list[str]:
    """Why staff must look at a request before booking it; empty when nothing needs it.

    ``answers`` maps each screening field to its answer. A "yes" or "not sure" to a screening
    question, no periods at all, or a late period: each needs a conversation (and the last two a
    pregnancy check) before a date is booked.
    """
    reasons = [
        f"{label}: {ANSWER_LABELS.get(answers.get(field) or '', answers.get(field))}"
        for field, label in SCREENING_QUESTIONS
        if answers.get(field) in FLAGGED_ANSWERS
    ]
    if no_periods:
        reasons.append(NO_PERIODS_REASON)
    elif period_is_late(last_period_start, received_on):
        reasons.append(late_period_reason(last_period_start, received_on))
    return reasons


def stored_request_reasons(request: Any) -> list[str]:
    """The reasons for a stored request (appointments.models.AppointmentRequest), from its columns.

    Received on the UTC date of ``created_at``, the date its needs_attention flag was set with.
    """
    return attention_reasons(
        {field: getattr(request, field) for field in SCREENING_FIELDS},
        last_period_start=request.last_period_start,
        no_periods=bool(request.last_period_not_applicable),
        received_on=request.created_at.astimezone(timezone.utc).date(),
    )
