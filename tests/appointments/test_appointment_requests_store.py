"""Storing appointment requests and SMS opt-outs, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError

from appointments import requests as appointment_requests
from appointments.database import session_scope
from appointments.models import SmsOptOut
from appointments.request_review import change_status
from appointments.requests import (
    AppointmentRequestDetails,
    count_appointment_requests,
    get_appointment_request,
    is_sms_opted_out,
    new_reference,
    save_appointment_request,
    set_sms_opt_out,
)
from appointments.screening import NO_PERIODS_REASON, stored_request_reasons

REFERENCE_PATTERN = re.compile(r"^HSG-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6}$")

DETAILS = AppointmentRequestDetails(
    full_name="Zelda Quintanilla-Okafor",
    date_of_birth=date(1990, 2, 28),
    date_of_birth_raw="28th of Feb 1990",
    phone_e164="+15555550123",
    phone_raw="(555) 555-0123",
    email="zelda.q@example.org",
    email_raw="Zelda.Q@example.org ",
    last_period_start=date(2024, 5, 3),
    last_period_raw="May 3rd",
    last_period_not_applicable=False,
    suggested_window_start=date(2024, 5, 9),
    suggested_window_end=date(2024, 5, 14),
    preferred_times_raw="mornings, ideally the 10th or 13th",
    preferred_dates=[date(2024, 5, 10), date(2024, 5, 13)],
    possibly_pregnant="no",
    contrast_allergy="unsure",
    pelvic_infection="no",
    referring_doctor="Dr. Imogen Vasquez",
    contact_method="email",
)
PATIENT_DETAILS_NOT_TO_LOG = [
    DETAILS.full_name,
    DETAILS.phone_e164,
    DETAILS.phone_raw,
    DETAILS.email,
    DETAILS.date_of_birth_raw,
    DETAILS.referring_doctor,
    "conversation-with-zelda",
]


def _save(url: str, key: str, details: AppointmentRequestDetails = DETAILS) -> str:
    return save_appointment_request(
        details,
        conversation_id="conversation-with-zelda",
        channel="web",
        idempotency_key=key,
        url=url,
    )


def test_new_reference_is_unambiguous_and_random() -> None:
    references = [new_reference() for _ in range(1000)]
    assert all(REFERENCE_PATTERN.match(reference) for reference in references)
    # 31^6 references: two equal ones in 1,000 draws happen about once in 1,800 runs (seen
    # once in CI), so a rare pair is allowed; a broken generator repeats far more often.
    assert len(set(references)) >= 998


def test_save_stores_every_field(database_url: str) -> None:
    before = datetime.now(timezone.utc)
    reference = save_appointment_request(
        DETAILS,
        conversation_id="conversation-with-zelda",
        channel="sms",
        idempotency_key="conversation-with-zelda:1",
        url=database_url,
    )
    after = datetime.now(timezone.utc)

    assert REFERENCE_PATTERN.match(reference)
    stored = get_appointment_request(reference, url=database_url)
    assert stored is not None
    assert stored.reference == reference
    assert stored.idempotency_key == "conversation-with-zelda:1"
    assert stored.conversation_id == "conversation-with-zelda"
    assert stored.channel == "sms"
    assert stored.status == "new"
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    # SQLite keeps microseconds; PostgreSQL too, but allow for clock rounding either way.
    assert before - timedelta(seconds=1) <= stored.created_at <= after + timedelta(seconds=1)
    assert stored.full_name == DETAILS.full_name
    assert stored.date_of_birth == date(1990, 2, 28)
    assert stored.date_of_birth_raw == DETAILS.date_of_birth_raw
    assert stored.phone_e164 == DETAILS.phone_e164
    assert stored.phone_raw == DETAILS.phone_raw
    assert stored.email == DETAILS.email
    assert stored.email_raw == DETAILS.email_raw
    assert stored.last_period_start == date(2024, 5, 3)
    assert stored.last_period_raw == DETAILS.last_period_raw
    assert stored.last_period_not_applicable is False
    assert stored.suggested_window_start == date(2024, 5, 9)
    assert stored.suggested_window_end == date(2024, 5, 14)
    assert stored.preferred_times_raw == DETAILS.preferred_times_raw
    assert stored.preferred_dates == ["2024-05-10", "2024-05-13"]
    assert stored.possibly_pregnant == "no"
    assert stored.contrast_allergy == "unsure"
    assert stored.pelvic_infection == "no"
    assert stored.needs_attention is True
    assert stored.referring_doctor == DETAILS.referring_doctor
    assert stored.contact_method == "email"


def test_save_stores_optional_fields_as_empty(database_url: str) -> None:
    minimal = AppointmentRequestDetails(
        full_name="Sam Lee",
        date_of_birth=date(1985, 7, 1),
        date_of_birth_raw="1/7/85",
        phone_e164="+15555550199",
        phone_raw="555 555 0199",
        last_period_not_applicable=True,
        possibly_pregnant="no",
        contrast_allergy="no",
        pelvic_infection="no",
        contact_method="call",
    )
    stored = get_appointment_request(_save(database_url, "minimal", minimal), url=database_url)
    assert stored is not None
    assert stored.email is None
    assert stored.email_raw is None
    assert stored.last_period_start is None
    assert stored.last_period_not_applicable is True
    assert stored.suggested_window_start is None
    assert stored.suggested_window_end is None
    assert stored.preferred_dates == []
    assert stored.referring_doctor is None
    # No periods: staff arrange a pregnancy check before booking.
    assert stored.needs_attention is True


@pytest.mark.parametrize(
    ("answers", "needs_attention"),
    [
        (("no", "no", "no"), False),
        (("yes", "no", "no"), True),
        (("no", "unsure", "no"), True),
        (("no", "no", "yes"), True),
    ],
)
def test_needs_attention_when_any_screening_answer_is_yes_or_unsure(
    answers: tuple[str, str, str], needs_attention: bool
) -> None:
    pregnant, allergy, infection = answers
    details = replace(
        DETAILS, possibly_pregnant=pregnant, contrast_allergy=allergy, pelvic_infection=infection
    )
    # A week after the period of May 3rd began: on time.
    assert details.needs_attention(date(2024, 5, 10)) is needs_attention


NO_CONCERNS = replace(DETAILS, contrast_allergy="no")


@pytest.mark.parametrize(
    ("received_on", "reasons"),
    [
        (date(2024, 6, 7), []),  # 35 days on: the next period may still come
        (
            date(2024, 6, 8),  # 36 days on: late
            [
                "Period late: the last one started 36 days before the request. The patient was "
                "asked to take a pregnancy test or call"
            ],
        ),
    ],
)
def test_a_late_period_needs_attention(received_on: date, reasons: list[str]) -> None:
    assert NO_CONCERNS.attention_reasons(received_on) == reasons


def test_no_periods_needs_a_pregnancy_check() -> None:
    details = replace(
        NO_CONCERNS,
        last_period_start=None,
        last_period_not_applicable=True,
        suggested_window_start=None,
        suggested_window_end=None,
    )
    assert details.attention_reasons(date(2024, 5, 10)) == [NO_PERIODS_REASON]


def test_the_stored_flag_is_decided_on_the_day_the_row_was_received(database_url: str) -> None:
    # May 3rd, 2024 is long before any day this test runs: late on the day it is stored.
    stored = get_appointment_request(_save(database_url, "late", NO_CONCERNS), url=database_url)
    assert stored is not None
    assert stored.needs_attention is True
    assert stored_request_reasons(stored) == NO_CONCERNS.attention_reasons(
        stored.created_at.astimezone(timezone.utc).date()
    )


def test_screening_answers_and_contact_method_are_validated() -> None:
    with pytest.raises(ValueError, match="possibly_pregnant"):
        replace(DETAILS, possibly_pregnant="Yes")
    with pytest.raises(ValueError, match="contact_method"):
        replace(DETAILS, contact_method="fax")


@pytest.mark.parametrize("missing", ["full_name", "phone_e164", "phone_raw", "date_of_birth_raw"])
def test_required_details_are_validated(missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        replace(DETAILS, **{missing: None})
    with pytest.raises(ValueError, match=missing):
        replace(DETAILS, **{missing: " "})


def test_same_idempotency_key_stores_one_row(database_url: str) -> None:
    first = _save(database_url, "conversation-with-zelda:confirm")
    second = _save(database_url, "conversation-with-zelda:confirm")
    assert first == second
    assert count_appointment_requests(url=database_url) == 1


def test_different_keys_store_separate_rows(database_url: str) -> None:
    first = _save(database_url, "key-1")
    second = _save(database_url, "key-2")
    assert first != second
    assert count_appointment_requests(url=database_url) == 2


def test_a_new_run_after_a_cancelled_request_stores_a_second_row(database_url: str) -> None:
    # Same conversation, same answers: only the key of the new form run differs.
    first = _save(database_url, "run-1")
    change_status(
        first,
        to_status="cancelled",
        expected_status="new",
        note="",
        staff_username="alice",
        url=database_url,
    )
    second = _save(database_url, "run-2")
    retried = _save(database_url, "run-2")

    assert second != first and retried == second
    assert count_appointment_requests(url=database_url) == 2
    cancelled = get_appointment_request(first, url=database_url)
    rebooked = get_appointment_request(second, url=database_url)
    assert (cancelled.status, rebooked.status) == ("cancelled", "new")
    assert cancelled.conversation_id == rebooked.conversation_id == "conversation-with-zelda"


def test_invalid_channel_is_refused(database_url: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        save_appointment_request(
            DETAILS,
            conversation_id="conversation-with-zelda",
            channel="telegram",
            idempotency_key="key",
            url=database_url,
        )
    assert count_appointment_requests(url=database_url) == 0


def test_reference_collision_draws_a_new_reference(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = iter(["HSG-AAAAAA", "HSG-AAAAAA", "HSG-BBBBBB"])
    monkeypatch.setattr(appointment_requests, "new_reference", lambda: next(drawn))
    assert _save(database_url, "key-1") == "HSG-AAAAAA"
    assert _save(database_url, "key-2") == "HSG-BBBBBB"
    assert count_appointment_requests(url=database_url) == 2


def test_database_errors_carry_no_patient_details(database_url: str) -> None:
    reference = _save(database_url, "key-1")
    duplicate = appointment_requests._new_row(
        DETAILS,
        reference=reference,
        conversation_id="conversation-with-zelda",
        channel="web",
        idempotency_key="key-2",
    )
    with pytest.raises(IntegrityError) as raised:
        with session_scope(database_url) as session:
            session.add(duplicate)
    for detail in PATIENT_DETAILS_NOT_TO_LOG:
        assert detail not in str(raised.value)


@pytest.mark.timeout(120)
def test_concurrent_saves_with_distinct_keys_all_stored(database_url: str) -> None:
    start_together = threading.Barrier(50)

    def save(number: int) -> str:
        start_together.wait()
        return _save(database_url, f"conversation-{number}:confirm")

    with ThreadPoolExecutor(max_workers=50) as pool:
        references = list(pool.map(save, range(50)))

    assert len(set(references)) == 50
    assert count_appointment_requests(url=database_url) == 50


@pytest.mark.timeout(120)
def test_concurrent_saves_with_the_same_key_store_one_row(database_url: str) -> None:
    start_together = threading.Barrier(10)

    def save(_: int) -> str:
        start_together.wait()
        return _save(database_url, "conversation-with-zelda:confirm")

    with ThreadPoolExecutor(max_workers=10) as pool:
        references = list(pool.map(save, range(10)))

    assert len(set(references)) == 1
    assert count_appointment_requests(url=database_url) == 1


def test_get_unknown_reference_returns_none(database_url: str) -> None:
    assert get_appointment_request("HSG-ZZZZZZ", url=database_url) is None


def test_no_patient_details_in_logs(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reference = _save(database_url, "conversation-with-zelda:confirm")
    _save(database_url, "conversation-with-zelda:confirm")
    set_sms_opt_out(DETAILS.phone_e164, True, url=database_url)

    assert reference in caplog.text
    for detail in PATIENT_DETAILS_NOT_TO_LOG:
        assert detail not in caplog.text


def test_sms_opt_out_round_trip(database_url: str) -> None:
    phone = "+15555550123"
    assert is_sms_opted_out(phone, url=database_url) is False

    set_sms_opt_out(phone, True, url=database_url)
    assert is_sms_opted_out(phone, url=database_url) is True
    assert is_sms_opted_out("+15555550124", url=database_url) is False

    set_sms_opt_out(phone, False, url=database_url)
    assert is_sms_opted_out(phone, url=database_url) is False

    set_sms_opt_out(phone, True, url=database_url)
    assert is_sms_opted_out(phone, url=database_url) is True
    with session_scope(database_url) as session:
        record = session.get(SmsOptOut, phone)
        assert record.opted_out_at.utcoffset() == timedelta(0)
