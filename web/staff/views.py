"""The staff area's pages under /staff: sign-in, request list and detail, export, audit log."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
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
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from appointments import audit
from appointments.models import AppointmentRequest, utc_now
from appointments.request_review import (
    NEXT_STATUSES,
    REFERENCE_PATTERN,
    STATUS_LABELS,
    RequestFilters,
    StaleStatusError,
    StatusChangeError,
    change_status,
    count_new_requests,
    list_requests,
    requests_for_export,
    status_history,
)
from appointments.requests import get_appointment_request
from appointments.staff_accounts import (
    LOCKOUT_DURATION,
    MAX_FAILED_LOGINS,
    LoginOutcome,
    authenticate,
    end_all_sessions,
)
from clinic.settings import load_clinic_settings
from web.staff.auth import StaffIdentity, admin_required, login_manager
from web.staff.export import requests_csv
from web.staff.forms import (
    CHANNEL_LABELS,
    AuditFilterForm,
    FilterForm,
    LoginForm,
    PostOnlyForm,
    SearchForm,
    StatusChangeForm,
)
from web.staff.settings import clinic_timezone
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
FILTER_PARAMETERS = ("status", "channel", "created_from", "created_to", "attention")
SEARCH_SESSION_KEY = "staff_search"
LAST_SEEN_SESSION_KEY = "staff_last_seen"
# No scripts at all, and nothing from anywhere else.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
LOGIN_FAILED_MESSAGE = (
    "That username and password did not match, or the account is locked. "
    f"After {MAX_FAILED_LOGINS} failed attempts in a row an account is locked for "
    f"{int(LOCKOUT_DURATION.total_seconds() // 60)} minutes."
)
ANSWER_LABELS = {"yes": "Yes", "no": "No", "unsure": "Not sure"}
SCREENING_QUESTIONS = (
    ("possibly_pregnant", "Could be pregnant"),
    ("contrast_allergy", "Allergy or reaction to iodine / contrast dye"),
    ("pelvic_infection", "Pelvic infection now, or signs of one"),
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
    if request.endpoint == "staff.static":
        return None
    session.permanent = True
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
    # Set before the app-wide defaults (which only fill in what is missing), so these win.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "staff.static":
        # Patient details must not stay in the browser's or a proxy's cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


@blueprint.context_processor
def template_context() -> dict[str, Any]:
    return {
        "clinic_name": load_clinic_settings().name,
        "csrf_token": generate_csrf,
        "status_labels": STATUS_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "answer_labels": ANSWER_LABELS,
        "action_labels": audit.ACTION_LABELS,
    }


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
    return _error_page(error)


@blueprint.errorhandler(403)
def forbidden(error: HTTPException) -> tuple[str, int]:
    error.description = "This page is for staff with the admin role."
    return _error_page(error)


@blueprint.errorhandler(404)
def not_found(error: HTTPException) -> tuple[str, int]:
    error.description = "There is no such request or page. Check the reference and try again."
    return _error_page(error)


@blueprint.errorhandler(OperationalError)
def database_unavailable(error: OperationalError) -> tuple[str, int]:
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


def _audit_login(outcome: LoginOutcome, username: str, failures: int) -> None:
    events = {
        LoginOutcome.SUCCESS: (audit.LOGIN, username, ""),
        LoginOutcome.WRONG_PASSWORD: (
            audit.LOGIN_FAILED,
            username,
            f"wrong password ({failures} of {MAX_FAILED_LOGINS} before a lockout)",
        ),
        LoginOutcome.LOCKED_NOW: (
            audit.ACCOUNT_LOCKED,
            username,
            f"locked for {int(LOCKOUT_DURATION.total_seconds() // 60)} minutes after "
            f"{MAX_FAILED_LOGINS} failed sign-ins",
        ),
        LoginOutcome.LOCKED: (audit.LOGIN_WHILE_LOCKED, username, "refused: account locked"),
        # The typed name is not kept: it may be a password typed into the wrong box.
        LoginOutcome.UNKNOWN_ACCOUNT: (audit.LOGIN_FAILED, None, "unknown or deactivated account"),
    }
    action, staff_username, detail = events[outcome]
    audit.record_audit_event(
        action=action, staff_username=staff_username, detail=detail, url=_database_url()
    )
    if outcome is LoginOutcome.LOCKED_NOW:
        logger.warning("Staff account %s locked after repeated failed sign-ins", username)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("staff.request_list"))
    form = LoginForm()
    error = None
    status = 200
    if request.method == "GET":
        form.next.data = _safe_next(request.args.get("next")) or ""
    elif form.validate_on_submit():
        result = authenticate(form.username.data, form.password.data, url=_database_url())
        username = result.account.username if result.account else ""
        _audit_login(result.outcome, username, result.failed_login_count)
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
    username = _username()
    # Also ends copies of this session cookie anywhere else, and the user's other sessions.
    end_all_sessions(current_user.account.id, url=_database_url())
    audit.record_audit_event(action=audit.LOGOUT, staff_username=username, url=_database_url())
    _end_session("You have signed out.")
    return redirect(url_for("staff.login"))


# --- Requests ---------------------------------------------------------------------------------


def _filter_arguments() -> dict[str, str]:
    """The list's filters from the query string, to carry into links and form actions."""
    return {name: request.args[name] for name in FILTER_PARAMETERS if request.args.get(name)}


def _filters(form: FilterForm) -> RequestFilters:
    """The valid filters of ``form`` plus the search kept in the session; invalid ones are left out."""

    def valid(field: Any) -> Any:
        return None if field.errors or not field.data else field.data

    return RequestFilters(
        status=valid(form.status),
        channel=valid(form.channel),
        created_from=valid(form.created_from),
        created_to=valid(form.created_to),
        needs_attention=bool(form.attention.data),
        search=session.get(SEARCH_SESSION_KEY) or None,
        zone=clinic_zone(),
    )


def _filter_form() -> FilterForm:
    form = FilterForm(request.args)
    if request.args:
        form.validate()
    return form


@blueprint.route("/")
@login_required
def index() -> Response:
    return redirect(url_for("staff.request_list"))


@blueprint.route("/requests")
@login_required
def request_list() -> str:
    filter_form = _filter_form()
    page = list_requests(
        _filters(filter_form),
        page=request.args.get("page", 1, type=int),
        per_page=current_app.config["STAFF_PAGE_SIZE"],
        url=_database_url(),
    )
    return render_template(
        "staff/requests.html",
        page=page,
        filter_form=filter_form,
        filter_arguments=_filter_arguments(),
        search_form=SearchForm(q=session.get(SEARCH_SESSION_KEY, "")),
        search=session.get(SEARCH_SESSION_KEY),
        button_form=PostOnlyForm(),
        new_count=count_new_requests(url=_database_url()),
        active="requests",
    )


@blueprint.route("/requests/search", methods=["POST"])
@login_required
def search() -> Response:
    form = SearchForm()
    if form.validate_on_submit() and form.q.data.strip():
        session[SEARCH_SESSION_KEY] = form.q.data.strip()
    else:
        session.pop(SEARCH_SESSION_KEY, None)
    return redirect(url_for("staff.request_list", **_filter_arguments()))


@blueprint.route("/requests/search/clear", methods=["POST"])
@login_required
def clear_search() -> Response:
    session.pop(SEARCH_SESSION_KEY, None)
    return redirect(url_for("staff.request_list", **_filter_arguments()))


@blueprint.route("/requests/export", methods=["POST"])
@login_required
def export_requests() -> Response:
    filters = _filters(_filter_form())
    rows = requests_for_export(filters, url=_database_url())
    described = [f"{name}={value}" for name, value in _filter_arguments().items()]
    if filters.search:
        described.append("with a search")  # The search term itself may be a patient's name.
    detail = f"CSV of {len(rows)} request(s)" + (f"; {', '.join(described)}" if described else "")
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
    appointment: AppointmentRequest, form: StatusChangeForm, status: int = 200
) -> tuple[str, int]:
    try:
        transcript = load_transcript(
            appointment.conversation_id, url=current_app.config.get("TRACKER_DATABASE_URL")
        )
        transcript_unavailable = False
    except TranscriptUnavailableError:
        transcript, transcript_unavailable = [], True
    screening = [
        (label, getattr(appointment, field), getattr(appointment, field) in ("yes", "unsure"))
        for field, label in SCREENING_QUESTIONS
    ]
    page = render_template(
        "staff/request_detail.html",
        appointment=appointment,
        screening=screening,
        history=status_history(appointment.id, url=_database_url()),
        form=form,
        transcript=transcript,
        transcript_unavailable=transcript_unavailable,
        active="requests",
    )
    return page, status


@blueprint.route("/requests/<reference>")
@login_required
def request_detail(reference: str) -> tuple[str, int]:
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
    appointment = _request_or_404(reference)
    form = _status_form(appointment.status, StatusChangeForm())
    if not form.validate_on_submit():
        return _render_detail(appointment, form, status=400)
    try:
        change = change_status(
            appointment.reference,
            to_status=form.to_status.data,
            expected_status=form.expected_status.data,
            note=form.note.data or "",
            staff_username=_username(),
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


# --- Audit log --------------------------------------------------------------------------------


@blueprint.route("/audit")
@admin_required
def audit_log() -> str:
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
    return render_template(
        "staff/audit.html", page=page, form=form, filter_arguments=arguments, active="audit"
    )
