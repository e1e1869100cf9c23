"""Stores a confirmed appointment request once, and tells the patient the truth about it."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from datetime import date
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.exc import SQLAlchemyError

from actions.forms import (
    FORM_NAME,
    LAST_PERIOD_NOT_APPLICABLE,
    LAST_PERIOD_UNKNOWN,
    reset_request_events,
)
from actions.parsing import SKIPPED
from appointments.requests import AppointmentRequestDetails, save_appointment_request
from clinic.settings import load_clinic_settings

# Patient details never go into these log lines: only references, channels and error types.
logger = logging.getLogger(__name__)

CHANNEL_FOR_INPUT_CHANNEL = {"socketio": "web", "web": "web", "twilio": "sms", "sms": "sms"}


class MissingAnswerError(ValueError):
    """A slot the request needs is empty, so the request must not be stored as complete."""


def channel_for(input_channel: Optional[str]) -> str:
    """web, sms or rest, as stored with the request."""
    return CHANNEL_FOR_INPUT_CHANNEL.get(input_channel or "", "rest")


def _required(slots: Dict[Text, Any], name: str) -> Any:
    value = slots.get(name)
    if value in (None, ""):
        raise MissingAnswerError(name)
    return value


def _optional_date(value: Any) -> Optional[date]:
    return date.fromisoformat(value) if value else None


def details_from_slots(slots: Dict[Text, Any]) -> AppointmentRequestDetails:
    """The request as the data layer stores it, from the form's slots."""
    last_period = _required(slots, "last_period")
    email = _required(slots, "email")
    doctor = _required(slots, "referring_doctor")
    period_is_a_date = last_period not in (LAST_PERIOD_NOT_APPLICABLE, LAST_PERIOD_UNKNOWN)
    return AppointmentRequestDetails(
        full_name=_required(slots, "full_name"),
        date_of_birth=date.fromisoformat(_required(slots, "date_of_birth")),
        date_of_birth_raw=slots.get("date_of_birth_raw") or "",
        phone_e164=_required(slots, "phone"),
        phone_raw=slots.get("phone_raw") or "",
        email=None if email == SKIPPED else email,
        email_raw=slots.get("email_raw"),
        last_period_start=date.fromisoformat(last_period) if period_is_a_date else None,
        last_period_raw=slots.get("last_period_raw") or "",
        last_period_not_applicable=last_period == LAST_PERIOD_NOT_APPLICABLE,
        suggested_window_start=_optional_date(slots.get("suggested_window_start")),
        suggested_window_end=_optional_date(slots.get("suggested_window_end")),
        preferred_times_raw=_required(slots, "preferred_times"),
        preferred_dates=[date.fromisoformat(value) for value in slots.get("preferred_dates") or []],
        possibly_pregnant=_required(slots, "possibly_pregnant"),
        contrast_allergy=_required(slots, "contrast_allergy"),
        pelvic_infection=_required(slots, "pelvic_infection"),
        referring_doctor=None if doctor == SKIPPED else doctor,
        contact_method=_required(slots, "contact_method"),
    )


def form_run_started_at(events: list[dict[str, Any]]) -> float | None:
    """When the latest run of the appointment form began: its latest activation's timestamp.

    Each run (a new request, or the form reopened to change an answer) activates the form
    again, so a second request with the same answers gets a key of its own, while every
    delivery of one run's confirmation carries the same tracker and so the same timestamp.
    """
    for event in reversed(events):
        if event.get("event") == "active_loop" and event.get("name") == FORM_NAME:
            return event.get("timestamp")
    return None


def idempotency_key(
    conversation_id: str, form_run: float | None, details: AppointmentRequestDetails
) -> str:
    """One key per run of the form: a doubled confirmation of that run finds its row again."""
    canonical = json.dumps(
        {"form_run": form_run, "answers": dataclasses.asdict(details)},
        sort_keys=True,
        default=str,
        ensure_ascii=False,
    )
    return hashlib.sha256(f"{conversation_id}\n{canonical}".encode()).hexdigest()


class ActionSubmitAppointmentRequest(Action):
    """Saves the confirmed request and gives the reference, or says plainly that it failed."""

    def name(self) -> Text:
        return "action_submit_appointment_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        slots = dict(tracker.slots)
        try:
            details = details_from_slots(slots)
        except (ValueError, TypeError) as error:
            # The exception text can quote an answer, so only its type is logged.
            logger.error(
                "Appointment request is incomplete and was not saved: %s", type(error).__name__
            )
            dispatcher.utter_message(response="utter_appointment_request_not_saved")
            return []

        channel = channel_for(tracker.get_latest_input_channel())
        try:
            # The database call blocks; a worker thread keeps other conversations moving.
            reference = await asyncio.to_thread(
                save_appointment_request,
                details,
                conversation_id=tracker.sender_id,
                channel=channel,
                idempotency_key=idempotency_key(
                    tracker.sender_id, form_run_started_at(tracker.events), details
                ),
            )
        except (SQLAlchemyError, OSError, RuntimeError) as error:
            # The message of a database error can contain the statement's values.
            logger.error(
                "Could not save an appointment request (channel %s): %s",
                channel,
                type(error).__name__,
            )
            # The answers stay in the slots, so Confirm can be tapped again later.
            dispatcher.utter_message(response="utter_appointment_request_not_saved")
            return []

        logger.info("Appointment request %s confirmed on channel %s", reference, channel)
        dispatcher.utter_message(
            response="utter_appointment_request_saved",
            reference=reference,
            callback_sentence=load_clinic_settings().callback_sentence,
        )
        return reset_request_events()
