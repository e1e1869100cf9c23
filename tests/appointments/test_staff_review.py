"""Staff review of requests: filters, search, paging and the status workflow, on both databases."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from appointments.database import session_scope
from appointments.models import AppointmentRequest, StaffAuditEvent
from appointments.request_review import (
    NEXT_STATUSES,
    RequestFilters,
    RequestNotFoundError,
    StaleStatusError,
    StatusChangeError,
    change_status,
    count_new_requests,
    list_requests,
    requests_for_export,
    status_history,
)
from tests.appointments.staff_factories import add_request

UTC = timezone.utc


def _references(page_or_rows) -> list[str]:
    rows = page_or_rows.items if hasattr(page_or_rows, "items") else page_or_rows
    return [row.reference for row in rows]


def _status(url: str, reference: str) -> str:
    with session_scope(url) as session:
        return session.execute(
            select(AppointmentRequest.status).where(AppointmentRequest.reference == reference)
        ).scalar_one()


def test_list_is_newest_first_and_counts_new(database_url: str) -> None:
    oldest = add_request(database_url, created_at=datetime(2024, 5, 1, 9, tzinfo=UTC))
    newest = add_request(database_url, created_at=datetime(2024, 5, 3, 9, tzinfo=UTC))
    middle = add_request(
        database_url, created_at=datetime(2024, 5, 2, 9, tzinfo=UTC), status="contacted"
    )

    page = list_requests(RequestFilters(), url=database_url)

    assert _references(page) == [newest, middle, oldest]
    assert page.total == 3
    assert count_new_requests(url=database_url) == 2


def test_filter_by_status_channel_and_attention(database_url: str) -> None:
    web_new = add_request(database_url, channel="web")
    sms_new = add_request(database_url, channel="sms", contrast_allergy="yes")
    add_request(database_url, channel="sms", status="scheduled")

    assert _references(
        list_requests(RequestFilters(status="new", channel="sms"), url=database_url)
    ) == [sms_new]
    assert set(_references(list_requests(RequestFilters(status="new"), url=database_url))) == {
        web_new,
        sms_new,
    }
    assert _references(list_requests(RequestFilters(needs_attention=True), url=database_url)) == [
        sms_new
    ]


def test_date_range_is_whole_days_in_the_clinic_time_zone(database_url: str) -> None:
    new_york = ZoneInfo("America/New_York")
    # 02:30 UTC on May 2nd is still the evening of May 1st in New York.
    late_may_1 = add_request(database_url, created_at=datetime(2024, 5, 2, 2, 30, tzinfo=UTC))
    may_2 = add_request(database_url, created_at=datetime(2024, 5, 2, 15, 0, tzinfo=UTC))
    add_request(database_url, created_at=datetime(2024, 5, 3, 12, 0, tzinfo=UTC))

    in_new_york = RequestFilters(
        created_from=date(2024, 5, 1), created_to=date(2024, 5, 2), zone=new_york
    )
    in_utc = RequestFilters(created_from=date(2024, 5, 2), created_to=date(2024, 5, 2))

    assert _references(list_requests(in_new_york, url=database_url)) == [may_2, late_may_1]
    assert _references(list_requests(in_utc, url=database_url)) == [may_2, late_may_1]
    only_may_1 = RequestFilters(created_to=date(2024, 5, 1), zone=new_york)
    assert _references(list_requests(only_may_1, url=database_url)) == [late_may_1]


@pytest.mark.parametrize(
    "search",
    ["zelda", "ZELDA QUINT", "quintanilla-okafor", "201 555 0199", "(201) 555-0199", "5550199"],
)
def test_search_by_name_or_phone(database_url: str, search: str) -> None:
    wanted = add_request(
        database_url, full_name="Zelda Quintanilla-Okafor", phone_e164="+12015550199"
    )
    add_request(database_url, full_name="Ana Ruiz", phone_e164="+12015550123")

    assert _references(list_requests(RequestFilters(search=search), url=database_url)) == [wanted]


def test_search_by_reference_in_any_case(database_url: str) -> None:
    wanted = add_request(database_url)
    add_request(database_url)

    for search in (wanted, wanted.lower(), wanted[-4:]):
        assert _references(list_requests(RequestFilters(search=search), url=database_url)) == [
            wanted
        ]


def test_search_treats_wildcards_as_text(database_url: str) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    assert list_requests(RequestFilters(search="%"), url=database_url).total == 0
    assert list_requests(RequestFilters(search="_"), url=database_url).total == 0


def test_search_combines_with_filters(database_url: str) -> None:
    add_request(database_url, full_name="Ana Ruiz", status="contacted")
    wanted = add_request(database_url, full_name="Ana Ruiz")

    filters = RequestFilters(search="ruiz", status="new")
    assert _references(list_requests(filters, url=database_url)) == [wanted]


def test_pages(database_url: str) -> None:
    references = [
        add_request(database_url, created_at=datetime(2024, 5, day, tzinfo=UTC))
        for day in range(1, 8)
    ]
    newest_first = list(reversed(references))

    first = list_requests(RequestFilters(), page=1, per_page=3, url=database_url)
    last = list_requests(RequestFilters(), page=3, per_page=3, url=database_url)
    past_the_end = list_requests(RequestFilters(), page=99, per_page=3, url=database_url)

    assert _references(first) == newest_first[:3]
    assert (first.page_count, first.has_previous, first.has_next) == (3, False, True)
    assert _references(last) == newest_first[6:]
    assert (last.has_previous, last.has_next) == (True, False)
    assert past_the_end.number == 3


def test_export_selects_every_page(database_url: str) -> None:
    for _ in range(4):
        add_request(database_url, channel="sms")
    add_request(database_url, channel="web")

    assert len(requests_for_export(RequestFilters(channel="sms"), url=database_url)) == 4


def test_filters_refuse_unknown_status_and_channel() -> None:
    with pytest.raises(ValueError):
        RequestFilters(status="lost")
    with pytest.raises(ValueError):
        RequestFilters(channel="fax")


@pytest.mark.parametrize(
    "filters",
    [
        {"created_from": date(1, 1, 1)},
        {"created_to": date(9999, 12, 31)},
        {"created_from": date(1999, 12, 31)},
        {"created_to": date(3000, 1, 1)},
    ],
)
def test_filters_refuse_dates_that_can_only_be_typos(filters: dict) -> None:
    # Near date.min and date.max the day boundaries would overflow in the clinic's time zone.
    with pytest.raises(ValueError, match="between 2000-01-01 and 2999-12-31"):
        RequestFilters(**filters, zone=ZoneInfo("Pacific/Kiritimati"))


def test_the_widest_date_range_still_works(database_url: str) -> None:
    reference = add_request(database_url)
    for zone in (ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Pago_Pago")):
        filters = RequestFilters(
            created_from=date(2000, 1, 1), created_to=date(2999, 12, 31), zone=zone
        )
        assert _references(list_requests(filters, url=database_url)) == [reference]


def test_the_whole_workflow_with_history_and_audit(database_url: str) -> None:
    reference = add_request(database_url)
    steps = [("new", "contacted", "Left a voicemail"), ("contacted", "scheduled", "")]
    steps.append(("scheduled", "completed", "Done"))

    appointment_at = datetime(2030, 5, 10, 14, 30, tzinfo=timezone.utc)
    for from_status, to_status, note in steps:
        change_status(
            reference,
            to_status=to_status,
            expected_status=from_status,
            note=note,
            staff_username="alice",
            appointment_at=appointment_at if to_status == "scheduled" else None,
            url=database_url,
        )
        assert _status(database_url, reference) == to_status

    with session_scope(database_url) as session:
        request_id = session.execute(
            select(AppointmentRequest.id).where(AppointmentRequest.reference == reference)
        ).scalar_one()
        events = session.execute(select(StaffAuditEvent).order_by(StaffAuditEvent.id)).scalars()
        audited = [(e.action, e.staff_username, e.request_reference, e.detail) for e in events]
    history = status_history(request_id, url=database_url)
    assert [(c.from_status, c.to_status, c.note, c.staff_username) for c in history] == [
        ("new", "contacted", "Left a voicemail", "alice"),
        ("contacted", "scheduled", "", "alice"),
        ("scheduled", "completed", "Done", "alice"),
    ]
    assert audited == [
        ("change_status", "alice", reference, "new -> contacted (with a note)"),
        ("change_status", "alice", reference, "contacted -> scheduled"),
        ("change_status", "alice", reference, "scheduled -> completed (with a note)"),
    ]


@pytest.mark.parametrize("start", ["new", "contacted", "scheduled"])
@pytest.mark.parametrize("end", ["declined", "cancelled"])
def test_declined_or_cancelled_from_any_open_status(database_url: str, start, end) -> None:
    reference = add_request(database_url, status=start)
    change_status(
        reference,
        to_status=end,
        expected_status=start,
        note="",
        staff_username="bob",
        url=database_url,
    )
    assert _status(database_url, reference) == end


@pytest.mark.parametrize(
    ("start", "to_status"),
    [
        ("new", "scheduled"),
        ("new", "completed"),
        ("contacted", "new"),
        ("completed", "cancelled"),
        ("declined", "contacted"),
        ("cancelled", "new"),
        ("new", "lost"),
    ],
)
def test_steps_outside_the_workflow_are_refused(database_url: str, start, to_status) -> None:
    reference = add_request(database_url, status=start)
    with pytest.raises(StatusChangeError, match="cannot be marked"):
        change_status(
            reference,
            to_status=to_status,
            expected_status=start,
            note="",
            staff_username="bob",
            url=database_url,
        )
    assert _status(database_url, reference) == start


def test_a_colleagues_change_in_the_meantime_is_not_overwritten(database_url: str) -> None:
    reference = add_request(database_url)
    change_status(
        reference,
        to_status="contacted",
        expected_status="new",
        note="",
        staff_username="alice",
        url=database_url,
    )

    with pytest.raises(StaleStatusError):
        change_status(
            reference,
            to_status="declined",
            expected_status="new",
            note="",
            staff_username="bob",
            url=database_url,
        )
    assert _status(database_url, reference) == "contacted"


def test_unknown_reference_and_over_long_note_change_nothing(database_url: str) -> None:
    reference = add_request(database_url)
    with pytest.raises(RequestNotFoundError):
        change_status(
            "HSG-ZZZZZZ",
            to_status="contacted",
            expected_status="new",
            note="",
            staff_username="alice",
            url=database_url,
        )
    with pytest.raises(StatusChangeError, match="at most 2000"):
        change_status(
            reference,
            to_status="contacted",
            expected_status="new",
            note="x" * 2001,
            staff_username="alice",
            url=database_url,
        )
    assert _status(database_url, reference) == "new"


def test_every_status_has_its_next_steps() -> None:
    assert set(NEXT_STATUSES) == {
        "new",
        "contacted",
        "scheduled",
        "completed",
        "declined",
        "cancelled",
    }
