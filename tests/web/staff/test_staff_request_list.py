"""The request list: newest first, new highlighted, filters, pages, and a search that stays out
of URLs, the session cookie and the audit log.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import unquote

import pytest

from appointments.audit import AuditFilters, list_audit_events
from tests.appointments.staff_factories import add_request

UTC = timezone.utc
XSS_NAME = "<script>alert(1)</script>"


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr class=\"[^\"]*\">.*?</tr>", html, flags=re.S)


def _listed_references(html: str) -> list[str]:
    return re.findall(r'href="/staff/requests/(HSG-[0-9A-Z]{6})"', html)


def _urls(html: str) -> list[str]:
    return [unquote(url) for url in re.findall(r'(?:href|action|src)="([^"]*)"', html)]


def _session_cookie(app, client) -> dict:
    """The session as anyone holding the cookie can read it (it is signed, not encrypted)."""
    cookie = client.client.get_cookie("session")
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def _search(client, term: str, query: str = ""):
    return client.post_form(
        f"/staff/requests{query}", f"/staff/requests/search{query}", {"q": term}
    )


def _audit(database_url: str, action: str) -> list[str]:
    events = list_audit_events(AuditFilters(action=action), url=database_url).items
    return [event.detail for event in events]


def test_list_is_newest_first_highlights_new_and_counts_them(signed_in, database_url) -> None:
    old = add_request(
        database_url,
        created_at=datetime(2024, 5, 1, 9, 15, tzinfo=UTC),
        status="contacted",
        full_name="Olga Older",
    )
    new = add_request(
        database_url, created_at=datetime(2024, 5, 2, 9, 15, tzinfo=UTC), full_name="Nina Newer"
    )

    html = signed_in.get("/staff/requests").get_data(as_text=True)

    assert _listed_references(html) == [new, old]
    rows = _rows(html)
    assert 'class="row-new"' in rows[0] and "Nina Newer" in rows[0]
    assert "row-new" not in rows[1] and "Contacted" in rows[1]
    assert "<strong>1</strong> new" in html
    assert "2024-05-02 09:15 UTC" in html
    assert "2 requests." in html


def test_requests_needing_attention_are_marked(signed_in, database_url) -> None:
    add_request(database_url, possibly_pregnant="unsure")
    add_request(database_url)
    html = signed_in.get("/staff/requests").get_data(as_text=True)
    assert html.count("Check answers") == 1
    assert html.count("No concerns") == 1


def test_filters_by_status_channel_dates_and_attention(signed_in, database_url) -> None:
    may_1_sms = add_request(
        database_url, channel="sms", created_at=datetime(2024, 5, 1, 12, tzinfo=UTC)
    )
    may_2_web = add_request(
        database_url,
        channel="web",
        created_at=datetime(2024, 5, 2, 12, tzinfo=UTC),
        contrast_allergy="yes",
    )
    may_3_scheduled = add_request(
        database_url,
        channel="web",
        status="scheduled",
        created_at=datetime(2024, 5, 3, 12, tzinfo=UTC),
    )

    def listed(query: str) -> list[str]:
        response = signed_in.get(f"/staff/requests?{query}")
        assert response.status_code == 200
        return _listed_references(response.get_data(as_text=True))

    assert listed("status=new") == [may_2_web, may_1_sms]
    assert listed("channel=sms") == [may_1_sms]
    assert listed("status=scheduled&channel=web") == [may_3_scheduled]
    assert listed("created_from=2024-05-02") == [may_3_scheduled, may_2_web]
    assert listed("created_to=2024-05-02") == [may_2_web, may_1_sms]
    assert listed("created_from=2024-05-02&created_to=2024-05-02") == [may_2_web]
    assert listed("attention=y") == [may_2_web]


def test_filter_form_keeps_its_values(signed_in, database_url) -> None:
    html = signed_in.get(
        "/staff/requests?status=contacted&channel=sms&created_from=2024-05-02&attention=y"
    ).get_data(as_text=True)
    assert '<option selected value="contacted">' in html
    assert '<option selected value="sms">' in html
    assert 'value="2024-05-02"' in html
    assert 'name="attention" type="checkbox" value="y" checked' in html or (
        re.search(r'<input checked id="attention"', html)
    )


def test_invalid_filters_are_explained_and_ignored(signed_in, database_url) -> None:
    reference = add_request(database_url)

    response = signed_in.get(
        "/staff/requests?status=lost&created_from=yesterday&created_to=2024-13-40"
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _listed_references(html) == [reference]
    assert "Not a valid date value." in html
    assert 'aria-invalid="true"' in html


def test_end_date_before_start_date_is_explained(signed_in) -> None:
    html = signed_in.get("/staff/requests?created_from=2024-05-03&created_to=2024-05-01").get_data(
        as_text=True
    )
    assert "The end date is before the start date." in html


def test_search_by_name_phone_or_reference_is_posted_not_put_in_urls(
    app, signed_in, database_url
) -> None:
    zelda = add_request(database_url, full_name="Zelda Quintanilla", phone_e164="+12015550199")
    ana = add_request(database_url, full_name="Ana Ruiz", phone_e164="+12015550123")

    for term, expected in [
        ("quintanilla", [zelda]),
        ("(201) 555-0123", [ana]),
        (ana.lower(), [ana]),
    ]:
        response = _search(signed_in, term, "?status=new")
        # The result is the answer to the post: no redirect, so no URL that could hold the term.
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert _listed_references(html) == expected
        assert f"&ldquo;{term}&rdquo;" in html
        assert not any(term in url for url in _urls(html))
        assert term not in str(_session_cookie(app, signed_in))

    html = signed_in.get("/staff/requests").get_data(as_text=True)
    assert sorted(_listed_references(html)) == sorted([zelda, ana])
    assert "Showing requests matching" not in html


def test_the_search_term_never_reaches_a_cookie_a_url_or_the_audit_log(
    app, signed_in, database_url
) -> None:
    for index in range(30):
        add_request(database_url, full_name=f"Philippa Hidewell {index}", channel="sms")
    term = "Hidewell"
    responses = [
        _search(signed_in, term, "?channel=sms"),
        signed_in.post_form(
            "/staff/requests", "/staff/requests/search?page=2&channel=sms", {"q": term}
        ),
        signed_in.post_form(
            "/staff/requests",
            "/staff/requests/search",
            {"q": term, "status": "new", "created_to": "9999-12-31"},
        ),
        _search(signed_in, "   "),
        signed_in.get("/staff/requests?status=new"),
        signed_in.logout(),
    ]

    for response in responses:
        assert term not in (response.location or "")
        for header in response.headers.getlist("Set-Cookie"):
            assert term not in header
        assert "Hidewell" not in response.request.full_path
    signed_in.login("alice")
    assert "Hidewell" not in str(_session_cookie(app, signed_in))
    for event in list_audit_events(AuditFilters(), per_page=100, url=database_url).items:
        assert "hidewell" not in event.detail.lower()


def test_a_search_stays_while_paging_and_filtering(signed_in, database_url, app) -> None:
    app.config["STAFF_PAGE_SIZE"] = 2
    ruiz = [
        add_request(
            database_url,
            full_name="Ana Ruiz",
            created_at=datetime(2024, 5, day, tzinfo=UTC),
            status="contacted" if day == 3 else "new",
        )
        for day in (1, 2, 3)
    ]
    add_request(database_url, full_name="Zelda Quintanilla")

    first = _search(signed_in, "ruiz").get_data(as_text=True)
    # The next page is a button that posts the term again; the URL has only the page number.
    assert _listed_references(first) == [ruiz[2], ruiz[1]]
    assert 'action="/staff/requests/search?page=2"' in first
    assert 'type="hidden" name="q" value="ruiz"' in first
    second = signed_in.post_form(
        "/staff/requests", "/staff/requests/search?page=2", {"q": "ruiz"}
    ).get_data(as_text=True)
    assert _listed_references(second) == [ruiz[0]]
    # The filter form posts the term along with the filters while a search is shown.
    assert '<form method="post" action="/staff/requests/search" class="filters">' in second
    filtered = signed_in.post_form(
        "/staff/requests", "/staff/requests/search", {"q": "ruiz", "status": "new"}
    ).get_data(as_text=True)
    assert _listed_references(filtered) == [ruiz[1], ruiz[0]]
    assert 'href="/staff/requests?status=new">Clear search</a>' in filtered


def test_list_views_and_searches_are_audited_without_the_term(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    add_request(database_url, full_name="Zelda Quintanilla")

    signed_in.get("/staff/requests?channel=web&status=lost")
    _search(signed_in, "ruiz", "?channel=web")

    # The filtered list, then the page the search form was posted from; "lost" was invalid.
    assert _audit(database_url, "view_list") == ["page 1 of 1, 2 request(s); channel=web"] * 2
    assert _audit(database_url, "search") == [
        "page 1 of 1, 1 request(s); channel=web, with a search"
    ]


def test_search_by_get_does_not_exist(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    # Taken as a request reference, which "search" is not.
    assert signed_in.get("/staff/requests/search?q=Ana+Ruiz").status_code == 404
    assert signed_in.get("/staff/requests?q=Ana+Ruiz").get_data(as_text=True).count("Ana Ruiz") == 1


def test_an_empty_search_goes_back_to_the_list(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    add_request(database_url, full_name="Zelda Quintanilla")

    response = _search(signed_in, "   ", "?status=new")

    assert response.status_code == 302 and response.location == "/staff/requests?status=new"
    assert len(_listed_references(signed_in.get(response.location).get_data(as_text=True))) == 2


def test_an_over_long_search_is_explained(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    response = _search(signed_in, "x" * 101)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Field cannot be longer than 100 characters." in html
    assert "Showing requests matching" not in html


def test_pages_of_twenty_five_keep_the_filters(signed_in, database_url) -> None:
    references = [
        add_request(database_url, channel="sms", created_at=datetime(2024, 5, 1, hour, tzinfo=UTC))
        for hour in range(0, 24)
    ] + [
        add_request(database_url, channel="sms", created_at=datetime(2024, 5, 2, 1, tzinfo=UTC)),
        add_request(database_url, channel="sms", created_at=datetime(2024, 5, 2, 2, tzinfo=UTC)),
    ]
    add_request(database_url, channel="web")
    newest_first = list(reversed(references))

    first = signed_in.get("/staff/requests?channel=sms").get_data(as_text=True)
    second = signed_in.get("/staff/requests?channel=sms&page=2").get_data(as_text=True)

    assert _listed_references(first) == newest_first[:25]
    assert "Page 1 of 2" in first
    assert 'href="/staff/requests?page=2&amp;channel=sms"' in first
    assert _listed_references(second) == newest_first[25:]
    assert 'href="/staff/requests?page=1&amp;channel=sms"' in second


def test_patient_details_are_escaped_and_never_in_urls(signed_in, database_url) -> None:
    reference = add_request(
        database_url,
        full_name=XSS_NAME,
        phone_e164="+12015550177",
        email="xss@example.org",
    )
    html = _search(signed_in, XSS_NAME).get_data(as_text=True)

    assert _listed_references(html) == [reference]
    assert XSS_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for url in _urls(html):
        assert "script" not in url and "2015550177" not in url and "example.org" not in url


def test_empty_list_says_so(signed_in) -> None:
    html = signed_in.get("/staff/requests").get_data(as_text=True)
    assert "No requests." in html
    assert "<strong>0</strong> new" in html


@pytest.mark.parametrize(
    "query",
    [
        "created_to=9999-12-31",
        "created_from=0001-01-01",
        "created_from=0001-01-01&created_to=9999-12-31",
        "created_from=1999-12-31",
    ],
)
def test_out_of_range_dates_are_explained_never_a_server_error(
    signed_in, database_url, app, query: str
) -> None:
    # West and east of UTC, where the day boundaries of such dates would overflow.
    reference = add_request(database_url)
    for zone in ("Pacific/Pago_Pago", "Pacific/Kiritimati"):
        app.config["STAFF_TIMEZONE"] = zone
        response = signed_in.get(f"/staff/requests?{query}")

        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "Enter a date between 2000-01-01 and 2999-12-31." in html
        assert _listed_references(html) == [reference]
        assert "created_" not in "".join(_urls(html)).replace("staff.css", "")


@pytest.mark.parametrize("query", ["created_to=garbage", "created_from=2024-02-30", "created_to="])
def test_garbage_dates_are_explained(signed_in, database_url, query: str) -> None:
    add_request(database_url)
    response = signed_in.get(f"/staff/requests?{query}")
    assert response.status_code == 200
    assert query.endswith("=") or "Not a valid date value." in response.get_data(as_text=True)


def test_a_search_posted_without_its_field_goes_back_to_the_list_not_an_error(signed_in) -> None:
    # A forged or truncated post (the soak suite's fuzz found a 500 here).
    response = signed_in.post_form("/staff/requests", "/staff/requests/search", {})

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/staff/requests")
