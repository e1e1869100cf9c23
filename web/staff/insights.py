"""What the assistant could not answer (/staff/insights): admins only, audited, with a CSV export.

The texts are patients' own words, so health information: the page and the export are for
admins, each view and export is audited (counts only), and the rows are purged with the
retention rules (appointments/retention.py).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from flask import Response, current_app, render_template, request

from appointments import audit
from appointments.database import session_scope
from appointments.models import utc_now
from appointments.unanswered import KIND_LABELS, unanswered_since
from insights.grouping import Message, counts_per_week_and_channel, group_messages, week_of
from web.staff.auth import admin_required
from web.staff.export import neutralize
from web.staff.views import blueprint, clinic_zone

DEFAULT_WEEKS = 12
MAX_WEEKS = 104
CHANNEL_LABELS = {"socketio": "web chat", "twilio": "SMS", "rest": "REST"}


def _database_url() -> str | None:
    return current_app.config.get("DATABASE_URL")


def _weeks() -> int:
    weeks = request.args.get("weeks", DEFAULT_WEEKS, type=int) or DEFAULT_WEEKS
    return min(max(weeks, 1), MAX_WEEKS)


def _messages(weeks: int) -> list[Message]:
    with session_scope(_database_url()) as session:
        rows = unanswered_since(session, utc_now() - timedelta(weeks=weeks))
        return [Message(row.text, row.kind, row.channel, row.occurred_at) for row in rows]


@blueprint.route("/insights")
@admin_required
def insights() -> str:
    """Unanswered messages grouped by meaning, with counts per week and channel; audited."""
    weeks = _weeks()
    messages = _messages(weeks)
    groups = group_messages(messages)
    week_rows, channels, counts = counts_per_week_and_channel(messages, clinic_zone())
    audit.record_audit_event(
        action=audit.VIEW_INSIGHTS,
        staff_username=_username(),
        detail=f"{len(messages)} message(s) in {len(groups)} group(s), last {weeks} weeks",
        url=_database_url(),
    )
    return render_template(
        "staff/insights.html",
        groups=groups,
        weeks=weeks,
        week_rows=week_rows,
        channels=channels,
        counts=counts,
        total=len(messages),
        kind_labels=KIND_LABELS,
        insight_channel_labels=CHANNEL_LABELS,
        active="insights",
    )


def _username() -> str:
    from flask_login import current_user

    return current_user.username


@blueprint.route("/insights/export", methods=["POST"])
@admin_required
def export_insights() -> Response:
    """Every unanswered text of the period with its group, as CSV, for the training-data team."""
    weeks = _weeks()
    messages = _messages(weeks)
    zone = clinic_zone()
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(["group", "group_label", "received", "week", "kind", "channel", "text"])
    for number, group in enumerate(group_messages(messages), start=1):
        for message in group.messages:
            writer.writerow(
                [
                    number,
                    neutralize(group.label),
                    message.occurred_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                    week_of(message.occurred_at, zone),
                    KIND_LABELS.get(message.kind, message.kind),
                    CHANNEL_LABELS.get(message.channel, message.channel),
                    neutralize(message.text),
                ]
            )
    audit.record_audit_event(
        action=audit.EXPORT_INSIGHTS,
        staff_username=_username(),
        detail=f"CSV of {len(messages)} unanswered message(s), last {weeks} weeks",
        url=_database_url(),
    )
    stamp = utc_now().astimezone(zone).strftime("%Y%m%d-%H%M")
    return Response(
        output.getvalue().encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="hsg-unanswered-{stamp}.csv"',
        },
    )
