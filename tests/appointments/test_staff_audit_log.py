"""The staff audit log: events are stored, listed newest first and filtered, on both databases."""

from __future__ import annotations

import pytest

from appointments import audit
from appointments.audit import AuditFilters, list_audit_events, record_audit_event, record_export


def _listed(url: str, **filters: str) -> list[tuple]:
    page = list_audit_events(AuditFilters(**filters), url=url)
    return [(e.action, e.staff_username, e.request_reference, e.detail) for e in page.items]


def test_events_are_listed_newest_first_with_utc_times(database_url: str) -> None:
    record_audit_event(action=audit.LOGIN, staff_username="alice", url=database_url)
    record_audit_event(
        action=audit.VIEW_REQUEST,
        staff_username="alice",
        request_reference="HSG-AAAAAA",
        url=database_url,
    )

    page = list_audit_events(AuditFilters(), url=database_url)

    assert [event.action for event in page.items] == ["view_request", "login"]
    assert all(event.occurred_at.utcoffset().total_seconds() == 0 for event in page.items)


def test_an_export_is_recorded_once_per_exported_request(database_url: str) -> None:
    record_export(
        "bob", ["HSG-AAAAAA", "HSG-BBBBBB"], detail="CSV of 2 request(s)", url=database_url
    )
    record_export("bob", [], detail="CSV of 0 request(s)", url=database_url)

    assert sorted(_listed(database_url, action="export"), key=str) == sorted(
        [
            ("export", "bob", "HSG-AAAAAA", "CSV of 2 request(s)"),
            ("export", "bob", "HSG-BBBBBB", "CSV of 2 request(s)"),
            ("export", "bob", None, "CSV of 0 request(s)"),
        ],
        key=str,
    )


def test_filter_by_staff_action_and_reference(database_url: str) -> None:
    record_audit_event(action=audit.LOGIN, staff_username="alice", url=database_url)
    record_audit_event(
        action=audit.VIEW_REQUEST,
        staff_username="bob",
        request_reference="HSG-AAAAAA",
        url=database_url,
    )
    record_audit_event(
        action=audit.VIEW_REQUEST,
        staff_username="alice",
        request_reference="HSG-BBBBBB",
        url=database_url,
    )

    assert len(_listed(database_url, staff_username="alice")) == 2
    assert _listed(database_url, request_reference="HSG-AAAAAA") == [
        ("view_request", "bob", "HSG-AAAAAA", "")
    ]
    assert _listed(database_url, action="login") == [("login", "alice", None, "")]


def test_unknown_actions_are_refused_and_details_are_capped(database_url: str) -> None:
    with pytest.raises(ValueError):
        record_audit_event(action="hacked", staff_username="alice", url=database_url)
    record_audit_event(
        action=audit.LOGIN_FAILED, staff_username=None, detail="x" * 500, url=database_url
    )
    assert _listed(database_url)[0][3] == "x" * 200
