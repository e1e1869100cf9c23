"""The form's validation action and its helper actions, run on rasa_sdk trackers like the server."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import forms
from actions.forms import (
    FORM_NAME,
    FORM_SLOTS,
    REQUEST_SLOTS,
    ActionAskPhone,
    ActionCancelAppointmentRequest,
    ActionChangeRequestField,
    ActionSummarizeAppointmentRequest,
    ValidateAppointmentRequestForm,
)
from actions.parsing import SKIPPED
from tests.actions.trackers import make_tracker, user_event

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = yaml.safe_load((REPO_ROOT / "domain" / "appointment.yml").read_text())
RESPONSES = DOMAIN["responses"]
TODAY = date(2025, 11, 27)
ACTIVE_FORM = {"name": FORM_NAME}


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forms, "today", lambda: TODAY)
    monkeypatch.setattr(forms, "now", lambda: datetime(2025, 11, 27, 10, 30))


def message(
    text: str,
    intent: str = "inform",
    confidence: float = 0.9,
    channel: str = "rest",
    **parse_extra,
) -> dict:
    event = user_event(text, intent, confidence, **parse_extra)
    event["input_channel"] = channel
    return event


def run(action, tracker) -> tuple[list[dict], dict, list[dict]]:
    """Runs an action; returns its messages, the slots it set (last value wins) and its events."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, DOMAIN))
    slots = {event["name"]: event["value"] for event in events if event["event"] == "slot"}
    return dispatcher.messages, slots, events


def answer(requested: str, text: str, slots: dict | None = None, **message_options):
    """The patient answers the question for ``requested``; returns (responses, slots set)."""
    tracker = make_tracker(
        events=[message(text, **message_options)],
        slots={"requested_slot": requested, **(slots or {})},
        active_loop=ACTIVE_FORM,
        sender_id=message_options.pop("sender_id", "patient-1"),
    )
    messages, set_slots, _ = run(ValidateAppointmentRequestForm(), tracker)
    return [entry.get("response") for entry in messages], set_slots


def test_a_name_and_a_date_of_birth_in_one_message_fill_both() -> None:
    responses, slots = answer("full_name", "I'm Ana Ruiz, born 3/4/1990")
    assert responses == []
    assert slots["full_name"] == "Ana Ruiz"
    assert slots["date_of_birth"] == "1990-03-04"
    assert slots["date_of_birth_raw"] == "I'm Ana Ruiz, born 3/4/1990"


def test_a_phone_and_an_email_given_early_are_kept() -> None:
    _, slots = answer("full_name", "Ana Ruiz, 201-555-0123, ana@example.com")
    assert slots["full_name"] == "Ana Ruiz"
    assert slots["phone"] == "+12015550123"
    assert slots["email"] == "ana@example.com"
    assert "date_of_birth" not in slots


def test_a_volunteered_answer_never_replaces_one_already_given() -> None:
    _, slots = answer("email", "ana@example.com or 646-555-0182", slots={"phone": "+12015550123"})
    assert "phone" not in slots
    assert slots["email"] == "ana@example.com"


@pytest.mark.parametrize(
    ("requested", "text", "hint"),
    [
        ("full_name", "Ana", "utter_invalid_full_name_needs_last_name"),
        ("date_of_birth", "tomorrow", "utter_invalid_date_of_birth_future"),
        ("date_of_birth", "1/1/2020", "utter_invalid_date_of_birth_too_young"),
        ("phone", "+44 20 7946 0958", "utter_invalid_phone_not_us"),
        ("phone", "N/A", "utter_invalid_phone_format"),
        ("email", "ana@", "utter_invalid_email_format"),
        ("last_period", "tomorrow", "utter_invalid_last_period_future"),
        ("preferred_times", "1/1/2020", "utter_invalid_preferred_times_past"),
        ("possibly_pregnant", "purple", "utter_invalid_yes_no_unsure"),
        ("contact_method", "carrier pigeon", "utter_invalid_contact_method_format"),
        ("referring_doctor", "<script>", "utter_invalid_referring_doctor_format"),
        ("full_name", "x" * 10_000, "utter_invalid_too_long"),
        ("full_name", "", "utter_invalid_empty"),
    ],
)
def test_an_unusable_answer_is_cleared_with_a_hint_and_counted(requested, text, hint) -> None:
    responses, slots = answer(requested, text)
    assert responses == [hint]
    assert slots[requested] is None
    assert slots["failed_attempts"] == {requested: 1}


def test_the_third_failed_try_offers_the_phone_line() -> None:
    responses, slots = answer(
        "date_of_birth", "soon", slots={"failed_attempts": {"date_of_birth": 2, "phone": 1}}
    )
    assert responses == ["utter_invalid_date_of_birth_format", "utter_invalid_offer_phone"]
    assert slots["failed_attempts"] == {"date_of_birth": 3, "phone": 1}


@pytest.mark.parametrize("requested", FORM_SLOTS)
@pytest.mark.parametrize(
    "text",
    ["", "😀", "x" * 10_000, "'); DROP TABLE appointment_requests;--", "<img src=x onerror=1>"],
)
def test_no_question_crashes_on_hostile_answers(requested, text) -> None:
    responses, slots = answer(requested, text)
    if requested == "preferred_times" and slots.get(requested):
        # Free text is kept as written, only ever as text: markup and SQL are just words.
        assert slots[requested] == text
    else:
        assert slots[requested] is None
        assert responses


@pytest.mark.parametrize(
    ("text", "intent", "confidence", "extra"),
    [
        ("does it hurt?", "pain", 0.9, {}),
        ("how long does it take", "procedure_duration", 0.7, {}),
        ("I have a fever", "warning_signs", 1.0, {"guard_reason": "warning_sign"}),
        ("cancel", "stop", 0.95, {}),
        ("change my phone number", "change_request_field", 0.9, {}),
        ("can I talk to a person", "human_handoff", 0.8, {}),
    ],
)
def test_a_question_or_stop_mid_form_fills_nothing_so_the_form_lets_a_rule_answer(
    text, intent, confidence, extra
) -> None:
    responses, slots = answer("full_name", text, intent=intent, confidence=confidence, **extra)
    assert responses == []
    assert slots == {}


def test_tell_me_more_is_never_taken_as_an_answer_even_where_any_words_would_do() -> None:
    responses, slots = answer("referring_doctor", "tell me more", intent="ask_more_detail")
    assert responses == []
    assert slots == {}


def test_a_faq_intent_that_is_a_usable_answer_is_taken_as_the_answer() -> None:
    responses, slots = answer(
        "possibly_pregnant", "not sure", intent="pregnancy_concern", confidence=0.7
    )
    assert slots["possibly_pregnant"] == "unsure"
    assert responses == ["utter_screening_noted_possibly_pregnant"]


def test_a_low_confidence_faq_intent_is_still_an_answer() -> None:
    _, slots = answer("full_name", "Ana Ruiz", intent="companion", confidence=0.3)
    assert slots["full_name"] == "Ana Ruiz"


def test_activation_revalidates_nothing_so_raw_answers_survive() -> None:
    tracker = make_tracker(
        events=[message("change my phone number", "change_request_field")],
        slots={"requested_slot": None, "date_of_birth": "1990-03-04", "phone": None},
    )
    assert run(ValidateAppointmentRequestForm(), tracker)[2] == []


@pytest.mark.parametrize("slot", ["possibly_pregnant", "contrast_allergy"])
def test_a_screening_yes_is_stored_with_one_calm_line(slot) -> None:
    responses, slots = answer(slot, "yes")
    assert slots[slot] == "yes"
    assert responses == [f"utter_screening_noted_{slot}"]


def validation_run(requested: str, text: str, **message_options) -> tuple[list[str], list[dict]]:
    """The form's validation for one answer: the responses sent and the events, in order."""
    tracker = make_tracker(
        events=[message(text, **message_options)],
        slots={"requested_slot": requested},
        active_loop=ACTIVE_FORM,
    )
    messages, _, events = run(ValidateAppointmentRequestForm(), tracker)
    return [entry.get("response") for entry in messages], events


def test_signs_of_an_infection_now_get_see_your_doctor_first_and_the_safety_line() -> None:
    responses, events = validation_run("pelvic_infection", "yes, some discharge")
    assert responses == ["utter_screening_see_doctor_pelvic_infection"]
    assert events == [SlotSet("pelvic_infection", "yes")]


def test_not_sure_about_an_infection_is_noted_for_the_team() -> None:
    responses, events = validation_run("pelvic_infection", "not sure")
    assert responses == ["utter_screening_noted_pelvic_infection"]
    assert events == [SlotSet("pelvic_infection", "unsure")]


def test_the_see_your_doctor_line_has_the_safety_net() -> None:
    (variation,) = RESPONSES["utter_screening_see_doctor_pelvic_infection"]
    text = variation["text"]
    assert "Please see your doctor before the test" in text
    assert "{clinic_phone}" in text and "Call 911 in an emergency" in text


@pytest.mark.parametrize("slot", ["possibly_pregnant", "contrast_allergy", "pelvic_infection"])
def test_a_screening_no_needs_no_comment(slot) -> None:
    responses, slots = answer(slot, "/deny", intent="deny")
    assert slots[slot] == "no"
    assert responses == []


def test_a_last_period_date_gives_the_suggested_window() -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        events=[message("Nov 25")],
        slots={"requested_slot": "last_period"},
        active_loop=ACTIVE_FORM,
    )
    events = asyncio.run(ValidateAppointmentRequestForm().run(dispatcher, tracker, DOMAIN))
    assert events == [
        SlotSet("last_period", "2025-11-25"),
        SlotSet("last_period_raw", "Nov 25"),
        SlotSet("suggested_window_start", "2025-12-01"),
        SlotSet("suggested_window_end", "2025-12-06"),
    ]
    assert [entry["response"] for entry in dispatcher.messages] == ["utter_suggested_window"]
    assert dispatcher.messages[0]["window_start"] == "Monday, December 1, 2025"


def test_a_period_35_days_ago_still_gets_a_window_in_the_next_cycle() -> None:
    responses, events = validation_run("last_period", "Oct 23")
    assert responses == ["utter_suggested_window"]
    assert events == [
        SlotSet("last_period", "2025-10-23"),
        SlotSet("last_period_raw", "Oct 23"),
        SlotSet("suggested_window_start", "2025-11-27"),  # today: under way
        SlotSet("suggested_window_end", "2025-12-01"),
    ]


@pytest.mark.parametrize(
    ("text", "start"), [("Oct 22", "2025-10-22"), ("7 weeks ago", "2025-10-09")]
)
def test_a_late_period_asks_for_a_pregnancy_test_instead_of_a_window(text, start) -> None:
    # 36 days and more since the period began: the next one should have come.
    responses, events = validation_run("last_period", text)
    assert responses == ["utter_last_period_late"]
    assert events == [
        SlotSet("last_period", start),
        SlotSet("last_period_raw", text),
        SlotSet("suggested_window_start", None),
        SlotSet("suggested_window_end", None),
    ]


@pytest.mark.parametrize(
    "text", ["no periods", "I'm post menopause", "on the pill, I don't get periods"]
)
def test_no_periods_skips_the_date_and_the_team_arranges_a_pregnancy_check(text) -> None:
    responses, events = validation_run("last_period", text)
    assert responses == ["utter_last_period_none"]
    assert events == [
        SlotSet("last_period", "not_applicable"),
        SlotSet("last_period_raw", text),
        SlotSet("suggested_window_start", None),
        SlotSet("suggested_window_end", None),
    ]


def test_not_sure_of_the_last_period_leaves_the_timing_to_the_team() -> None:
    responses, events = validation_run("last_period", "not sure")
    assert responses == ["utter_last_period_unknown"]
    assert events == [
        SlotSet("last_period", "unknown"),
        SlotSet("last_period_raw", "not sure"),
        SlotSet("suggested_window_start", None),
        SlotSet("suggested_window_end", None),
    ]


@pytest.mark.parametrize(
    ("text", "intent", "hint"),
    [
        # Only patients with no periods skip the date: a bare "not applicable" is asked about.
        ("not applicable", "inform", "utter_invalid_last_period_not_applicable_unclear"),
        # A tubal ligation check must rule out pregnancy too.
        (
            "it's a tubal ligation check",
            "tubal_ligation_check",
            "utter_invalid_last_period_tubal_check",
        ),
        # An HSG needs a uterus; the words are an answer even if they look like a question topic.
        ("I had a hysterectomy", "hsg_purpose", "utter_invalid_last_period_hysterectomy"),
    ],
)
def test_answers_that_cannot_skip_the_date_get_their_own_hint(text, intent, hint) -> None:
    responses, events = validation_run("last_period", text, intent=intent)
    assert responses == [hint]
    assert events == [
        SlotSet("last_period", None),
        SlotSet("failed_attempts", {"last_period": 1}),
    ]


def test_the_form_asks_for_the_date_and_offers_no_periods_not_not_applicable() -> None:
    (variation,) = RESPONSES["utter_ask_last_period"]
    assert "tubal ligation check too" in variation["text"]
    assert [button["payload"] for button in variation["buttons"]] == ["no periods", "not sure"]


def test_the_form_slots_are_the_domain_s_required_slots() -> None:
    assert ValidateAppointmentRequestForm().domain_slots(DOMAIN) == list(FORM_SLOTS)


def test_preferred_times_keep_the_words_and_the_dates() -> None:
    _, slots = answer("preferred_times", "next tuesday afternoon")
    assert slots["preferred_times"] == "next tuesday afternoon"
    assert slots["preferred_dates"] == ["2025-12-02"]


def test_email_can_be_skipped_but_then_not_chosen_as_contact_method() -> None:
    _, slots = answer("email", "skip")
    assert slots["email"] == SKIPPED
    responses, slots = answer("contact_method", "email", slots={"email": SKIPPED})
    assert responses == ["utter_invalid_contact_method_no_email"]
    assert slots["contact_method"] is None
    _, slots = answer("contact_method", "email me", slots={"email": "ana@example.com"})
    assert slots["contact_method"] == "email"


def test_on_sms_the_texting_number_is_offered_and_yes_takes_it() -> None:
    tracker = make_tracker(
        events=[message("hi", channel="twilio")],
        slots={"requested_slot": "phone"},
        sender_id="+12015550123",
    )
    messages, _, _ = run(ActionAskPhone(), tracker)
    assert messages[0]["response"] == "utter_ask_phone_offer_sender"
    assert messages[0]["phone_number"] == "(201) 555-0123"

    _, slots = answer("phone", "yes", channel="twilio", sender_id="+12015550123")
    assert slots["phone"] == "+12015550123"


def test_on_sms_the_number_from_the_channel_metadata_is_offered() -> None:
    event = message("hi", channel="twilio")
    event["metadata"] = {"phone_number": "+16465550182"}
    tracker = make_tracker(events=[event], slots={"requested_slot": "phone"}, sender_id="sms-7")
    messages, _, _ = run(ActionAskPhone(), tracker)
    assert messages[0]["phone_number"] == "(646) 555-0182"


def test_on_sms_no_asks_for_another_number_without_counting_a_failure() -> None:
    responses, slots = answer("phone", "no", channel="twilio", sender_id="+12015550123")
    assert responses == []
    assert slots["phone"] is None
    assert slots["phone_offer_declined"] is True
    tracker = make_tracker(
        events=[message("no", channel="twilio")],
        slots={"requested_slot": "phone", "phone_offer_declined": True},
        sender_id="+12015550123",
    )
    assert run(ActionAskPhone(), tracker)[0][0]["response"] == "utter_ask_phone"


def test_on_sms_a_typed_number_wins_over_the_offer() -> None:
    _, slots = answer("phone", "646-555-0182", channel="twilio", sender_id="+12015550123")
    assert slots["phone"] == "+16465550182"


def test_on_the_web_the_phone_question_is_plain() -> None:
    tracker = make_tracker(events=[message("hi", channel="socketio")], sender_id="abc")
    assert run(ActionAskPhone(), tracker)[0][0]["response"] == "utter_ask_phone"


COMPLETE_SLOTS = {
    "full_name": "Ana Ruiz",
    "date_of_birth": "1990-03-04",
    "date_of_birth_raw": "3/4/1990",
    "phone": "+12015550123",
    "phone_raw": "201 555 0123",
    "email": SKIPPED,
    "email_raw": "skip",
    "last_period": "2025-11-25",
    "last_period_raw": "Nov 25",
    "suggested_window_start": "2025-12-01",
    "suggested_window_end": "2025-12-06",
    "preferred_times": "<b>mornings</b>",
    "preferred_dates": ["2025-12-02"],
    "possibly_pregnant": "no",
    "contrast_allergy": "yes",
    "pelvic_infection": "unsure",
    "referring_doctor": "Dr. Patel",
    "contact_method": "text",
}


def test_the_summary_shows_every_answer_and_marks_the_request_pending() -> None:
    tracker = make_tracker(slots=dict(COMPLETE_SLOTS))
    messages, slots, _ = run(ActionSummarizeAppointmentRequest(), tracker)
    assert slots == {"appointment_request_pending": True}
    summary = messages[0]["summary"]
    assert messages[0]["response"] == "utter_appointment_request_summary"
    for expected in [
        "Ana Ruiz",
        "Sunday, March 4, 1990",
        "(201) 555-0123",
        "Email: not given",
        "Tuesday, November 25, 2025",
        "Monday, December 1, 2025",
        '"<b>mornings</b>"',
        "Allergy or reaction to iodine / contrast dye: Yes",
        "Pelvic infection now, or signs of one: Not sure",
        "Dr. Patel",
        "Contact by: text",
    ]:
        assert expected in summary


@pytest.mark.parametrize(
    ("text", "entities", "cleared"),
    [
        ("/change_request_field", [{"entity": "request_field", "value": "phone"}], "phone"),
        ("change my phone number", [], "phone"),
        ("the email is wrong", [], "email"),
        ("you spelled my name wrong", [], "full_name"),
        ("fix my birthday", [], "date_of_birth"),
        ("change the doctor's name", [], "referring_doctor"),
        ("I answered the pregnancy question wrong", [], "possibly_pregnant"),
        ("different days please", [], "preferred_times"),
        ("change my period date", [], "last_period"),
        ("change the contact method", [], "contact_method"),
        ("change it", [{"entity": "request_field", "value": "mobile number"}], "phone"),
    ],
)
def test_change_clears_the_named_field_and_reopens_the_form(text, entities, cleared) -> None:
    tracker = make_tracker(
        events=[message(text, "change_request_field", entities=entities)],
        slots={**COMPLETE_SLOTS, "appointment_request_pending": True},
    )
    messages, slots, _ = run(ActionChangeRequestField(), tracker)
    assert slots[cleared] is None
    assert slots["appointment_request_pending"] is False
    assert messages[0]["response"] == "utter_update_request_field"
    untouched = set(COMPLETE_SLOTS) - set(slots)
    assert "full_name" in untouched or cleared == "full_name"


def test_change_without_a_field_at_the_summary_asks_which_one() -> None:
    tracker = make_tracker(
        events=[message("/change_request_field", "change_request_field")],
        slots={**COMPLETE_SLOTS, "appointment_request_pending": True},
    )
    messages, slots, events = run(ActionChangeRequestField(), tracker)
    assert messages[0]["response"] == "utter_ask_request_field"
    assert events == []


def test_change_without_a_field_mid_form_carries_on() -> None:
    tracker = make_tracker(
        events=[message("can I change something", "change_request_field")],
        slots={"requested_slot": "email"},
        active_loop=ACTIVE_FORM,
    )
    messages, slots, _ = run(ActionChangeRequestField(), tracker)
    assert messages[0]["response"] == "utter_change_at_summary"
    assert slots == {"appointment_request_pending": False}


def test_cancel_leaves_the_form_and_forgets_the_answers_but_not_the_clinic() -> None:
    tracker = make_tracker(
        events=[message("cancel", "stop")],
        slots={**COMPLETE_SLOTS, "clinic_phone": "800-220-2220", "requested_slot": "email"},
        active_loop=ACTIVE_FORM,
    )
    messages, slots, events = run(ActionCancelAppointmentRequest(), tracker)
    assert messages[0]["response"] == "utter_appointment_request_cancelled"
    assert {"event": "active_loop", "name": None} in [
        {"event": event["event"], "name": event.get("name")}
        for event in events
        if event["event"] == "active_loop"
    ]
    assert set(slots) == set(REQUEST_SLOTS) | {"requested_slot"}
    assert slots.pop("appointment_request_pending") is False
    assert all(value is None for value in slots.values())
    assert not any(name.startswith("clinic_") for name in slots)


@pytest.mark.parametrize(
    ("period", "line"),
    [
        ("not_applicable", "- Last period: no periods (the team will arrange a pregnancy check)"),
        (
            "2025-10-01",
            "- Last period: started Wednesday, October 1, 2025; later than expected: please take "
            "a pregnancy test or call us",
        ),
    ],
)
def test_the_summary_says_what_happens_about_no_or_a_late_period(period, line) -> None:
    slots = {
        **COMPLETE_SLOTS,
        "last_period": period,
        "suggested_window_start": None,
        "suggested_window_end": None,
    }
    messages, _, _ = run(ActionSummarizeAppointmentRequest(), make_tracker(slots=slots))
    assert line in messages[0]["summary"].splitlines()
