"""The request page: every field raw and normalised, screening flags, transcript, view audit."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from appointments.audit import AuditFilters, list_audit_events
from tests.appointments.staff_factories import add_request

XSS = "<script>alert(1)</script>"
# The columns of Rasa's SQLTrackerStore "events" table (rasa/core/tracker_store.py).
RASA_EVENTS_TABLE = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    sender_id VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data TEXT
)
"""


def write_tracker(url: str, events: list[tuple[str, str, dict]]) -> None:
    """Rasa's tracker store with these (sender_id, type_name, data) events."""
    path = Path(make_url(url).database)
    with sqlite3.connect(path) as connection:
        connection.execute(RASA_EVENTS_TABLE)
        for number, (sender, type_name, data) in enumerate(events):
            timestamp = datetime(2024, 5, 2, 9, 0, number, tzinfo=timezone.utc).timestamp()
            connection.execute(
                "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, ?, ?, ?)",
                (sender, type_name, timestamp, json.dumps({"event": type_name, **data})),
            )


def test_every_field_is_shown_raw_and_normalised(signed_in, database_url) -> None:
    reference = add_request(
        database_url, created_at=datetime(2024, 5, 2, 14, 5, tzinfo=timezone.utc)
    )

    response = signed_in.get(f"/staff/requests/{reference}")

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in [
        f"Request {reference}",
        "2024-05-02 14:05 UTC",
        "Website chat",
        "Ana Ruiz",
        "March 4th 1990",
        "Sun 1990-03-04",
        "(201) 555-0123",
        "+12015550123",
        "Ana.Ruiz@Example.org",
        "ana.ruiz@example.org",
        "Call",
        "Dr. Imogen Vasquez",
        "May 3rd",
        "Fri 2024-05-03",
        "Thu 2024-05-09 to Tue 2024-05-14",
        "weekday mornings, ideally the 10th",
        "Fri 2024-05-10",
        "New",
    ]:
        assert text in html, text
    assert "Check before booking" not in html


def test_missing_optional_answers_read_plainly(signed_in, database_url) -> None:
    reference = add_request(
        database_url,
        email=None,
        email_raw="skip",
        referring_doctor=None,
        last_period_start=None,
        last_period_raw="not applicable",
        last_period_not_applicable=True,
        suggested_window_start=None,
        suggested_window_end=None,
        preferred_dates=[],
    )
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Not given" in html
    assert "No periods" in html
    # No periods: staff are asked to arrange a pregnancy check.
    assert "Check before booking" in html
    assert "arrange a pregnancy check before booking" in html
    assert "None: no last period date" in html
    assert "No specific dates" in html


def test_screening_answers_needing_attention_are_marked(signed_in, database_url) -> None:
    reference = add_request(
        database_url, possibly_pregnant="yes", contrast_allergy="unsure", pelvic_infection="no"
    )

    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)

    assert "Check before booking" in html
    assert "<strong>Could be pregnant: Yes</strong>" in html
    assert "<strong>Allergy or reaction to iodine / contrast dye: Not sure</strong>" in html
    assert html.count("needs attention") == 2
    assert html.count('<tr class="flagged">') == 2


def test_viewing_a_request_is_audited(signed_in, database_url) -> None:
    reference = add_request(database_url)
    signed_in.get(f"/staff/requests/{reference}")

    events = list_audit_events(AuditFilters(action="view_request"), url=database_url).items
    assert [(e.staff_username, e.request_reference) for e in events] == [("alice", reference)]


@pytest.mark.parametrize("reference", ["HSG-ZZZZZZ", "hsg-abcdef", "HSG-ABC", "1' OR '1'='1"])
def test_unknown_or_malformed_reference_is_not_found(signed_in, database_url, reference) -> None:
    add_request(database_url)
    response = signed_in.get(f"/staff/requests/{reference}")
    assert response.status_code == 404
    assert "There is no such request" in response.get_data(as_text=True)
    assert list_audit_events(AuditFilters(action="view_request"), url=database_url).total == 0


def test_patient_details_are_escaped(signed_in, database_url) -> None:
    reference = add_request(
        database_url,
        full_name=XSS,
        phone_raw='"><img src=x onerror=alert(1)>',
        preferred_times_raw="<b>mornings</b>",
        referring_doctor="Dr. <iframe>",
    )
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert XSS not in html and "<img src=x" not in html and "<iframe>" not in html
    assert "<b>mornings" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;mornings&lt;/b&gt;" in html


def test_transcript_shows_this_conversation_in_order_escaped(
    signed_in, database_url, tracker_url
) -> None:
    reference = add_request(database_url, conversation_id="web-abc123")
    write_tracker(
        tracker_url,
        [
            ("web-abc123", "action", {"name": "action_listen"}),
            ("web-abc123", "user", {"text": "I'd like to book an HSG"}),
            (
                "web-abc123",
                "bot",
                {
                    "text": "Shall we go ahead?",
                    "data": {"buttons": [{"title": "Yes, go ahead", "payload": "/affirm"}]},
                },
            ),
            ("web-abc123", "user", {"text": "/affirm"}),
            ("web-abc123", "user", {"text": f"My name is {XSS}"}),
            ("someone-else", "user", {"text": "A different patient's message"}),
        ],
    )

    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)

    transcript = html[html.index('id="conversation-heading"') :]
    assert transcript.index("I&#39;d like to book an HSG") < transcript.index("Shall we go ahead?")
    assert "Buttons offered: Yes, go ahead" in transcript
    assert "Patient (tapped a button)" in transcript
    assert "My name is &lt;script&gt;" in transcript and XSS not in transcript
    assert "A different patient" not in transcript
    assert "action_listen" not in transcript
    assert "2024-05-02 09:00:01 UTC"[:16] in transcript


def test_unreachable_tracker_store_gives_a_calm_note(signed_in, database_url, tracker_url) -> None:
    reference = add_request(database_url)

    response = signed_in.get(f"/staff/requests/{reference}")

    assert response.status_code == 200
    assert "The conversation cannot be shown right now" in response.get_data(as_text=True)
    # Read-only: the missing tracker store is not created by the staff area.
    assert not Path(make_url(tracker_url).database).exists()


def test_empty_conversation_says_so(signed_in, database_url, tracker_url) -> None:
    reference = add_request(database_url, conversation_id="web-quiet")
    write_tracker(tracker_url, [("web-quiet", "action", {"name": "action_listen"})])
    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "No messages were found for this conversation." in html


def test_a_late_period_is_a_reason_to_check_before_booking(signed_in, database_url) -> None:
    # The period of May 3rd had begun 48 days before this request came in.
    reference = add_request(
        database_url, created_at=datetime(2024, 6, 20, 9, 0, tzinfo=timezone.utc)
    )

    html = signed_in.get(f"/staff/requests/{reference}").get_data(as_text=True)

    assert "Check before booking" in html
    assert "Period late: the last one started 48 days before the request" in html
