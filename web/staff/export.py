"""CSV export of appointment requests: UTF-8 that spreadsheets open safely."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import date, datetime, tzinfo

from appointments.models import AppointmentRequest
from appointments.screening import stored_request_reasons

# A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV Injection");
# tab and carriage return can hide such a start.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """The cell as text: a leading apostrophe stops a spreadsheet evaluating it."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def _columns(zone: tzinfo) -> list[tuple[str, Callable[[AppointmentRequest], object]]]:
    return [
        ("reference", lambda r: r.reference),
        ("received", lambda r: r.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")),
        ("status", lambda r: r.status),
        ("channel", lambda r: r.channel),
        ("needs_attention", lambda r: r.needs_attention),
        ("attention_reasons", lambda r: "; ".join(stored_request_reasons(r))),
        ("full_name", lambda r: r.full_name),
        ("date_of_birth", lambda r: r.date_of_birth),
        ("date_of_birth_as_given", lambda r: r.date_of_birth_raw),
        ("phone", lambda r: r.phone_e164),
        ("phone_as_given", lambda r: r.phone_raw),
        ("email", lambda r: r.email),
        ("email_as_given", lambda r: r.email_raw),
        ("contact_method", lambda r: r.contact_method),
        ("last_period_start", lambda r: r.last_period_start),
        ("last_period_as_given", lambda r: r.last_period_raw),
        ("last_period_not_applicable", lambda r: r.last_period_not_applicable),
        ("suggested_window_start", lambda r: r.suggested_window_start),
        ("suggested_window_end", lambda r: r.suggested_window_end),
        ("preferred_times_as_given", lambda r: r.preferred_times_raw),
        ("preferred_dates", lambda r: r.preferred_dates),
        ("possibly_pregnant", lambda r: r.possibly_pregnant),
        ("contrast_allergy", lambda r: r.contrast_allergy),
        ("pelvic_infection", lambda r: r.pelvic_infection),
        ("referring_doctor", lambda r: r.referring_doctor),
    ]


def requests_csv(requests: Iterable[AppointmentRequest], zone: tzinfo) -> bytes:
    """The requests as CSV in UTF-8 with a byte-order mark, which Excel needs to read UTF-8."""
    columns = _columns(zone)
    buffer = io.StringIO()
    # Every cell quoted, and CRLF line ends as RFC 4180 has them.
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow([name for name, _ in columns])
    for request in requests:
        writer.writerow([neutralize(_text(value(request))) for _, value in columns])
    return buffer.getvalue().encode("utf-8-sig")
