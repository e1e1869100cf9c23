"""Storing and reading appointment requests and SMS opt-outs: what the actions and web app call."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appointments import outbox
from appointments.database import session_scope
from appointments.models import AppointmentRequest, SmsOptOut, utc_now
from appointments.screening import (
    CONTACT_METHODS,
    SCREENING_ANSWERS,
    SCREENING_FIELDS,
    attention_reasons,
)

logger = logging.getLogger(__name__)

CHANNELS = frozenset({"web", "sms", "rest"})

REFERENCE_PREFIX = "HSG-"
REFERENCE_LENGTH = 6
# Read out over the phone and typed back: no 0/O, 1/I/L to confuse.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# 31**6 is about 900 million references, so even a second collision in a row is unheard of.
REFERENCE_ATTEMPTS = 5


@dataclass(frozen=True, kw_only=True)
class AppointmentRequestDetails:
    """What the patient told us, each parsed value next to the words it was parsed from."""

    full_name: str
    date_of_birth: date
    date_of_birth_raw: str
    phone_e164: str
    phone_raw: str
    possibly_pregnant: str
    contrast_allergy: str
    pelvic_infection: str
    contact_method: str
    email: str | None = None
    email_raw: str | None = None
    last_period_start: date | None = None
    last_period_raw: str = ""
    last_period_not_applicable: bool = False
    suggested_window_start: date | None = None
    suggested_window_end: date | None = None
    preferred_times_raw: str = ""
    preferred_dates: list[date] = field(default_factory=list)
    referring_doctor: str | None = None

    def __post_init__(self) -> None:
        # Checked here rather than left to NOT NULL: PostgreSQL's error would quote the whole
        # row, patient details included, into logs.
        for name in ("full_name", "date_of_birth_raw", "phone_e164", "phone_raw"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if not isinstance(self.date_of_birth, date):
            raise ValueError("date_of_birth must be a date")
        if not all(isinstance(preferred, date) for preferred in self.preferred_dates):
            raise ValueError("preferred_dates must be dates")
        # A misspelt answer ("Yes") would silently skip the attention flag, so refuse it.
        for name in SCREENING_FIELDS:
            if getattr(self, name) not in SCREENING_ANSWERS:
                raise ValueError(f"{name} must be one of {sorted(SCREENING_ANSWERS)}")
        if self.contact_method not in CONTACT_METHODS:
            raise ValueError(f"contact_method must be one of {sorted(CONTACT_METHODS)}")

    def attention_reasons(self, received_on: date) -> list[str]:
        """Why staff must check this request before booking it (appointments/screening.py).

        A date, because a period is late or not only by how long ago it started.
        """
        return attention_reasons(
            {name: getattr(self, name) for name in SCREENING_FIELDS},
            last_period_start=self.last_period_start,
            no_periods=self.last_period_not_applicable,
            received_on=received_on,
        )

    def needs_attention(self, received_on: date) -> bool:
        """True for a screening "yes" or "not sure", no periods, or a late period."""
        return bool(self.attention_reasons(received_on))


def new_reference() -> str:
    """A random reference such as "HSG-7KQ2XM" for the patient to quote."""
    return REFERENCE_PREFIX + "".join(
        secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH)
    )


def _new_row(
    details: AppointmentRequestDetails,
    *,
    reference: str,
    conversation_id: str,
    channel: str,
    idempotency_key: str,
) -> AppointmentRequest:
    # The attention flag is decided on the day the row says it was received, so that the staff
    # pages, which give the reasons from the stored row, agree with it.
    created_at = utc_now()
    return AppointmentRequest(
        reference=reference,
        created_at=created_at,
        idempotency_key=idempotency_key,
        conversation_id=conversation_id,
        channel=channel,
        full_name=details.full_name,
        date_of_birth=details.date_of_birth,
        date_of_birth_raw=details.date_of_birth_raw,
        phone_e164=details.phone_e164,
        phone_raw=details.phone_raw,
        email=details.email,
        email_raw=details.email_raw,
        last_period_start=details.last_period_start,
        last_period_raw=details.last_period_raw,
        last_period_not_applicable=details.last_period_not_applicable,
        suggested_window_start=details.suggested_window_start,
        suggested_window_end=details.suggested_window_end,
        preferred_times_raw=details.preferred_times_raw,
        preferred_dates=[preferred.isoformat() for preferred in details.preferred_dates],
        possibly_pregnant=details.possibly_pregnant,
        contrast_allergy=details.contrast_allergy,
        pelvic_infection=details.pelvic_infection,
        needs_attention=details.needs_attention(created_at.date()),
        referring_doctor=details.referring_doctor,
        contact_method=details.contact_method,
    )


def _reference_for_key(idempotency_key: str, url: str | None) -> str | None:
    with session_scope(url) as session:
        return session.execute(
            select(AppointmentRequest.reference).where(
                AppointmentRequest.idempotency_key == idempotency_key
            )
        ).scalar_one_or_none()


def _reference_taken(reference: str, url: str | None) -> bool:
    with session_scope(url) as session:
        matches = session.execute(
            select(func.count())
            .select_from(AppointmentRequest)
            .where(AppointmentRequest.reference == reference)
        ).scalar_one()
    return matches > 0


def save_appointment_request(
    details: AppointmentRequestDetails,
    *,
    conversation_id: str,
    channel: str,
    idempotency_key: str,
    url: str | None = None,
) -> str:
    """Stores the request once per ``idempotency_key`` and returns its reference.

    Calling again with the same key, even concurrently, returns the first call's reference.
    Database failures propagate as SQLAlchemy errors (OperationalError when unreachable).
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {sorted(CHANNELS)}, not {channel!r}")
    if not idempotency_key:
        raise ValueError("idempotency_key must not be empty")

    for _ in range(REFERENCE_ATTEMPTS):
        existing_reference = _reference_for_key(idempotency_key, url)
        if existing_reference is not None:
            logger.info(
                "Appointment request %s was already stored; not storing it again",
                existing_reference,
            )
            return existing_reference

        reference = new_reference()
        try:
            with session_scope(url) as session:
                row = _new_row(
                    details,
                    reference=reference,
                    conversation_id=conversation_id,
                    channel=channel,
                    idempotency_key=idempotency_key,
                )
                session.add(row)
                session.flush()
                row_id = row.id
        except IntegrityError:
            # Either a concurrent call with the same key stored its row first (the next pass
            # returns that row's reference), or the new reference was taken (draw another).
            lost_race = _reference_for_key(idempotency_key, url) is not None
            if lost_race or _reference_taken(reference, url):
                continue
            raise
        # The conversation id is left out: on SMS it is the patient's phone number.
        logger.info("Stored appointment request %s (id %s, channel %s)", reference, row_id, channel)
        return reference

    raise RuntimeError(f"no free appointment reference after {REFERENCE_ATTEMPTS} attempts")


def get_appointment_request(reference: str, url: str | None = None) -> AppointmentRequest | None:
    """The stored request with this reference (detached, all columns loaded), or None."""
    with session_scope(url) as session:
        return session.execute(
            select(AppointmentRequest).where(AppointmentRequest.reference == reference)
        ).scalar_one_or_none()


def count_appointment_requests(url: str | None = None) -> int:
    with session_scope(url) as session:
        return session.execute(select(func.count()).select_from(AppointmentRequest)).scalar_one()


def set_sms_opt_out(phone_e164: str, opted_out: bool, url: str | None = None) -> None:
    """Records STOP (``opted_out=True``) or START (``False``) from this number, and cancels its
    pending texts, or plans again those STOP cancelled that are still wanted."""
    try:
        with session_scope(url) as session:
            record = session.get(SmsOptOut, phone_e164)
            if record is None:
                session.add(
                    SmsOptOut(phone_e164=phone_e164, opted_out=opted_out, opted_out_at=utc_now())
                )
            else:
                record.opted_out = opted_out
                record.opted_out_at = utc_now()
            _follow_opt_out(session, phone_e164, opted_out)
    except IntegrityError:
        # The first message from a number raced another one; the row exists now, so update it.
        with session_scope(url) as session:
            record = session.execute(
                select(SmsOptOut).where(SmsOptOut.phone_e164 == phone_e164)
            ).scalar_one()
            record.opted_out = opted_out
            record.opted_out_at = utc_now()
            _follow_opt_out(session, phone_e164, opted_out)


def _follow_opt_out(session: Session, phone_e164: str, opted_out: bool) -> None:
    """The number's planned texts follow its STOP or START, in the same transaction."""
    if opted_out:
        outbox.cancel_pending_for_phone(session, phone_e164, outbox.OPTED_OUT_REASON, utc_now())
    else:
        outbox.replan_after_opt_in(session, phone_e164, utc_now())


def is_sms_opted_out(phone_e164: str, url: str | None = None) -> bool:
    with session_scope(url) as session:
        opted_out = session.execute(
            select(SmsOptOut.opted_out).where(SmsOptOut.phone_e164 == phone_e164)
        ).scalar_one_or_none()
    return bool(opted_out)


def update_sms_delivery_status(
    sid: str, twilio_status: str, error_code: str = "", url: str | None = None
) -> str | None:
    """Twilio's status callback for one outbound text; returns its new state (None: unknown SID)."""
    with session_scope(url) as session:
        row = outbox.update_delivery_status(session, sid, twilio_status, error_code, utc_now())
        return None if row is None else row.state
