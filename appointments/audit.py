"""The staff audit log: who listed, searched, viewed, changed or exported which request, every
sign-in, every refusal, accounts deactivated or reactivated, and the staff inbox: who viewed,
took over, wrote in (never what) and handed back which conversation, and the insights.

An event never holds patient details or a search term (which may be a patient's name or phone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from appointments.database import session_scope
from appointments.models import StaffAuditEvent, utc_now
from appointments.paging import Page, paginate

LOGIN = "login"
LOGIN_FAILED = "login_failed"
ACCOUNT_LOCKED = "account_locked"
LOGIN_WHILE_LOCKED = "login_while_locked"
LOGOUT = "logout"
SESSION_EXPIRED = "session_expired"
VIEW_REQUEST = "view_request"
CHANGE_STATUS = "change_status"
EXPORT = "export"
VIEW_LIST = "view_list"
SEARCH = "search"
VIEW_AUDIT_LOG = "view_audit_log"
ACCESS_DENIED = "access_denied"
ACCOUNT_DEACTIVATED = "account_deactivated"
ACCOUNT_REACTIVATED = "account_reactivated"
VIEW_INBOX = "view_inbox"
VIEW_CONVERSATION = "view_conversation"
TAKE_OVER = "take_over"
TAKE_OVER_REFUSED = "take_over_refused"
STAFF_MESSAGE = "staff_message"
HAND_BACK = "hand_back"
CLOSE_WITHOUT_JOINING = "inbox_closed"
VIEW_INSIGHTS = "view_insights"
EXPORT_INSIGHTS = "export_insights"
RESCHEDULE = "reschedule"
CLEAR_FLAGS = "clear_flags"
# Not a staff member's act: the retention purge (appointments/retention.py), counts only.
PURGE = "retention_purge"
# Not a staff member's act either: a held conversation left idle went back to the inbox.
HOLD_RELEASED = "hold_released"

ACTION_LABELS = {
    LOGIN: "Signed in",
    LOGIN_FAILED: "Failed sign-in",
    ACCOUNT_LOCKED: "Account locked",
    LOGIN_WHILE_LOCKED: "Sign-in while locked",
    LOGOUT: "Signed out",
    SESSION_EXPIRED: "Session timed out",
    VIEW_REQUEST: "Viewed request",
    CHANGE_STATUS: "Changed status",
    EXPORT: "Exported",
    VIEW_LIST: "Listed requests",
    SEARCH: "Searched requests",
    VIEW_AUDIT_LOG: "Viewed audit log",
    ACCESS_DENIED: "Refused: not allowed",
    ACCOUNT_DEACTIVATED: "Account deactivated",
    ACCOUNT_REACTIVATED: "Account reactivated",
    VIEW_INBOX: "Viewed inbox",
    VIEW_CONVERSATION: "Viewed conversation",
    TAKE_OVER: "Took over conversation",
    TAKE_OVER_REFUSED: "Take-over refused: held",
    STAFF_MESSAGE: "Sent message to patient",
    HAND_BACK: "Handed back to assistant",
    CLOSE_WITHOUT_JOINING: "Closed inbox item without joining",
    VIEW_INSIGHTS: "Viewed insights",
    EXPORT_INSIGHTS: "Exported unanswered texts",
    RESCHEDULE: "Rescheduled appointment",
    CLEAR_FLAGS: "Cleared flags",
    PURGE: "Purged old records",
    HOLD_RELEASED: "Idle hold returned to inbox",
}
MAX_DETAIL_LENGTH = 200


def add_audit_event(
    session: Session,
    *,
    action: str,
    staff_username: str | None,
    request_reference: str | None = None,
    detail: str = "",
) -> None:
    """Adds an event to ``session``, so that it commits or rolls back with the change it records."""
    if action not in ACTION_LABELS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(
        StaffAuditEvent(
            occurred_at=utc_now(),
            staff_username=staff_username,
            action=action,
            request_reference=request_reference,
            detail=detail[:MAX_DETAIL_LENGTH],
        )
    )


def record_audit_event(
    *,
    action: str,
    staff_username: str | None,
    request_reference: str | None = None,
    detail: str = "",
    url: str | None = None,
) -> None:
    """Stores one event in a transaction of its own."""
    with session_scope(url) as session:
        add_audit_event(
            session,
            action=action,
            staff_username=staff_username,
            request_reference=request_reference,
            detail=detail,
        )


def record_export(
    staff_username: str, references: Iterable[str], detail: str, url: str | None = None
) -> None:
    """One event per exported request, so a request's audit trail shows each export of it."""
    references = list(references)
    with session_scope(url) as session:
        if not references:
            add_audit_event(session, action=EXPORT, staff_username=staff_username, detail=detail)
        for reference in references:
            add_audit_event(
                session,
                action=EXPORT,
                staff_username=staff_username,
                request_reference=reference,
                detail=detail,
            )


@dataclass(frozen=True)
class AuditFilters:
    staff_username: str | None = None
    action: str | None = None
    request_reference: str | None = None


def list_audit_events(
    filters: AuditFilters, page: int = 1, per_page: int = 50, url: str | None = None
) -> Page[StaffAuditEvent]:
    """Newest first."""
    statement = select(StaffAuditEvent)
    if filters.staff_username:
        statement = statement.where(StaffAuditEvent.staff_username == filters.staff_username)
    if filters.action:
        statement = statement.where(StaffAuditEvent.action == filters.action)
    if filters.request_reference:
        statement = statement.where(StaffAuditEvent.request_reference == filters.request_reference)
    statement = statement.order_by(StaffAuditEvent.occurred_at.desc(), StaffAuditEvent.id.desc())
    with session_scope(url) as session:
        return paginate(session, statement, page, per_page)
