"""Helpers for the staff area's tests: requests with chosen details, and fast password hashing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

from appointments import staff_accounts
from appointments.database import session_scope
from appointments.models import AppointmentRequest
from appointments.requests import AppointmentRequestDetails, save_appointment_request

PASSWORD = "correct horse battery staple"

BASE_DETAILS = AppointmentRequestDetails(
    full_name="Ana Ruiz",
    date_of_birth=date(1990, 3, 4),
    date_of_birth_raw="March 4th 1990",
    phone_e164="+12015550123",
    phone_raw="(201) 555-0123",
    email="ana.ruiz@example.org",
    email_raw="Ana.Ruiz@Example.org",
    last_period_start=date(2024, 5, 3),
    last_period_raw="May 3rd",
    suggested_window_start=date(2024, 5, 9),
    suggested_window_end=date(2024, 5, 14),
    preferred_times_raw="weekday mornings, ideally the 10th",
    preferred_dates=[date(2024, 5, 10)],
    possibly_pregnant="no",
    contrast_allergy="no",
    pelvic_infection="no",
    referring_doctor="Dr. Imogen Vasquez",
    contact_method="call",
)


def use_cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with production costs takes about half a second per hash; tests need many."""
    monkeypatch.setattr(
        staff_accounts,
        "password_hasher",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )


def _period_fields_for(received: date) -> dict[str, object]:
    """A last period that is neither late nor missing on ``received``, so only what a test sets
    flags the request (a period from 2024 would be late on any day a test runs)."""
    start = received - timedelta(days=3)
    return {
        "last_period_start": start,
        "suggested_window_start": received,
        "suggested_window_end": start + timedelta(days=11),
    }


def add_request(
    url: str,
    *,
    created_at: datetime | None = None,
    status: str = "new",
    channel: str = "web",
    conversation_id: str | None = None,
    **details: object,
) -> str:
    """Stores a request (BASE_DETAILS with ``details`` replaced) and returns its reference.

    With ``created_at`` the row is back-dated, and its attention flag set as it would have been
    on that day; without, the last period (unless given) is a recent one.
    """
    if created_at is None and not any(name.startswith("last_period") for name in details):
        details = {**_period_fields_for(date.today()), **details}
    request = replace(BASE_DETAILS, **details)
    reference = save_appointment_request(
        request,
        conversation_id=conversation_id or f"conversation-{uuid.uuid4().hex[:8]}",
        channel=channel,
        idempotency_key=uuid.uuid4().hex,
        url=url,
    )
    values: dict[str, object] = {"status": status}
    if created_at is not None:
        values["created_at"] = created_at
        values["needs_attention"] = request.needs_attention(
            created_at.astimezone(timezone.utc).date()
        )
    with session_scope(url) as session:
        session.execute(
            update(AppointmentRequest)
            .where(AppointmentRequest.reference == reference)
            .values(**values)
        )
    return reference
