"""The staff area's pages under /staff: sign-in, request list and detail, export, audit log.

Every list, search, request view, export and refusal is audited, never with a search term; the
search term itself is only ever posted and shown back in the answer to that post.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone
from datetime import time as time_of_day
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import generate_csrf, validate_csrf
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, TooManyRequests
from wtforms.validators import ValidationError

from appointments import audit
from appointments.models import AppointmentRequest, utc_now
from appointments.outbox import FLAG_LABELS, STATE_LABELS
from appointments.request_review import (
    MAX_SEARCH_LENGTH,
    NEXT_STATUSES,
    REFERENCE_PATTERN,
    STATUS_LABELS,
    RequestFilters,
    StaleStatusError,
    StatusChangeError,
    change_status,
    clear_flags,
    count_flagged_requests,
    count_new_requests,
    list_requests,
    requests_for_export,
    reschedule,
    status_history,
    texts_and_flags,
)
from appointments.requests import get_appointment_request
from appointments.screening import (
    ANSWER_LABELS,
    FLAGGED_ANSWERS,
    SCREENING_QUESTIONS,
    stored_request_reasons,
)
from appointments.staff_accounts import (
    LOCKOUT_DURATION,
    MAX_FAILED_LOGINS,
    LoginOutcome,
    authenticate,
    end_all_sessions,
)
from clinic.settings import load_clinic_settings
from outreach.plan import KIND_LABELS, plan_messages
from web.staff.auth import StaffIdentity, admin_required, login_manager
from web.staff.export import requests_csv
from web.staff.forms import (
    CHANNEL_LABELS,
    AuditFilterForm,
    ClearFlagsForm,
    ExportForm,
    FilterForm,
    LoginForm,
    RescheduleForm,
    SearchForm,
    StatusChangeForm,
)
from web.staff.settings import clinic_timezone
from web.staff.throttle import client_address, sign_in_wait_seconds
from web.staff.transcript import TranscriptUnavailableError, load_transcript

logger = logging.getLogger(__name__)

blueprint = Blueprint(
    "staff",
    __name__,
    url_prefix="/staff",
    template_folder="templates",
    static_folder="static",
)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FILTER_PARAMETERS = ("status", "channel", "created_from", "created_to", "attention", "flagged")
# Where earlier versions kept the search term, readable in the cookie: removed on sight.
LEGACY_SEARCH_SESSION_KEY = "staff_search"
LAST_SEEN_SESSION_KEY = "staff_last_seen"
# Polled by the pages' script every few seconds (web/staff/inbox.py): they are not activity,
# or an open tab would never be signed out after the inactivity timeout.
PASSIVE_ENDPOINTS = frozenset({"staff.inbox_json", "staff.inbox_messages"})
# Scripts only from the staff area's own files (the inbox's polling, static/live.js), never
# inline, and requests only to this site.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LOGIN_FAILED_MESSAGE = (
    "That username and password did not match, or the account is locked. "
    f"After {MAX_FAILED_LOGINS} failed attempts in a row an account is locked for "
    f"{int(LOCKOUT_DURATION.total_seconds() // 60)} minutes."
)
THROTTLED_MESSAGE = (
    "Too many sign-in attempts have come from your network. Please wait a few minutes and "
    "try again; if you have forgotten your password, ask an administrator to set a new one."
)


class CsrfRejectedError(HTTPException):
    code = 400
    description = (
        "This form has expired or did not come from this site. Go back, reload the page and "
        "try again."
    )


def _now_seconds() -> float:
    return time.time()


def _database_url() -> str | None:
    return current_app.config.get("DATABASE_URL")


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return clinic_timezone(name)


def clinic_zone() -> ZoneInfo:
    return _zone(current_app.config["STAFF_TIMEZONE"])


def _username() -> str:
    return current_user.username


# --- Every request ----------------------------------------------------------------------------


def _session_timed_out() -> bool:
    last_seen = session.get(LAST_SEEN_SESSION_KEY)
    timeout = current_app.config["STAFF_SESSION_TIMEOUT"].total_seconds()
    return not isinstance(last_seen, (int, float)) or _now_seconds() - last_seen > timeout


def _end_session(flash_message: str | None = None) -> None:
    logout_user()
    session.clear()
    if flash_message:
        flash(flash_message, "info")


@blueprint.before_request
def check_session_and_csrf() -> Response | None:
    """Before every staff page: the inactivity timeout, and a CSRF token on every post."""
    if request.endpoint == "staff.static":
        return None
    session.permanent = True
    if LEGACY_SEARCH_SESSION_KEY in session:
        session.pop(LEGACY_SEARCH_SESSION_KEY)
    if current_user.is_authenticated:
        if _session_timed_out():
            username = _username()
            minutes = int(current_app.config["STAFF_SESSION_TIMEOUT"].total_seconds() // 60)
            audit.record_audit_event(
                action=audit.SESSION_EXPIRED, staff_username=username, url=_database_url()
            )
            _end_session(f"You were signed out after {minutes} minutes without activity.")
            next_path = request.full_path if request.method == "GET" else None
            return redirect(url_for("staff.login", next=next_path))
        if request.endpoint not in PASSIVE_ENDPOINTS:
            session[LAST_SEEN_SESSION_KEY] = int(_now_seconds())
    if request.method in UNSAFE_METHODS:
        if request.endpoint != "staff.login" and not current_user.is_authenticated:
            # Nothing is done for a signed-out visitor. No "next": it would be a POST-only URL.
            flash(login_manager.login_message, login_manager.login_message_category)
            return redirect(url_for("staff.login"))
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            raise CsrfRejectedError() from None
    return None


@blueprint.after_request
def add_staff_headers(response: Response) -> Response:
    """Stricter headers than the public page's: own scripts only, no caching of patient details."""
    # Set before the app-wide defaults (which only fill in what is missing), so these win.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "staff.static":
        # Patient details must not stay in the browser's or a proxy's cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    # Strict-Transport-Security comes from web/security.py, for the whole site.
    return response


@blueprint.context_processor
def template_context() -> dict[str, Any]:
    """What every staff template may use."""
    return {
        "clinic_name": load_clinic_settings().name,
        "csrf_token": generate_csrf,
        "status_labels": STATUS_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "answer_labels": ANSWER_LABELS,
        "action_labels": audit.ACTION_LABELS,
        "text_kind_labels": KIND_LABELS,
        "text_state_labels": STATE_LABELS,
        "flag_labels": FLAG_LABELS,
        "flagged_count": _flagged_count,
    }


def _flagged_count() -> int | None:
    """Requests with open flags, for the navigation (called by the template when signed in).

    None when the database cannot be read: the "database unavailable" page must still render.
    """
    try:
        return count_flagged_requests(url=_database_url())
    except OperationalError:
        return None


@blueprint.app_template_filter("staff_time")
def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(clinic_zone()).strftime("%Y-%m-%d %H:%M %Z")


@blueprint.app_template_filter("staff_date")
def format_date(value: date | str | None) -> str:
    if not value:
        return ""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return day.strftime("%a %Y-%m-%d")


def _error_page(error: HTTPException) -> tuple[str, int]:
    titles = {400: "Form not accepted", 403: "Not allowed", 404: "Not found"}
    return (
        render_template(
            "staff/error.html",
            title=titles.get(error.code, "Error"),
            message=error.description,
        ),
        error.code,
    )


@blueprint.errorhandler(CsrfRejectedError)
def csrf_rejected(error: CsrfRejectedError) -> tuple[str, int]:
    """An expired or foreign form: explained, nothing done."""
    return _error_page(error)


@blueprint.errorhandler(403)
def forbidden(error: HTTPException) -> tuple[str, int]:
    """The refusal page; every refusal is audited with its path (which holds no patient data)."""
    audit.record_audit_event(
        action=audit.ACCESS_DENIED,
        staff_username=_username() if current_user.is_authenticated else None,
        detail=f"{request.method} {request.path}",
        url=_database_url(),
    )
    error.description = "This page is for staff with the admin role."
    return _error_page(error)


@blueprint.errorhandler(429)
def too_many_sign_ins(error: HTTPException) -> tuple[str, int, dict[str, str]]:
    """The sign-in page again while this address is throttled: calm, never a server error."""
    logger.warning("Staff sign-in throttled for address %s", client_address())
    form = LoginForm()
    form.password.data = ""
    page = render_template("staff/login.html", form=form, error=THROTTLED_MESSAGE)
    retry_after = getattr(error, "retry_after", None)
    return page, 429, ({"Retry-After": str(retry_after)} if retry_after else {})


@blueprint.errorhandler(404)
def not_found(error: HTTPException) -> tuple[str, int]:
    """An unknown request or page, in the staff area's own layout."""
    error.description = "There is no such request or page. Check the reference and try again."
    return _error_page(error)


@blueprint.errorhandler(OperationalError)
def database_unavailable(error: OperationalError) -> tuple[str, int]:
    """A calm page while the database is unreachable; the log names only the error's type."""
    logger.error("Staff area: database unreachable: %s", type(error.orig).__name__)
    return (
        render_template(
            "staff/error.html",
            title="Database unavailable",
            message="The appointment database cannot be reached right now. "
            "Please try again in a few minutes.",
        ),
        503,
    )


# --- Sign in and out --------------------------------------------------------------------------


def _safe_next(target: str | None) -> str | None:
    """A path inside the staff area, or None: never a redirect to another site."""
    if not target:
        return None
    parts = urlsplit(target)
    # Flask-Login passes the full URL of the page asked for: same host only.
    if parts.netloc and (parts.netloc != request.host or parts.scheme not in ("http", "https")):
        return None
    if parts.scheme and not parts.netloc:
        return None
    if not parts.path.startswith("/staff/"):
        return None
    if parts.path.startswith("/staff/login"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _audit_login(outcome: LoginOutcome, username: str, failures: int, address: str) -> None:
    """One event per attempt, with the address it came from (where a lockout applies)."""
    events = {
        LoginOutcome.SUCCESS: (audit.LOGIN, username, f"from {address}"),
        LoginOutcome.WRONG_PASSWORD: (
            audit.LOGIN_FAILED,
            username,
            f"wrong password from {address} ({failures} of {MAX_FAILED_LOGINS} before a lockout)",
        ),
        LoginOutcome.LOCKED_NOW: (
            audit.ACCOUNT_LOCKED,
            username,
            f"locked from {address} for {int(LOCKOUT_DURATION.total_seconds() // 60)} minutes "
            f"after {MAX_FAILED_LOGINS} failed sign-ins",
        ),
        LoginOutcome.LOCKED: (
            audit.LOGIN_WHILE_LOCKED,
            username,
            f"refused from {address}: locked after failed sign-ins",
        ),
        # The typed name is not kept: it may be a password typed into the wrong box.
        LoginOutcome.UNKNOWN_ACCOUNT: (
            audit.LOGIN_FAILED,
            None,
            f"unknown or deactivated account, from {address}",
        ),
    }
    action, staff_username, detail = events[outcome]
    audit.record_audit_event(
        action=action, staff_username=staff_username, detail=detail, url=_database_url()
    )
    if outcome is LoginOutcome.LOCKED_NOW:
        logger.warning(
            "Staff account %s locked from %s after repeated failed sign-ins", username, address
        )


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form; posts are throttled per client address before any password is checked."""
    if current_user.is_authenticated:
        return redirect(url_for("staff.request_list"))
    if request.method == "POST":
        wait = sign_in_wait_seconds()
        if wait:
            raise TooManyRequests(retry_after=wait)
    form = LoginForm()
    error = None
    status = 200
    if request.method == "GET":
        form.next.data = _safe_next(request.args.get("next")) or ""
    elif form.validate_on_submit():
        address = client_address()
        result = authenticate(
            form.username.data, form.password.data, client_address=address, url=_database_url()
        )
        username = result.account.username if result.account else ""
        _audit_login(result.outcome, username, result.failed_login_count, address)
        if result.succeeded:
            # A fresh session: nothing from before signing in carries over.
            session.clear()
            login_user(StaffIdentity(result.account))
            session.permanent = True
            session[LAST_SEEN_SESSION_KEY] = int(_now_seconds())
            logger.info("Staff member %s signed in", username)
            return redirect(_safe_next(form.next.data) or url_for("staff.request_list"))
        error = LOGIN_FAILED_MESSAGE
        status = 401
    else:
        error = "Enter your username and password."
        status = 400
    form.password.data = ""
    return render_template("staff/login.html", form=form, error=error), status


@blueprint.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Signs out here and everywhere else this account is signed in."""
    username = _username()
    # Also ends copies of this session cookie anywhere else, and the user's other sessions.
    end_all_sessions(current_user.account.id, url=_database_url())
    audit.record_audit_event(action=audit.LOGOUT, staff_username=username, url=_database_url())
    _end_session("You have signed out.")
    return redirect(url_for("staff.login"))


# --- Requests ---------------------------------------------------------------------------------


def _filter_form(source: MultiDict) -> FilterForm:
    """The list's filters from ``source``: the query string, or the body of a posted search."""
    form = FilterForm(source)
    if any(source.get(name) for name in FILTER_PARAMETERS):
        form.validate()
    return form


def _valid(field: Any) -> Any:
    return None if field.errors or not field.data else field.data


def _filter_arguments(form: FilterForm) -> dict[str, str]:
    """The valid filters, to carry into links and form actions: never free text."""
    values = {
        "status": _valid(form.status),
        "channel": _valid(form.channel),
        "created_from": _valid(form.created_from),
        "created_to": _valid(form.created_to),
        "attention": "y" if form.attention.data else None,
        "flagged": "y" if form.flagged.data else None,
    }
    return {name: str(value) for name, value in values.items() if value}


def _filters(form: FilterForm, search: str | None) -> RequestFilters:
    """The valid filters of ``form`` (invalid ones are left out) and the posted search, if any."""
    return RequestFilters(
        status=_valid(form.status),
        channel=_valid(form.channel),
        created_from=_valid(form.created_from),
        created_to=_valid(form.created_to),
        needs_attention=bool(form.attention.data),
        flagged=bool(form.flagged.data),
        search=search,
        zone=clinic_zone(),
    )


def _described(arguments: dict[str, str], searched: bool) -> str:
    """Filters for an audit event; a search is mentioned, never its term (a name or phone)."""
    described = [f"{name}={value}" for name, value in arguments.items()]
    if searched:
        described.append("with a search")
    return f"; {', '.join(described)}" if described else ""


def _render_list(
    filter_form: FilterForm,
    search: str | None,
    search_form: SearchForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The list page, audited as a list view or, with ``search``, as a search."""
    arguments = _filter_arguments(filter_form)
    page = list_requests(
        _filters(filter_form, search),
        page=request.args.get("page", 1, type=int),
        per_page=current_app.config["STAFF_PAGE_SIZE"],
        url=_database_url(),
    )
    audit.record_audit_event(
        action=audit.SEARCH if search else audit.VIEW_LIST,
        staff_username=_username(),
        detail=f"page {page.number} of {page.page_count}, {page.total} request(s)"
        + _described(arguments, bool(search)),
        url=_database_url(),
    )
    html = render_template(
        "staff/requests.html",
        page=page,
        filter_form=filter_form,
        filter_arguments=arguments,
        search_form=search_form or SearchForm(formdata=None, q=search or ""),
        search=search,
        new_count=count_new_requests(url=_database_url()),
        active="requests",
    )
    return html, status


@blueprint.route("/")
@login_required
def index() -> Response:
    """The staff area starts at the request list."""
    return redirect(url_for("staff.request_list"))


@blueprint.route("/requests")
@login_required
def request_list() -> tuple[str, int]:
    """The newest requests first, filtered by the query string (which never holds a search)."""
    return _render_list(_filter_form(request.args), search=None)


@blueprint.route("/requests/search", methods=["POST"])
@login_required
def search() -> Any:
    """The requests matching a posted search, shown in the answer to the post itself.

    Nothing of the term is kept: not in the session cookie, not in a URL, not on the server.
    Paging and filtering post it again from the page's own forms.
    """
    # Filters come in the action URL (search box, paging) or the body (the filter form).
    filter_form = _filter_form(request.values)
    search_form = SearchForm()
    if not search_form.validate():
        return _render_list(filter_form, None, search_form=search_form, status=400)
    term = (search_form.q.data or "").strip()
    if not term:
        return redirect(url_for("staff.request_list", **_filter_arguments(filter_form)))
    return _render_list(filter_form, term, search_form=search_form)


@blueprint.route("/requests/export", methods=["POST"])
@admin_required
def export_requests() -> Response:
    """Every request the filters and the posted search select, as CSV: admins only, audited."""
    filter_form = _filter_form(request.args)
    search = (ExportForm().q.data or "").strip()[:MAX_SEARCH_LENGTH] or None
    rows = requests_for_export(_filters(filter_form, search), url=_database_url())
    detail = f"CSV of {len(rows)} request(s)" + _described(
        _filter_arguments(filter_form), bool(search)
    )
    audit.record_export(
        _username(), [row.reference for row in rows], detail=detail, url=_database_url()
    )
    stamp = utc_now().astimezone(clinic_zone()).strftime("%Y%m%d-%H%M")
    return Response(
        requests_csv(rows, clinic_zone()),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="hsg-requests-{stamp}.csv"',
        },
    )


def _request_or_404(reference: str) -> AppointmentRequest:
    if not REFERENCE_PATTERN.match(reference):
        abort(404)
    appointment = get_appointment_request(reference, url=_database_url())
    if appointment is None:
        abort(404)
    return appointment


def _status_form(current_status: str, form: StatusChangeForm | None = None) -> StatusChangeForm:
    if form is None:
        form = StatusChangeForm(expected_status=current_status)
    expected = form.expected_status.data if form.expected_status.data in NEXT_STATUSES else None
    form.to_status.choices = [
        (status, STATUS_LABELS[status]) for status in NEXT_STATUSES[expected or current_status]
    ]
    return form


def _render_detail(
    appointment: AppointmentRequest,
    form: StatusChangeForm,
    status: int = 200,
    reschedule_form: RescheduleForm | None = None,
) -> tuple[str, int]:
    try:
        transcript = load_transcript(
            appointment.conversation_id,
            url=current_app.config.get("TRACKER_DATABASE_URL"),
            confirmed_at=appointment.created_at,
        )
        transcript_unavailable = False
    except TranscriptUnavailableError:
        transcript, transcript_unavailable = [], True
    screening = [
        (label, getattr(appointment, field), getattr(appointment, field) in FLAGGED_ANSWERS)
        for field, label in SCREENING_QUESTIONS
    ]
    texts, flags = texts_and_flags(appointment.id, url=_database_url())
    if reschedule_form is None:
        local = (
            appointment.appointment_at.astimezone(clinic_zone())
            if appointment.appointment_at
            else None
        )
        reschedule_form = RescheduleForm(
            formdata=None,
            expected_version=appointment.appointment_version,
            appointment_date=local.date() if local else None,
            appointment_time=local.time().replace(tzinfo=None) if local else None,
        )
    page = render_template(
        "staff/request_detail.html",
        appointment=appointment,
        texts=texts,
        flags=flags,
        reschedule_form=reschedule_form,
        clear_flags_form=ClearFlagsForm(),
        screening=screening,
        attention=stored_request_reasons(appointment),
        history=status_history(appointment.id, url=_database_url()),
        form=form,
        transcript=transcript,
        transcript_unavailable=transcript_unavailable,
        clinic_zone_name=clinic_zone().key,
        active="requests",
    )
    return page, status


@blueprint.route("/requests/<reference>")
@login_required
def request_detail(reference: str) -> tuple[str, int]:
    """One request with its answers, screening, history and conversation; audited."""
    appointment = _request_or_404(reference)
    audit.record_audit_event(
        action=audit.VIEW_REQUEST,
        staff_username=_username(),
        request_reference=appointment.reference,
        url=_database_url(),
    )
    return _render_detail(appointment, _status_form(appointment.status))


@blueprint.route("/requests/<reference>/status", methods=["POST"])
@login_required
def update_status(reference: str) -> Any:
    """Moves the request one step along the workflow (audited with the change)."""
    appointment = _request_or_404(reference)
    form = _status_form(appointment.status, StatusChangeForm())
    if not form.validate_on_submit():
        return _render_detail(appointment, form, status=400)
    appointment_at = None
    if form.to_status.data == "scheduled":
        if not (form.appointment_date.data and form.appointment_time.data):
            form.appointment_date.errors = ["Enter the appointment's date and time to schedule it."]
            return _render_detail(appointment, form, status=400)
        appointment_at = _clinic_datetime(form.appointment_date.data, form.appointment_time.data)
    try:
        change = change_status(
            appointment.reference,
            to_status=form.to_status.data,
            expected_status=form.expected_status.data,
            note=form.note.data or "",
            staff_username=_username(),
            appointment_at=appointment_at,
            planned=_planned_texts(appointment_at) if appointment_at else (),
            url=_database_url(),
        )
    except StaleStatusError as error:
        flash(str(error), "error")
    except StatusChangeError as error:
        form.to_status.errors = [str(error)]
        return _render_detail(appointment, form, status=400)
    else:
        flash(f"Marked {STATUS_LABELS[change.to_status].lower()}.", "success")
    return redirect(url_for("staff.request_detail", reference=appointment.reference))


def _clinic_datetime(day: date, at: time_of_day) -> datetime:
    """A date and time staff entered, read in the clinic's zone, as UTC."""
    return datetime.combine(day, at, tzinfo=clinic_zone()).astimezone(timezone.utc)


def _planned_texts(appointment_at: datetime) -> list[tuple[str, datetime, datetime]]:
    return [
        (message.kind, message.due_at, message.useful_until)
        for message in plan_messages(appointment_at, clinic_zone(), utc_now())
    ]


@blueprint.route("/requests/<reference>/appointment", methods=["POST"])
@login_required
def reschedule_appointment(reference: str) -> Any:
    """Moves a scheduled appointment; pending texts are cancelled and planned again (audited)."""
    appointment = _request_or_404(reference)
    form = RescheduleForm()
    if not form.validate_on_submit() or not form.expected_version.data.isdigit():
        return _render_detail(
            appointment, _status_form(appointment.status), status=400, reschedule_form=form
        )
    appointment_at = _clinic_datetime(form.appointment_date.data, form.appointment_time.data)
    try:
        count = reschedule(
            appointment.reference,
            appointment_at=appointment_at,
            expected_version=int(form.expected_version.data),
            planned=_planned_texts(appointment_at),
            staff_username=_username(),
            url=_database_url(),
        )
    except StatusChangeError as error:
        flash(str(error), "error")
    else:
        flash(f"Rescheduled; {count} texts planned.", "success")
    return redirect(url_for("staff.request_detail", reference=appointment.reference))


@blueprint.route("/requests/<reference>/flags/clear", methods=["POST"])
@login_required
def clear_request_flags(reference: str) -> Any:
    """Marks the request's flags as dealt with (audited)."""
    appointment = _request_or_404(reference)
    if not ClearFlagsForm().validate_on_submit():
        abort(400)
    count = clear_flags(appointment.reference, _username(), url=_database_url())
    flash(f"{count} flag(s) marked as dealt with.", "success")
    return redirect(url_for("staff.request_detail", reference=appointment.reference))


# --- Audit log --------------------------------------------------------------------------------


def _audit_filters(filters: audit.AuditFilters) -> dict[str, str]:
    """The audit log's filters for its own audit event: usernames, actions, references."""
    values = {
        "staff_username": filters.staff_username,
        "action": filters.action,
        "reference": filters.request_reference,
    }
    return {name: value for name, value in values.items() if value}


@blueprint.route("/audit")
@admin_required
def audit_log() -> str:
    """The audit log, newest first, for admins; viewing it is audited too."""
    form = AuditFilterForm(request.args)
    if request.args:
        form.validate()

    def valid(field: Any) -> Any:
        return None if field.errors or not field.data else field.data.strip()

    reference = valid(form.reference)
    filters = audit.AuditFilters(
        staff_username=(valid(form.staff_username) or "").lower() or None,
        action=valid(form.action),
        request_reference=reference.upper() if reference else None,
    )
    page = audit.list_audit_events(
        filters,
        page=request.args.get("page", 1, type=int),
        per_page=current_app.config["STAFF_AUDIT_PAGE_SIZE"],
        url=_database_url(),
    )
    arguments = {
        name: request.args[name]
        for name in ("staff_username", "action", "reference")
        if request.args.get(name)
    }
    # Recorded after the query, so the page does not list its own viewing.
    audit.record_audit_event(
        action=audit.VIEW_AUDIT_LOG,
        staff_username=_username(),
        detail=f"page {page.number} of {page.page_count}"
        + _described(_audit_filters(filters), False),
        url=_database_url(),
    )
    return render_template(
        "staff/audit.html", page=page, form=form, filter_arguments=arguments, active="audit"
    )
