"""The staff area's forms. Every POST form is a FlaskForm and so carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
)
from wtforms.form import Form
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, Optional, ValidationError

from appointments.audit import ACTION_LABELS
from appointments.request_review import (
    EARLIEST_FILTER_DATE,
    LATEST_FILTER_DATE,
    MAX_NOTE_LENGTH,
    MAX_SEARCH_LENGTH,
    STATUS_LABELS,
    STATUSES,
)
from appointments.requests import CHANNELS
from appointments.staff_accounts import MAX_PASSWORD_LENGTH

CHANNEL_LABELS = {"web": "Website chat", "sms": "SMS", "rest": "Other (API)"}
ALL = ("", "All")


class LoginForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
    submit = SubmitField("Sign in")


class SearchForm(FlaskForm):
    # Posted, never a query parameter, never kept in the session cookie: names and phone numbers
    # must stay out of URLs, logs and cookies. The result page is the answer to the post itself.
    q = StringField(
        "Search by name, phone or reference",
        validators=[Length(max=MAX_SEARCH_LENGTH)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "type": "search"},
    )
    submit = SubmitField("Search")


def within_filter_dates(form: Form, field: DateField) -> None:
    """A typo such as 0202 or 9999 is explained rather than overflowing the day arithmetic."""
    if field.data is not None and not EARLIEST_FILTER_DATE <= field.data <= LATEST_FILTER_DATE:
        raise ValidationError(
            f"Enter a date between {EARLIEST_FILTER_DATE} and {LATEST_FILTER_DATE}."
        )


class FilterForm(Form):
    """The list's filters, as GET parameters: they hold no patient details."""

    status = SelectField(
        "Status",
        choices=[ALL, *((status, STATUS_LABELS[status]) for status in STATUSES)],
        validators=[Optional(), AnyOf(("", *STATUSES))],
        default="",
    )
    channel = SelectField(
        "Channel",
        choices=[ALL, *((channel, CHANNEL_LABELS[channel]) for channel in sorted(CHANNELS))],
        validators=[Optional(), AnyOf(("", *CHANNELS))],
        default="",
    )
    created_from = DateField("Received from", validators=[Optional(), within_filter_dates])
    created_to = DateField("Received to", validators=[Optional(), within_filter_dates])
    attention = BooleanField("Only requests needing attention")
    flagged = BooleanField("Only flagged requests (replies and texts that need staff)")

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and self.created_from.data and self.created_to.data:
            if self.created_from.data > self.created_to.data:
                self.created_to.errors.append("The end date is before the start date.")
                return False
        return valid


class ExportForm(FlaskForm):
    """The export button: filters go in its action URL, the search (if any) in this body."""

    q = HiddenField(validators=[Length(max=MAX_SEARCH_LENGTH)])
    submit = SubmitField("Export CSV")


class StatusChangeForm(FlaskForm):
    expected_status = HiddenField(validators=[InputRequired(), AnyOf(STATUSES)])
    to_status = SelectField("New status", validators=[InputRequired()], choices=[])
    note = TextAreaField(
        "Note (optional)",
        validators=[Optional(), Length(max=MAX_NOTE_LENGTH)],
        render_kw={"rows": 3, "maxlength": MAX_NOTE_LENGTH},
    )
    # Needed when the new status is "scheduled"; in the clinic's time zone.
    appointment_date = DateField("Appointment date (for Scheduled)", validators=[Optional()])
    appointment_time = TimeField("Appointment time (for Scheduled)", validators=[Optional()])
    submit = SubmitField("Update status")


class RescheduleForm(FlaskForm):
    """A new date and time for a scheduled appointment; its texts are planned again."""

    expected_version = HiddenField(validators=[InputRequired()])
    appointment_date = DateField("New date", validators=[InputRequired()])
    appointment_time = TimeField("New time", validators=[InputRequired()])
    submit = SubmitField("Reschedule")


class ClearFlagsForm(FlaskForm):
    submit = SubmitField("Mark flags as dealt with")


class AuditFilterForm(Form):
    staff_username = StringField("Staff username", validators=[Optional(), Length(max=64)])
    action = SelectField(
        "Action",
        choices=[ALL, *ACTION_LABELS.items()],
        validators=[Optional(), AnyOf(("", *ACTION_LABELS))],
        default="",
    )
    reference = StringField("Request reference", validators=[Optional(), Length(max=16)])
