"""CSV export of the filtered list: admins only, UTF-8, spreadsheet-safe, complete, and audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

import pytest

from appointments.audit import AuditFilters, list_audit_events
from tests.appointments.staff_factories import add_request
from web.staff.export import neutralize


def _export(client, query: str = "", search: str | None = None):
    """Posts the list page's export button; a search goes in the body, as the page has it."""
    data = {"q": search} if search else {}
    return client.post_form(f"/staff/requests{query}", f"/staff/requests/export{query}", data)


def _rows(response) -> list[dict]:
    assert response.data.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 byte-order mark"
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1 201 555 0123", "'+1 201 555 0123"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ana Ruiz", "Ana Ruiz"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_neutralize(value: str, expected: str) -> None:
    assert neutralize(value) == expected


def test_export_is_a_utf8_csv_attachment_without_patient_details_in_its_name(
    signed_in_admin, database_url
) -> None:
    add_request(database_url, full_name="Zoë Ñúñez-Łukasz")

    response = _export(signed_in_admin)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="hsg-requests-\d{8}-\d{4}\.csv"', disposition)
    assert response.headers["Cache-Control"] == "no-store"
    (row,) = _rows(response)
    assert row["full_name"] == "Zoë Ñúñez-Łukasz"


def test_every_field_is_exported(signed_in_admin, database_url) -> None:
    reference = add_request(
        database_url, created_at=datetime(2024, 5, 2, 14, 5, tzinfo=timezone.utc)
    )
    (row,) = _rows(_export(signed_in_admin))
    assert row == {
        "reference": reference,
        "received": "2024-05-02 14:05 UTC",
        "status": "new",
        "channel": "web",
        "needs_attention": "no",
        "attention_reasons": "",
        "full_name": "Ana Ruiz",
        "date_of_birth": "1990-03-04",
        "date_of_birth_as_given": "March 4th 1990",
        "phone": "'+12015550123",
        "phone_as_given": "(201) 555-0123",
        "email": "ana.ruiz@example.org",
        "email_as_given": "Ana.Ruiz@Example.org",
        "contact_method": "call",
        "last_period_start": "2024-05-03",
        "last_period_as_given": "May 3rd",
        "last_period_not_applicable": "no",
        "suggested_window_start": "2024-05-09",
        "suggested_window_end": "2024-05-14",
        "preferred_times_as_given": "weekday mornings, ideally the 10th",
        "preferred_dates": "2024-05-10",
        "possibly_pregnant": "no",
        "contrast_allergy": "no",
        "pelvic_infection": "no",
        "referring_doctor": "Dr. Imogen Vasquez",
    }


def test_formula_cells_are_neutralised(signed_in_admin, database_url) -> None:
    add_request(
        database_url,
        full_name='=HYPERLINK("http://evil.example","click")',
        phone_raw="+1 201 555 0123",
        preferred_times_raw="@SUM(1+1)*cmd|' /C calc'!A0",
        referring_doctor="-2+3",
    )
    (row,) = _rows(_export(signed_in_admin))
    assert row["full_name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["phone_as_given"] == "'+1 201 555 0123"
    assert row["preferred_times_as_given"].startswith("'@SUM")
    assert row["referring_doctor"] == "'-2+3"
    for value in row.values():
        assert not value.startswith(("=", "+", "-", "@"))


def test_export_has_the_whole_filtered_list_and_search(signed_in_admin, database_url) -> None:
    sms = [add_request(database_url, channel="sms", full_name=f"Sam Sms{i}") for i in range(30)]
    ruiz = add_request(database_url, channel="sms", full_name="Ana Ruiz")
    add_request(database_url, channel="web", full_name="Ana Ruiz")

    everything_sms = _rows(_export(signed_in_admin, "?channel=sms"))
    searched = _rows(_export(signed_in_admin, "?channel=sms", search="ruiz"))

    assert {row["reference"] for row in everything_sms} == {*sms, ruiz}
    assert [row["reference"] for row in searched] == [ruiz]


def test_each_exported_request_is_audited_without_the_search_term(
    signed_in_admin, database_url
) -> None:
    first = add_request(database_url, full_name="Ana Ruiz")
    second = add_request(database_url, full_name="Ana Ruiz")

    _export(signed_in_admin, "?status=new", search="ruiz")

    events = list_audit_events(AuditFilters(action="export"), url=database_url).items
    assert sorted(e.request_reference for e in events) == sorted([first, second])
    assert {e.detail for e in events} == {"CSV of 2 request(s); status=new, with a search"}
    assert {e.staff_username for e in events} == {"root"}
    everything = list_audit_events(AuditFilters(), per_page=100, url=database_url).items
    assert not any("ruiz" in event.detail.lower() for event in everything)


def test_export_needs_post_and_a_csrf_token(signed_in_admin, database_url) -> None:
    add_request(database_url)
    # A GET is taken as a request page, and "export" is no reference.
    assert signed_in_admin.get("/staff/requests/export").status_code == 404
    response = signed_in_admin.client.post("/staff/requests/export")
    assert response.status_code == 400
    assert b"reference" not in response.data
    assert list_audit_events(AuditFilters(action="export"), url=database_url).total == 0


def test_staff_without_the_admin_role_cannot_export_and_the_refusal_is_audited(
    signed_in, database_url
) -> None:
    add_request(database_url, full_name="Ana Ruiz")

    response = _export(signed_in, "?status=new", search="ruiz")

    assert response.status_code == 403
    assert b"Ana Ruiz" not in response.data and b"reference" not in response.data
    assert list_audit_events(AuditFilters(action="export"), url=database_url).total == 0
    refusals = list_audit_events(AuditFilters(action="access_denied"), url=database_url).items
    assert [(e.staff_username, e.request_reference, e.detail) for e in refusals] == [
        ("alice", None, "POST /staff/requests/export")
    ]
    assert "Export CSV" not in signed_in.get("/staff/requests").get_data(as_text=True)


def test_out_of_range_dates_in_the_export_are_ignored_not_a_server_error(
    signed_in_admin, database_url
) -> None:
    reference = add_request(database_url)
    response = _export(signed_in_admin, "?created_to=9999-12-31&created_from=0001-01-01")
    assert response.status_code == 200
    assert [row["reference"] for row in _rows(response)] == [reference]
