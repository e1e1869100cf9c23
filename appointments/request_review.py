"""Staff review of appointment requests: filtered lists, search, and the status workflow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.sql import Select

from appointments import audit, outbox
from appointments.database import session_scope
from appointments.models import (
    AppointmentRequest,
    OutboundMessage,
    RequestFlag,
    RequestStatusChange,
    utc_now,
)
from appointments.paging import Page, paginate
from appointments.requests import CHANNELS

STATUSES = ("new", "contacted", "scheduled", "completed", "declined", "cancelled")
STATUS_LABELS = {
    "new": "New",
    "contacted": "Contacted",
    "scheduled": "Scheduled",
    "completed": "Completed",
    "declined": "Declined",
    "cancelled": "Cancelled",
}
# Forward along the main path, or out to declined / cancelled from any open status.
NEXT_STATUSES = {
    "new": ("contacted", "declined", "cancelled"),
    "contacted": ("scheduled", "declined", "cancelled"),
    "scheduled": ("completed", "declined", "cancelled"),
    "completed": (),
    "declined": (),
    "cancelled": (),
}
MAX_NOTE_LENGTH = 2000
MAX_SEARCH_LENGTH = 100
# Fewer digits than this match far too many phone numbers to be a phone search.
MIN_PHONE_SEARCH_DIGITS = 3
REFERENCE_PATTERN = re.compile(r"^HSG-[0-9A-Z]{6}$")
# Date filters outside these are typing mistakes; near date.min and date.max they would also
# overflow when turned into the clinic's day boundaries.
EARLIEST_FILTER_DATE = date(2000, 1, 1)
LATEST_FILTER_DATE = date(2999, 12, 31)


@dataclass(frozen=True)
class RequestFilters:
    """What the staff list shows. Dates are whole days in ``zone`` (the clinic's), inclusive."""

    status: str | None = None
    channel: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    needs_attention: bool = False
    # Only requests with a flag staff have not cleared (appointments/outbox.py).
    flagged: bool = False
    search: str | None = None
    zone: tzinfo = timezone.utc

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {sorted(CHANNELS)}")
        for day in (self.created_from, self.created_to):
            if day is not None and not EARLIEST_FILTER_DATE <= day <= LATEST_FILTER_DATE:
                raise ValueError(
                    f"dates must be between {EARLIEST_FILTER_DATE} and {LATEST_FILTER_DATE}"
                )


class StatusChangeError(Exception):
    """The change was not made; the message is safe to show to staff."""


class RequestNotFoundError(StatusChangeError):
    pass


class StaleStatusError(StatusChangeError):
    """Someone else changed the status since the form was shown."""


def _start_of_day(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(timezone.utc)


def _search_clause(term: str):
    term = term.strip()[:MAX_SEARCH_LENGTH]
    clauses = [
        func.lower(AppointmentRequest.full_name).contains(term.lower(), autoescape=True),
        AppointmentRequest.reference.contains(term.upper(), autoescape=True),
    ]
    digits = re.sub(r"\D", "", term)
    if len(digits) >= MIN_PHONE_SEARCH_DIGITS:
        # Stored numbers are E.164 digits, so "(201) 555-0123" finds "+12015550123".
        clauses.append(AppointmentRequest.phone_e164.contains(digits, autoescape=True))
    return or_(*clauses)


def _filtered(statement: Select, filters: RequestFilters) -> Select:
    if filters.status:
        statement = statement.where(AppointmentRequest.status == filters.status)
    if filters.channel:
        statement = statement.where(AppointmentRequest.channel == filters.channel)
    if filters.created_from:
        statement = statement.where(
            AppointmentRequest.created_at >= _start_of_day(filters.created_from, filters.zone)
        )
    if filters.created_to:
        end = _start_of_day(filters.created_to + timedelta(days=1), filters.zone)
        statement = statement.where(AppointmentRequest.created_at < end)
    if filters.needs_attention:
        statement = statement.where(AppointmentRequest.needs_attention.is_(True))
    if filters.flagged:
        statement = statement.where(
            AppointmentRequest.id.in_(
                select(RequestFlag.request_id).where(RequestFlag.cleared_at.is_(None))
            )
        )
    if filters.search and filters.search.strip():
        statement = statement.where(_search_clause(filters.search))
    return statement.order_by(AppointmentRequest.created_at.desc(), AppointmentRequest.id.desc())


def list_requests(
    filters: RequestFilters, page: int = 1, per_page: int = 25, url: str | None = None
) -> Page[AppointmentRequest]:
    """Newest first."""
    with session_scope(url) as session:
        return paginate(session, _filtered(select(AppointmentRequest), filters), page, per_page)


def requests_for_export(
    filters: RequestFilters, url: str | None = None
) -> list[AppointmentRequest]:
    """Every request the filters select (not only one page), newest first."""
    with session_scope(url) as session:
        return list(session.execute(_filtered(select(AppointmentRequest), filters)).scalars())


def count_new_requests(url: str | None = None) -> int:
    with session_scope(url) as session:
        return session.execute(
            select(func.count())
            .select_from(AppointmentRequest)
            .where(AppointmentRequest.status == "new")
        ).scalar_one()


def count_flagged_requests(url: str | None = None) -> int:
    """Requests with a flag not yet cleared: the staff navigation shows it."""
    with session_scope(url) as session:
        return outbox.count_flagged_requests(session)


def texts_and_flags(
    request_id: int, url: str | None = None
) -> tuple[list[OutboundMessage], list[RequestFlag]]:
    """The request's planned texts (newest appointment first) and its open flags."""
    with session_scope(url) as session:
        return outbox.messages_of(session, request_id), outbox.open_flags(session, request_id)


def clear_flags(reference: str, staff_username: str, url: str | None = None) -> int:
    """Clears the request's open flags (staff have dealt with them); audited."""
    with session_scope(url) as session:
        request = outbox.request_by_reference(session, reference)
        if request is None:
            raise RequestNotFoundError(f"There is no request {reference}.")
        count = outbox.clear_flags(session, request.id, staff_username, utc_now())
        audit.add_audit_event(
            session,
            action=audit.CLEAR_FLAGS,
            staff_username=staff_username,
            request_reference=reference,
            detail=f"{count} flag(s) cleared",
        )
        return count


def status_history(request_id: int, url: str | None = None) -> list[RequestStatusChange]:
    """Oldest first, as the request went through them."""
    with session_scope(url) as session:
        return list(
            session.execute(
                select(RequestStatusChange)
                .where(RequestStatusChange.request_id == request_id)
                .order_by(RequestStatusChange.changed_at, RequestStatusChange.id)
            ).scalars()
        )


# Planned texts are (kind, due, useful until), from outreach.plan.plan_messages.
PlannedTexts = Sequence[tuple[str, datetime, datetime]]
TEXT_CONTACT_METHOD = "text"
ENDED_REASONS = {
    "completed": "Cancelled: the request was marked completed.",
    "declined": "Cancelled: the request was declined.",
    "cancelled": "Cancelled: the appointment was cancelled.",
}
RESCHEDULED_REASON = "Cancelled: the appointment was rescheduled."


def _set_appointment(
    session,
    request_id: int,
    appointment_at: datetime,
    planned: PlannedTexts,
    now: datetime,
) -> int:
    """New appointment time and version; the old version's pending texts give way to the new plan.

    Returns how many texts were planned (none unless the patient asked to be texted).
    """
    request = session.get(AppointmentRequest, request_id)
    request.appointment_at = appointment_at
    request.appointment_version = (request.appointment_version or 0) + 1
    session.flush()
    outbox.cancel_pending(session, request_id, RESCHEDULED_REASON, now)
    if request.contact_method != TEXT_CONTACT_METHOD:
        return 0
    return len(outbox.plan(session, request, planned, now))


def change_status(
    reference: str,
    *,
    to_status: str,
    expected_status: str,
    note: str,
    staff_username: str,
    appointment_at: datetime | None = None,
    planned: PlannedTexts = (),
    url: str | None = None,
) -> RequestStatusChange:
    """Moves a request one step along the workflow, with its history entry and audit event.

    ``expected_status`` is the status the member of staff saw: if it has changed since, nothing
    is changed and StaleStatusError says so, rather than silently overwriting a colleague's step.
    Scheduling needs ``appointment_at`` (aware) and plans ``planned``; ending a request cancels
    its texts not yet sent.
    """
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise StatusChangeError(f"The note can have at most {MAX_NOTE_LENGTH} characters.")
    if to_status not in NEXT_STATUSES.get(expected_status, ()):
        raise StatusChangeError(
            f"A request that is {expected_status} cannot be marked {to_status}."
        )
    if to_status == "scheduled" and appointment_at is None:
        raise StatusChangeError("Enter the appointment's date and time to schedule it.")
    with session_scope(url) as session:
        request_id = session.execute(
            select(AppointmentRequest.id).where(AppointmentRequest.reference == reference)
        ).scalar_one_or_none()
        if request_id is None:
            raise RequestNotFoundError(f"There is no request {reference}.")
        # Compare-and-set in one statement: of two concurrent changes only one matches a row.
        changed = session.execute(
            update(AppointmentRequest)
            .where(
                AppointmentRequest.id == request_id,
                AppointmentRequest.status == expected_status,
            )
            .values(status=to_status)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            raise StaleStatusError(
                "Someone else changed this request's status in the meantime: "
                "please check its current status and history."
            )
        change = RequestStatusChange(
            request_id=request_id,
            from_status=expected_status,
            to_status=to_status,
            note=note,
            staff_username=staff_username,
            changed_at=utc_now(),
        )
        session.add(change)
        now = utc_now()
        texts = ""
        if to_status == "scheduled":
            count = _set_appointment(session, request_id, appointment_at, planned, now)
            texts = f"; {count} texts planned" if count else ""
        elif to_status in ENDED_REASONS:
            count = outbox.cancel_pending(
                session,
                request_id,
                ENDED_REASONS[to_status],
                now,
                keep_kinds=outbox.KEPT_WHEN_ENDED.get(to_status, ()),
            )
            texts = f"; {count} texts cancelled" if count else ""
        audit.add_audit_event(
            session,
            action=audit.CHANGE_STATUS,
            staff_username=staff_username,
            request_reference=reference,
            detail=f"{expected_status} -> {to_status}" + (" (with a note)" if note else "") + texts,
        )
        session.flush()
        return change


def reschedule(
    reference: str,
    *,
    appointment_at: datetime,
    expected_version: int,
    planned: PlannedTexts,
    staff_username: str,
    url: str | None = None,
) -> int:
    """Moves a scheduled appointment: pending texts are cancelled and the new ones planned.

    ``expected_version`` is the appointment version the member of staff saw (compare-and-set,
    as for statuses). Returns how many texts were planned.
    """
    with session_scope(url) as session:
        request = session.execute(
            select(AppointmentRequest).where(AppointmentRequest.reference == reference)
        ).scalar_one_or_none()
        if request is None:
            raise RequestNotFoundError(f"There is no request {reference}.")
        if request.status != "scheduled":
            raise StatusChangeError("Only a scheduled appointment can be rescheduled.")
        changed = session.execute(
            update(AppointmentRequest)
            .where(
                AppointmentRequest.id == request.id,
                AppointmentRequest.appointment_version == expected_version,
            )
            .values(appointment_version=expected_version)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            raise StaleStatusError(
                "Someone else changed this appointment in the meantime: please check it."
            )
        count = _set_appointment(session, request.id, appointment_at, planned, utc_now())
        audit.add_audit_event(
            session,
            action=audit.RESCHEDULE,
            staff_username=staff_username,
            request_reference=reference,
            detail=f"appointment moved; {count} texts planned",
        )
        return count
