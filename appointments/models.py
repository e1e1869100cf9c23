"""Tables of the appointment store: patients' requests, SMS opt-outs and the staff area's records."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base
from sqlalchemy.types import TypeDecorator

# Fixed constraint names, so migrations name them the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Base = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A timestamp that always comes back as an aware UTC datetime.

    SQLite keeps no offset, so without this it would return naive values and PostgreSQL aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass an aware one, e.g. datetime.now(timezone.utc)")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class AppointmentRequest(Base):
    """One confirmed request for an appointment, waiting for staff to call the patient back."""

    __tablename__ = "appointment_requests"

    id = Column(Integer, primary_key=True)
    reference = Column(String(16), nullable=False, unique=True)
    # A retried confirmation carries the same key, so it finds its row instead of adding one.
    idempotency_key = Column(String(128), nullable=False, unique=True)
    conversation_id = Column(String(255), nullable=False, index=True)
    channel = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False, default="new", index=True)
    created_at = Column(UtcDateTime(), nullable=False, default=utc_now, index=True)

    full_name = Column(String(200), nullable=False)
    date_of_birth = Column(Date, nullable=False)
    date_of_birth_raw = Column(String(200), nullable=False)
    phone_e164 = Column(String(20), nullable=False)
    phone_raw = Column(String(200), nullable=False)
    email = Column(String(320), nullable=True)
    email_raw = Column(String(400), nullable=True)

    last_period_start = Column(Date, nullable=True)
    last_period_raw = Column(String(200), nullable=False, default="")
    last_period_not_applicable = Column(Boolean, nullable=False, default=False)
    suggested_window_start = Column(Date, nullable=True)
    suggested_window_end = Column(Date, nullable=True)
    preferred_times_raw = Column(Text, nullable=False, default="")
    # ISO dates ("2024-05-17"), as JSON so that SQLite and PostgreSQL store them alike.
    preferred_dates = Column(JSON, nullable=False, default=list)

    possibly_pregnant = Column(String(8), nullable=False)
    contrast_allergy = Column(String(8), nullable=False)
    pelvic_infection = Column(String(8), nullable=False)
    # Stored, not computed, so staff can list the requests to review first with an index.
    needs_attention = Column(Boolean, nullable=False, default=False, index=True)

    referring_doctor = Column(String(200), nullable=True)
    contact_method = Column(String(16), nullable=False)

    # Set by staff when they schedule it (entered in the clinic's zone, stored in UTC). Each
    # schedule or reschedule counts up the version, which keys that appointment's texts.
    appointment_at = Column(UtcDateTime(), nullable=True)
    appointment_version = Column(Integer, nullable=False, default=0)

    def __repr__(self) -> str:
        # Only identifiers: reprs end up in logs and tracebacks.
        return (
            f"<AppointmentRequest id={self.id} reference={self.reference!r} status={self.status!r}>"
        )


class SmsOptOut(Base):
    """A phone number's latest STOP (opted_out) or START (not opted_out) by SMS."""

    __tablename__ = "sms_opt_outs"

    phone_e164 = Column(String(20), primary_key=True)
    opted_out_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    opted_out = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"<SmsOptOut opted_out={self.opted_out!r}>"


class StaffUser(Base):
    """A clinic staff account for the staff area; created with `make staff-user`."""

    __tablename__ = "staff_users"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    password_hash = Column(String(255), nullable=False)
    role = Column(String(16), nullable=False, default="staff")
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    password_changed_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    last_login_at = Column(UtcDateTime(), nullable=True)
    # Unused since migration 0003: lockouts are per client address, in staff_login_failures.
    failed_login_count = Column(Integer, nullable=False, default=0)
    locked_until = Column(UtcDateTime(), nullable=True)
    # Part of every login session's identity: replacing it signs out all of the user's sessions.
    session_token = Column(String(64), nullable=False)

    def __repr__(self) -> str:
        return f"<StaffUser id={self.id} username={self.username!r} role={self.role!r}>"


class RequestStatusChange(Base):
    """One step of a request through the staff workflow, with who made it and why."""

    __tablename__ = "request_status_changes"

    id = Column(Integer, primary_key=True)
    request_id = Column(Integer, ForeignKey("appointment_requests.id"), nullable=False, index=True)
    from_status = Column(String(16), nullable=False)
    to_status = Column(String(16), nullable=False)
    note = Column(Text, nullable=False, default="")
    # A name rather than a foreign key: the history must outlive a removed account.
    staff_username = Column(String(64), nullable=False)
    changed_at = Column(UtcDateTime(), nullable=False, default=utc_now)

    def __repr__(self) -> str:
        return (
            f"<RequestStatusChange id={self.id} request_id={self.request_id} "
            f"{self.from_status!r}->{self.to_status!r}>"
        )


class StaffAuditEvent(Base):
    """Who did what in the staff area, and to which request: views, changes, exports, logins."""

    __tablename__ = "staff_audit_events"

    id = Column(Integer, primary_key=True)
    occurred_at = Column(UtcDateTime(), nullable=False, default=utc_now, index=True)
    # Empty for a failed login with an unknown name: that name may be a mistyped password.
    staff_username = Column(String(64), nullable=True, index=True)
    action = Column(String(32), nullable=False, index=True)
    request_reference = Column(String(16), nullable=True, index=True)
    # Never patient details: statuses, counts and reasons only.
    detail = Column(String(200), nullable=False, default="")

    def __repr__(self) -> str:
        return (
            f"<StaffAuditEvent id={self.id} action={self.action!r} "
            f"reference={self.request_reference!r}>"
        )


class StaffLoginFailure(Base):
    """Failed sign-ins of one staff account from one client address, and that pair's lockout.

    Kept per address, so that someone guessing from one address locks only that address out,
    never the account's owner signing in from another.
    """

    __tablename__ = "staff_login_failures"

    staff_user_id = Column(Integer, ForeignKey("staff_users.id"), primary_key=True)
    client_address = Column(String(64), primary_key=True)
    # Failures in a row from this address; a success from it, or an unlock, removes the row.
    failed_count = Column(Integer, nullable=False, default=0)
    last_failed_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    locked_until = Column(UtcDateTime(), nullable=True)

    def __repr__(self) -> str:
        return (
            f"<StaffLoginFailure staff_user_id={self.staff_user_id} "
            f"failed_count={self.failed_count}>"
        )


class HandoffRequest(Base):
    """A conversation that needs a person (the staff inbox), and who holds it while taken over.

    One open row (waiting or held) per conversation; a closed row is history. The holder is
    claimed by compare-and-set on ``status`` (appointments/handoffs.py), so two members of staff
    never hold the same conversation.
    """

    __tablename__ = "handoff_requests"

    id = Column(Integer, primary_key=True)
    # "web:<hex>" or "sms:+E164": never shown in a URL, the row's id is used there instead.
    conversation_id = Column(String(255), nullable=False, index=True)
    channel = Column(String(16), nullable=False)
    reason = Column(String(32), nullable=False)
    request_reference = Column(String(16), nullable=True)
    status = Column(String(16), nullable=False, default="waiting", index=True)
    created_at = Column(UtcDateTime(), nullable=False, default=utc_now, index=True)
    # The latest time the conversation asked again (a second hand-off or warning sign).
    updated_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    held_by = Column(String(64), nullable=True)
    held_since = Column(UtcDateTime(), nullable=True)
    # The holder's latest act (taking over, a message): the idle timeout counts from here.
    last_staff_activity_at = Column(UtcDateTime(), nullable=True)
    closed_at = Column(UtcDateTime(), nullable=True)
    closed_by = Column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"<HandoffRequest id={self.id} status={self.status!r} reason={self.reason!r}>"


class UnansweredMessage(Base):
    """A patient message the assistant could not answer (or that asked for a person): insights.

    The text is health information: admins only, purged with the retention rules.
    """

    __tablename__ = "unanswered_messages"

    id = Column(Integer, primary_key=True)
    occurred_at = Column(UtcDateTime(), nullable=False, default=utc_now, index=True)
    kind = Column(String(24), nullable=False)
    channel = Column(String(16), nullable=False)
    text = Column(Text, nullable=False)

    def __repr__(self) -> str:
        return f"<UnansweredMessage id={self.id} kind={self.kind!r}>"


class OutboundMessage(Base):
    """One planned text of a scheduled request (the outbox): due when, and how far it got.

    (request, kind, appointment version) is unique, so a message is never planned twice for the
    same appointment; the worker claims a row before sending it, so it is never sent twice.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (UniqueConstraint("request_id", "kind", "appointment_version"),)

    id = Column(Integer, primary_key=True)
    request_id = Column(Integer, ForeignKey("appointment_requests.id"), nullable=False, index=True)
    kind = Column(String(16), nullable=False)
    appointment_version = Column(Integer, nullable=False)
    phone_e164 = Column(String(20), nullable=False, index=True)
    # planned, claimed, sent, delivered, failed, undelivered, cancelled, dropped, not_sent
    state = Column(String(16), nullable=False, default="planned", index=True)
    due_at = Column(UtcDateTime(), nullable=False)
    # No later than this is the text still of use (a cycle check after the test is not).
    useful_until = Column(UtcDateTime(), nullable=False)
    next_attempt_at = Column(UtcDateTime(), nullable=False, index=True)
    attempts = Column(Integer, nullable=False, default=0)
    claimed_at = Column(UtcDateTime(), nullable=True)
    claimed_by = Column(String(64), nullable=True)
    sent_at = Column(UtcDateTime(), nullable=True)
    twilio_sid = Column(String(64), nullable=True, unique=True)
    twilio_status = Column(String(16), nullable=True)
    # Why it waits, failed, was dropped or cancelled: shown to staff, never patient details.
    reason = Column(String(200), nullable=False, default="")
    # The conversation has been told what this text asked (rasa_http.append_events), or not yet.
    context_recorded = Column(Boolean, nullable=False, default=False)
    updated_at = Column(UtcDateTime(), nullable=False, default=utc_now)

    def __repr__(self) -> str:
        return (
            f"<OutboundMessage id={self.id} request_id={self.request_id} kind={self.kind!r} "
            f"state={self.state!r}>"
        )


class RequestFlag(Base):
    """Something about a request that needs staff: a failed cycle check, a worrying reply, a
    text that did not arrive, a patient asking to change the date; until staff clear it."""

    __tablename__ = "request_flags"

    id = Column(Integer, primary_key=True)
    request_id = Column(Integer, ForeignKey("appointment_requests.id"), nullable=False, index=True)
    reason = Column(String(32), nullable=False)
    # The patient's reply that raised it, or which text failed: staff need it to act.
    raised_by = Column(String(320), nullable=False, default="")
    raised_at = Column(UtcDateTime(), nullable=False, default=utc_now)
    cleared_at = Column(UtcDateTime(), nullable=True, index=True)
    cleared_by = Column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"<RequestFlag id={self.id} request_id={self.request_id} reason={self.reason!r}>"
