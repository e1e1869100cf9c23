"""The appointment request form: one question at a time, each answer checked, then a summary.

Parsing lives in actions/parsing.py; storing the confirmed request in actions/submission.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Dict, List, Optional, Text

import phonenumbers
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.parsing import (
    SKIPPED,
    ParseResult,
    clean_text,
    find_email,
    find_phone,
    is_last_period_answer,
    parse_contact_method,
    parse_date_of_birth,
    parse_email,
    parse_full_name,
    parse_last_period,
    parse_phone,
    parse_preferred_times,
    parse_referring_doctor,
    parse_yes_no_unsure,
    suggested_window,
)
from appointments.screening import (
    ANSWER_LABELS,
    NO,
    SCREENING_FIELDS,
    SCREENING_QUESTIONS,
    UNSURE,
    YES,
    period_is_late,
)

FORM_NAME = "appointment_request_form"
REQUESTED_SLOT = "requested_slot"
PENDING_SLOT = "appointment_request_pending"
FAILED_ATTEMPTS_SLOT = "failed_attempts"
PHONE_OFFER_DECLINED_SLOT = "phone_offer_declined"

# The form's questions, in the order they are asked: the domain's required_slots, which rasa-sdk's
# domain_slots() reads (tests/actions/test_forms.py keeps the two the same). Named here too because
# resetting a request happens outside the form, and the data layer names them (appointments/).
FORM_SLOTS = (
    "full_name",
    "date_of_birth",
    "phone",
    "email",
    "last_period",
    "preferred_times",
    "possibly_pregnant",
    "contrast_allergy",
    "pelvic_infection",
    "referring_doctor",
    "contact_method",
)
SCREENING_SLOTS = SCREENING_FIELDS
# Every slot of one request; the clinic_* slots set at session start are never among them.
REQUEST_SLOTS = FORM_SLOTS + (
    "date_of_birth_raw",
    "phone_raw",
    "email_raw",
    "last_period_raw",
    "suggested_window_start",
    "suggested_window_end",
    "preferred_dates",
    FAILED_ATTEMPTS_SLOT,
    PHONE_OFFER_DECLINED_SLOT,
    PENDING_SLOT,
)

# last_period slot values besides an ISO date. "not_applicable": the patient has no periods.
LAST_PERIOD_NOT_APPLICABLE = "not_applicable"
LAST_PERIOD_UNKNOWN = "unknown"
# extract_phone's value when an SMS patient says the number they text from is not the one to use.
DECLINED_SENDER_NUMBER = "__declined_sender_number__"

# The FAQ topics (nlu_contract/topics.yml, domain/faq.yml): asked mid-form, they are answered
# and the form resumes, instead of being taken as an answer.
FAQ_INTENTS = frozenset(
    {
        "what_is_hsg",
        "hsg_purpose",
        "tubal_ligation_check",
        "procedure_steps",
        "procedure_duration",
        "pain",
        "prep_timing",
        "prep_medication",
        "prep_other",
        "pregnancy_concern",
        "contrast_allergy",
        "risks",
        "aftercare_symptoms",
        "aftercare_activities",
        "warning_signs",
        "results",
        "fertility_after",
        "radiation_safety",
        "cost_insurance",
        "location_hours_contact",
        "companion",
    }
)
QUESTION_INTENTS = FAQ_INTENTS | {"human_handoff", "bot_challenge"}
LEAVE_FORM_INTENTS = frozenset({"stop", "change_request_field"})
# Never an answer, whatever the words would parse as. "Tell me more" gets its answer and the form
# resumes, as after a question, but the referring doctor's question would take its words as a name.
NOT_AN_ANSWER_INTENTS = LEAVE_FORM_INTENTS | {"ask_more_detail"}
# Below this the classifier is guessing, and the message is more likely an answer.
INTERRUPTION_CONFIDENCE = 0.5
SMS_CHANNELS = frozenset({"twilio"})
SMS_PHONE_METADATA_KEY = "phone_number"  # channels/twilio_sms.py, PHONE_NUMBER_METADATA_KEY
FAILED_ATTEMPTS_BEFORE_PHONE_OFFER = 3

# Fields a patient can ask to change, with the slots that hold each one's answer.
FIELD_SLOTS = {
    "full_name": ("full_name",),
    "date_of_birth": ("date_of_birth", "date_of_birth_raw"),
    "phone": ("phone", "phone_raw"),
    "email": ("email", "email_raw"),
    "last_period": (
        "last_period",
        "last_period_raw",
        "suggested_window_start",
        "suggested_window_end",
    ),
    "preferred_times": ("preferred_times", "preferred_dates"),
    "screening": SCREENING_SLOTS,
    "referring_doctor": ("referring_doctor",),
    "contact_method": ("contact_method",),
}
FIELD_LABELS = {
    "full_name": "name",
    "date_of_birth": "date of birth",
    "phone": "phone number",
    "email": "email",
    "last_period": "last period date",
    "preferred_times": "preferred days and times",
    "screening": "answers to the health questions",
    "referring_doctor": "referring doctor",
    "contact_method": "contact method",
}
# Words that name a field, checked in this order ("doctor's name" is the doctor, not the name),
# for typed requests like "change my phone number" and for request_field entity synonyms.
FIELD_WORDS = (
    ("referring_doctor", ("doctor", "dr", "physician", "referr", "gp", "ob/gyn", "obgyn")),
    ("contact_method", ("contact", "reach me", "way")),
    ("email", ("email", "e-mail", "mail")),
    ("phone", ("phone", "mobile", "cell", "number")),
    ("date_of_birth", ("date of birth", "birth", "dob")),
    ("last_period", ("period", "cycle", "lmp", "menstrua")),
    ("screening", ("pregnan", "allerg", "infection", "health", "screening", "dye", "iodine")),
    ("preferred_times", ("time", "day", "date", "when", "schedul", "availab", "prefer")),
    ("full_name", ("name", "spell")),
)


def today() -> date:
    """Today's date for checking answers (a function so tests can fix it)."""
    return date.today()


def now() -> datetime:
    return datetime.now()


def intent_of(tracker: Tracker) -> tuple[Optional[str], float]:
    intent = (tracker.latest_message or {}).get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)


def answer_text(tracker: Tracker) -> str:
    """The patient's latest words; a yes/no button payload ("/affirm") counts as "yes"/"no"."""
    text = (tracker.latest_message or {}).get("text") or ""
    if text.startswith("/"):
        return {"affirm": "yes", "deny": "no"}.get(intent_of(tracker)[0], "")
    return text


def is_interruption(tracker: Tracker, parses_as_answer: bool) -> bool:
    """True when the latest message is not an answer: stop, change, "tell me more", or a question.

    A question topic only interrupts when the words are not a usable answer or end in "?":
    "not sure" may look like pregnancy_concern to the classifier but answers the question.
    """
    intent, confidence = intent_of(tracker)
    if (tracker.latest_message or {}).get("guard_reason") == "warning_sign":
        return True
    if intent in NOT_AN_ANSWER_INTENTS and confidence >= INTERRUPTION_CONFIDENCE:
        return True
    if intent in QUESTION_INTENTS and confidence >= INTERRUPTION_CONFIDENCE:
        return not parses_as_answer or "?" in answer_text(tracker)
    return False


def sender_number_to_offer(tracker: Tracker) -> Optional[str]:
    """On SMS, the E.164 number the patient is texting from, unless they said not to use it."""
    if tracker.get_latest_input_channel() not in SMS_CHANNELS:
        return None
    if tracker.get_slot(PHONE_OFFER_DECLINED_SLOT):
        return None
    # channels/twilio_sms.py puts the sender's number in the message metadata; the
    # conversation id is the same number, sometimes prefixed with the transport ("whatsapp:").
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    if not metadata:
        latest_user_event = next(
            (event for event in reversed(tracker.events) if event.get("event") == "user"), {}
        )
        metadata = latest_user_event.get("metadata") or {}
    sender = str(metadata.get(SMS_PHONE_METADATA_KEY) or tracker.sender_id or "")
    sender = sender.rsplit(":", 1)[-1]
    result = parse_phone(sender)
    return result.value if result.ok else None


def display_phone(phone_e164: str) -> str:
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return phone_e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def display_date(value: date) -> str:
    return f"{value:%A}, {value:%B} {value.day}, {value.year}"


def reset_request_events() -> List[EventType]:
    """Forgets one request's answers; the clinic_* slots stay as set at session start."""
    # The pending flag goes back to False, not None: the rules that end a request say so.
    return [SlotSet(slot, False if slot == PENDING_SLOT else None) for slot in REQUEST_SLOTS] + [
        SlotSet(REQUESTED_SLOT, None)
    ]


class ValidateAppointmentRequestForm(FormValidationAction):
    """Extracts and checks each answer; a question asked mid-form extracts nothing."""

    def name(self) -> Text:
        return "validate_appointment_request_form"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[EventType]:
        # At activation (also after "change my phone number") Rasa re-validates the answers
        # already given; they were checked when given, and re-parsing "+12015550123" would
        # overwrite the patient's own words in phone_raw.
        if not tracker.get_slot(REQUESTED_SLOT):
            return []
        return await super().run(dispatcher, tracker, domain)

    # --- extraction: the requested answer, plus answers given ahead of time ---------------

    @staticmethod
    def _requested_answer(
        slot: str, tracker: Tracker, parse: Callable[[str], ParseResult | bool]
    ) -> Dict[Text, Any]:
        """The words answering the question just asked, unless they are a question or "stop".

        ``parse`` gives a ParseResult, or True for words that answer the question even though
        they cannot be used as given (they get their own hint).
        """
        if tracker.get_slot(REQUESTED_SLOT) != slot:
            return {}
        text = answer_text(tracker)
        parsed = parse(text)
        answers = parsed if isinstance(parsed, bool) else parsed.ok
        if is_interruption(tracker, answers):
            return {}
        return {slot: text}

    @staticmethod
    def _volunteered(slot: str, tracker: Tracker, found: Callable[[str], bool]) -> Dict[Text, Any]:
        """An answer to a later question given early ("I'm Ana Ruiz, born 3/4/1990")."""
        requested = tracker.get_slot(REQUESTED_SLOT)
        if requested in (None, slot) or tracker.get_slot(slot) is not None:
            return {}
        text = answer_text(tracker)
        if is_interruption(tracker, parses_as_answer=False) or not found(text):
            return {}
        return {slot: text}

    async def extract_full_name(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("full_name", tracker, parse_full_name)

    async def extract_date_of_birth(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        def parse(text: str) -> ParseResult:
            return parse_date_of_birth(text, today())

        if tracker.get_slot(REQUESTED_SLOT) == "full_name":
            return self._volunteered("date_of_birth", tracker, lambda text: parse(text).ok)
        return self._requested_answer("date_of_birth", tracker, parse)

    async def extract_phone(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot(REQUESTED_SLOT) != "phone":
            return self._volunteered("phone", tracker, lambda text: find_phone(text) is not None)
        answer = self._requested_answer("phone", tracker, parse_phone)
        offered = sender_number_to_offer(tracker)
        if answer and offered and not parse_phone(answer["phone"]).ok:
            reply = parse_yes_no_unsure(answer["phone"]).value
            if reply == YES:
                return {"phone": offered}
            if reply == NO:
                return {"phone": DECLINED_SENDER_NUMBER}
        return answer

    async def extract_email(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot(REQUESTED_SLOT) != "email":
            return self._volunteered("email", tracker, lambda text: find_email(text) is not None)
        return self._requested_answer("email", tracker, parse_email)

    async def extract_last_period(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        # "I had a hysterectomy" is an answer that gets its hint, not a question mid-form.
        return self._requested_answer(
            "last_period", tracker, lambda text: is_last_period_answer(text, today())
        )

    async def extract_preferred_times(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer(
            "preferred_times", tracker, lambda text: parse_preferred_times(text, now())
        )

    async def extract_possibly_pregnant(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("possibly_pregnant", tracker, parse_yes_no_unsure)

    async def extract_contrast_allergy(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("contrast_allergy", tracker, parse_yes_no_unsure)

    async def extract_pelvic_infection(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("pelvic_infection", tracker, parse_yes_no_unsure)

    async def extract_referring_doctor(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("referring_doctor", tracker, parse_referring_doctor)

    async def extract_contact_method(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._requested_answer("contact_method", tracker, parse_contact_method)

    # --- validation: parsed value and the patient's words, or a hint ----------------------

    @staticmethod
    def _reject(
        slot: str, hint: Optional[str], dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> Dict[Text, Any]:
        """Clears the slot; for the question just asked, gives the hint and counts the try."""
        if tracker.get_slot(REQUESTED_SLOT) != slot:
            return {slot: None}
        counts = dict(tracker.get_slot(FAILED_ATTEMPTS_SLOT) or {})
        counts[slot] = int(counts.get(slot, 0)) + 1
        dispatcher.utter_message(response=f"utter_invalid_{hint or 'empty'}")
        if counts[slot] >= FAILED_ATTEMPTS_BEFORE_PHONE_OFFER:
            dispatcher.utter_message(response="utter_invalid_offer_phone")
        return {slot: None, FAILED_ATTEMPTS_SLOT: counts}

    async def validate_full_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_full_name(value)
        if not result.ok:
            return self._reject("full_name", result.hint, dispatcher, tracker)
        return {"full_name": result.value}

    async def validate_date_of_birth(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_date_of_birth(value, today())
        if not result.ok:
            return self._reject("date_of_birth", result.hint, dispatcher, tracker)
        return {"date_of_birth": result.value.isoformat(), "date_of_birth_raw": clean_text(value)}

    async def validate_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if value == DECLINED_SENDER_NUMBER:
            # Not a failed try: the question is simply asked again without the offer.
            return {"phone": None, PHONE_OFFER_DECLINED_SLOT: True}
        result = parse_phone(value)
        if not result.ok:
            return self._reject("phone", result.hint, dispatcher, tracker)
        return {"phone": result.value, "phone_raw": clean_text(value)}

    async def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_email(value)
        if not result.ok:
            return self._reject("email", result.hint, dispatcher, tracker)
        return {"email": result.value, "email_raw": clean_text(value)}

    async def validate_last_period(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_last_period(value, today())
        if not result.ok:
            return self._reject("last_period", result.hint, dispatcher, tracker)
        period = result.value
        slots = {
            "last_period_raw": clean_text(value),
            "suggested_window_start": None,
            "suggested_window_end": None,
        }
        if period.not_applicable:
            # Flagged for staff to arrange a pregnancy check (appointments/screening.py).
            dispatcher.utter_message(response="utter_last_period_none")
            return {**slots, "last_period": LAST_PERIOD_NOT_APPLICABLE}
        if period.start is None:
            dispatcher.utter_message(response="utter_last_period_unknown")
            return {**slots, "last_period": LAST_PERIOD_UNKNOWN}
        if period_is_late(period.start, today()):
            # No window a month away: a pregnancy must be ruled out first. Flagged for staff.
            dispatcher.utter_message(response="utter_last_period_late")
            return {**slots, "last_period": period.start.isoformat()}
        window_start, window_end = suggested_window(period.start, today())
        dispatcher.utter_message(
            response="utter_suggested_window",
            window_start=display_date(window_start),
            window_end=display_date(window_end),
        )
        return {
            **slots,
            "last_period": period.start.isoformat(),
            "suggested_window_start": window_start.isoformat(),
            "suggested_window_end": window_end.isoformat(),
        }

    async def validate_preferred_times(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_preferred_times(value, now())
        if not result.ok:
            return self._reject("preferred_times", result.hint, dispatcher, tracker)
        return {
            "preferred_times": result.value.raw,
            "preferred_dates": [preferred.isoformat() for preferred in result.value.dates],
        }

    def _validate_screening(
        self, slot: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> Dict[Text, Any]:
        result = parse_yes_no_unsure(value)
        answer = result.value
        if not result.ok:
            # A "yes"/"no" the classifier is sure of, worded in a way the list does not know.
            intent, confidence = intent_of(tracker)
            if confidence >= 0.8 and intent in ("affirm", "deny"):
                answer = YES if intent == "affirm" else NO
            else:
                return self._reject(slot, result.hint, dispatcher, tracker)
        if slot == "pelvic_infection" and answer == YES:
            # Signs of an infection now: a doctor first, and the safety line.
            dispatcher.utter_message(response="utter_screening_see_doctor_pelvic_infection")
        elif answer in (YES, UNSURE):
            dispatcher.utter_message(response=f"utter_screening_noted_{slot}")
        return {slot: answer}

    async def validate_possibly_pregnant(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._validate_screening("possibly_pregnant", value, dispatcher, tracker)

    async def validate_contrast_allergy(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._validate_screening("contrast_allergy", value, dispatcher, tracker)

    async def validate_pelvic_infection(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return self._validate_screening("pelvic_infection", value, dispatcher, tracker)

    async def validate_referring_doctor(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_referring_doctor(value)
        if not result.ok:
            return self._reject("referring_doctor", result.hint, dispatcher, tracker)
        return {"referring_doctor": result.value}

    async def validate_contact_method(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        result = parse_contact_method(value)
        if not result.ok:
            return self._reject("contact_method", result.hint, dispatcher, tracker)
        if result.value == "email" and tracker.get_slot("email") in (None, SKIPPED):
            return self._reject("contact_method", "contact_method_no_email", dispatcher, tracker)
        return {"contact_method": result.value}


class ActionAskPhone(Action):
    """Asks for the mobile number; on SMS, offers the number the patient is texting from."""

    def name(self) -> Text:
        return "action_ask_phone"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        offered = sender_number_to_offer(tracker)
        if offered:
            dispatcher.utter_message(
                response="utter_ask_phone_offer_sender", phone_number=display_phone(offered)
            )
        else:
            dispatcher.utter_message(response="utter_ask_phone")
        return []


def summary_lines(slots: Dict[Text, Any]) -> List[str]:
    """The request in plain words, one answer a line, as the patient confirms it."""

    def optional(value: Any) -> str:
        return "not given" if value in (None, SKIPPED, "") else str(value)

    def screening_line(field: str, label: str) -> str:
        answer = slots.get(field)
        return f"- {label}: {ANSWER_LABELS.get(answer, optional(answer))}"

    def iso_display(value: Any) -> str:
        try:
            return display_date(date.fromisoformat(value))
        except (TypeError, ValueError):
            return optional(value)

    last_period = slots.get("last_period")
    if last_period == LAST_PERIOD_NOT_APPLICABLE:
        period_line = "no periods (the team will arrange a pregnancy check)"
    elif last_period in (None, LAST_PERIOD_UNKNOWN):
        period_line = "not sure (the team will plan the timing with you)"
    else:
        period_line = f"started {iso_display(last_period)}"
        if period_is_late(date.fromisoformat(last_period), today()):
            period_line += "; later than expected: please take a pregnancy test or call us"
        elif slots.get("suggested_window_start") and slots.get("suggested_window_end"):
            period_line += (
                f"; suggested window {iso_display(slots['suggested_window_start'])} to "
                f"{iso_display(slots['suggested_window_end'])}, to be confirmed by our team"
            )
    preferred = f'"{optional(slots.get("preferred_times"))}"'
    preferred_dates = slots.get("preferred_dates") or []
    if preferred_dates:
        preferred += " (" + "; ".join(iso_display(value) for value in preferred_dates) + ")"
    phone = slots.get("phone")
    return [
        f"- Name: {optional(slots.get('full_name'))}",
        f"- Date of birth: {iso_display(slots.get('date_of_birth'))}",
        f"- Mobile: {display_phone(phone) if phone else 'not given'}",
        f"- Email: {optional(slots.get('email'))}",
        f"- Last period: {period_line}",
        f"- Preferred days and times: {preferred}",
        *(screening_line(field, label) for field, label in SCREENING_QUESTIONS),
        f"- Referring doctor: {optional(slots.get('referring_doctor'))}",
        f"- Contact by: {optional(slots.get('contact_method'))}",
    ]


class ActionSummarizeAppointmentRequest(Action):
    """Shows every answer with Confirm / Change something / Cancel buttons."""

    def name(self) -> Text:
        return "action_summarize_appointment_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        slots = {slot: tracker.get_slot(slot) for slot in REQUEST_SLOTS}
        dispatcher.utter_message(
            response="utter_appointment_request_summary", summary="\n".join(summary_lines(slots))
        )
        return [SlotSet(PENDING_SLOT, True)]


def field_to_change(tracker: Tracker) -> Optional[str]:
    """The field the patient wants to change: the request_field entity, else words in the text."""
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == "request_field":
            value = str(entity.get("value") or "").strip().lower()
            if value in FIELD_SLOTS:
                return value
            return field_named_in(value)
    return field_named_in(answer_text(tracker))


def field_named_in(text: str) -> Optional[str]:
    words = f" {clean_text(text).lower()} "
    for field, stems in FIELD_WORDS:
        if any(f" {stem}" in words for stem in stems):
            return field
    return None


class ActionChangeRequestField(Action):
    """Clears the answer the patient wants to change, so the form asks for it again."""

    def name(self) -> Text:
        return "action_change_request_field"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        field = field_to_change(tracker)
        form_is_active = tracker.active_loop_name == FORM_NAME
        # The rules go (back) to the form after this event; at the summary, a change without
        # a field named asks which one instead and leaves the request pending.
        go_to_form = [SlotSet(PENDING_SLOT, False)]
        if field is None:
            if form_is_active:
                dispatcher.utter_message(response="utter_change_at_summary")
                return go_to_form
            dispatcher.utter_message(response="utter_ask_request_field")
            return []
        events: List[EventType] = [SlotSet(slot, None) for slot in FIELD_SLOTS[field]]
        if field == "phone":
            events.append(SlotSet(PHONE_OFFER_DECLINED_SLOT, None))
        dispatcher.utter_message(
            response="utter_update_request_field", field_label=FIELD_LABELS[field]
        )
        return events + go_to_form


class ActionCancelAppointmentRequest(Action):
    """Leaves the request on "stop" / "cancel": nothing is stored, and the patient is told so."""

    def name(self) -> Text:
        return "action_cancel_appointment_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        dispatcher.utter_message(response="utter_appointment_request_cancelled")
        return [ActiveLoop(None), *reset_request_events()]
