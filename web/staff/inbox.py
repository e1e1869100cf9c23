"""The staff inbox (/staff/inbox): conversations that need a person, take over, write, hand back.

Pages are plain forms (post, then redirect); web/staff/static/live.js polls the small JSON
endpoints below to keep the inbox, the navigation's count and an open conversation up to date
without reloading. Viewing the inbox and a conversation, taking over, every message and every
hand-back are audited; the polls that follow a viewed page are not (one event per page view).
Conversations are named by their inbox number in every URL, never by their id (on SMS the id is
the patient's phone number).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from appointments import audit
from appointments.handoffs import HELD
from appointments.models import utc_now
from handoff import takeover
from web.staff.transcript import TranscriptUnavailableError, live_messages
from web.staff.views import blueprint

logger = logging.getLogger(__name__)

UNREACHABLE_MESSAGE = (
    "The assistant's server could not be reached, so nothing was sent. Try again in a moment."
)


def _database_url() -> str | None:
    return current_app.config.get("DATABASE_URL")


def _username() -> str:
    return current_user.username


def _release_idle_holds() -> None:
    """Held conversations whose holder went quiet go back to the inbox (see handoff/takeover.py).

    Done whenever a staff page or poll asks about the inbox, so no separate worker is needed
    while anyone is signed in; `python -m handoff release-idle` does it from cron too.
    """
    try:
        takeover.release_idle_holds(
            current_app.config["STAFF_TAKEOVER_IDLE"], now=_now(), url=_database_url()
        )
    except takeover.RasaApiError as error:
        logger.warning("Idle holds not released: %s", error)


def _now():
    # Tests set STAFF_CLOCK to control time; everyone else gets the real clock.
    clock = current_app.config.get("STAFF_CLOCK")
    return clock() if clock else utc_now()


def _conversation_or_404(handoff_id: int) -> takeover.Conversation:
    found = takeover.conversation(handoff_id, url=_database_url())
    if found is None:
        abort(404)
    return found


def _waiting_minutes(conversation: takeover.Conversation) -> int:
    return max(0, int((_now() - conversation.created_at).total_seconds() // 60))


def _row_json(conversation: takeover.Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "url": url_for("staff.inbox_conversation", handoff_id=conversation.id),
        "reason": conversation.reason_label,
        "channel": conversation.channel_label,
        "waiting_minutes": _waiting_minutes(conversation),
        "reference": conversation.request_reference,
        "status": conversation.status,
        "held_by": conversation.held_by,
    }


@blueprint.app_context_processor
def inbox_count() -> dict[str, Any]:
    """The navigation's count of conversations waiting for a person."""
    if not current_user.is_authenticated or request.blueprint != "staff":
        return {}
    return {"inbox_waiting": takeover.waiting_count(url=_database_url())}


@blueprint.route("/inbox")
@login_required
def inbox() -> str:
    """Conversations that need a person, newest first; audited."""
    _release_idle_holds()
    conversations = takeover.inbox(url=_database_url())
    audit.record_audit_event(
        action=audit.VIEW_INBOX,
        staff_username=_username(),
        detail=f"{len(conversations)} conversation(s)",
        url=_database_url(),
    )
    return render_template(
        "staff/inbox.html",
        conversations=[_row_json(conversation) for conversation in conversations],
        active="inbox",
    )


@blueprint.route("/inbox.json")
@login_required
def inbox_json() -> Any:
    """The inbox rows and the waiting count, for the page's and the navigation's polling."""
    _release_idle_holds()
    conversations = takeover.inbox(url=_database_url())
    return jsonify(
        waiting=sum(1 for conversation in conversations if conversation.status != HELD),
        conversations=[_row_json(conversation) for conversation in conversations],
    )


@blueprint.route("/inbox/<int:handoff_id>")
@login_required
def inbox_conversation(handoff_id: int) -> str:
    """One conversation: its messages (updated live), take over, write, hand back; audited."""
    _release_idle_holds()
    conversation = _conversation_or_404(handoff_id)
    audit.record_audit_event(
        action=audit.VIEW_CONVERSATION,
        staff_username=_username(),
        request_reference=conversation.request_reference,
        detail=f"conversation #{conversation.id} ({conversation.channel_label})",
        url=_database_url(),
    )
    try:
        messages = live_messages(
            conversation.conversation_id,
            url=current_app.config.get("TRACKER_DATABASE_URL"),
            since=conversation.created_at,
        )
        unavailable = False
    except TranscriptUnavailableError:
        messages, unavailable = [], True
    return render_template(
        "staff/inbox_conversation.html",
        conversation=conversation,
        row=_row_json(conversation),
        messages=messages,
        last_event_id=messages[-1].event_id if messages else 0,
        transcript_unavailable=unavailable,
        holds_it=conversation.status == HELD and conversation.held_by == _username(),
        max_length=takeover.MAX_STAFF_MESSAGE_LENGTH,
        active="inbox",
    )


@blueprint.route("/inbox/<int:handoff_id>/messages.json")
@login_required
def inbox_messages(handoff_id: int) -> Any:
    """Messages newer than ``after`` (an event id) and who holds the conversation now."""
    _release_idle_holds()
    conversation = _conversation_or_404(handoff_id)
    after = request.args.get("after", 0, type=int)
    try:
        messages = live_messages(
            conversation.conversation_id,
            url=current_app.config.get("TRACKER_DATABASE_URL"),
            since=conversation.created_at,
            after_event_id=after,
        )
    except TranscriptUnavailableError:
        messages = []
    return jsonify(
        status=conversation.status,
        held_by=conversation.held_by,
        holds_it=conversation.status == HELD and conversation.held_by == _username(),
        messages=[message.as_json() for message in messages],
    )


def _back(handoff_id: int) -> Any:
    return redirect(url_for("staff.inbox_conversation", handoff_id=handoff_id))


@blueprint.route("/inbox/<int:handoff_id>/take-over", methods=["POST"])
@login_required
def inbox_take_over(handoff_id: int) -> Any:
    """Holds the conversation for the signed-in member of staff and pauses the assistant."""
    _conversation_or_404(handoff_id)
    try:
        takeover.take_over(handoff_id, _username(), url=_database_url())
    except takeover.HoldError as error:
        flash(str(error), "error")
    except takeover.RasaApiError:
        flash(UNREACHABLE_MESSAGE, "error")
    else:
        flash("You have taken over this conversation. The assistant is paused.", "success")
    return _back(handoff_id)


@blueprint.route("/inbox/<int:handoff_id>/message", methods=["POST"])
@login_required
def inbox_send_message(handoff_id: int) -> Any:
    """Sends the posted text to the patient, on her channel; only the holder may."""
    _conversation_or_404(handoff_id)
    try:
        takeover.send_staff_message(
            handoff_id, _username(), request.form.get("text", ""), url=_database_url()
        )
    except takeover.HoldError as error:
        flash(str(error), "error")
    except ValueError as error:
        flash(str(error), "error")
    except takeover.RasaApiError:
        flash(UNREACHABLE_MESSAGE, "error")
    return _back(handoff_id)


@blueprint.route("/inbox/<int:handoff_id>/warning-answer", methods=["POST"])
@login_required
def inbox_send_warning_answer(handoff_id: int) -> Any:
    """Sends the assistant's warning-signs answer (doctor now, phone, 911); only the holder may."""
    _conversation_or_404(handoff_id)
    try:
        takeover.send_warning_signs_answer(handoff_id, _username(), url=_database_url())
    except takeover.HoldError as error:
        flash(str(error), "error")
    except takeover.RasaApiError:
        flash(UNREACHABLE_MESSAGE, "error")
    return _back(handoff_id)


@blueprint.route("/inbox/<int:handoff_id>/hand-back", methods=["POST"])
@login_required
def inbox_hand_back(handoff_id: int) -> Any:
    """Resumes the assistant, which tells the patient; the conversation leaves the inbox."""
    _conversation_or_404(handoff_id)
    try:
        takeover.hand_back(handoff_id, _username(), url=_database_url())
    except takeover.HoldError as error:
        flash(str(error), "error")
        return _back(handoff_id)
    except takeover.RasaApiError:
        flash(UNREACHABLE_MESSAGE, "error")
        return _back(handoff_id)
    flash("Handed back to the assistant.", "success")
    return redirect(url_for("staff.inbox"))


@blueprint.route("/inbox/<int:handoff_id>/close", methods=["POST"])
@login_required
def inbox_close(handoff_id: int) -> Any:
    """Takes a waiting conversation out of the inbox without joining it; audited."""
    _conversation_or_404(handoff_id)
    try:
        takeover.close_without_joining(handoff_id, _username(), url=_database_url())
    except takeover.HoldError as error:
        flash(str(error), "error")
        return _back(handoff_id)
    flash("Closed without joining. The assistant carries on.", "success")
    return redirect(url_for("staff.inbox"))
