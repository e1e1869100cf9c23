"""The request list: newest first, new highlighted, filters, search kept out of URLs, pages."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import unquote

from tests.appointments.staff_factories import add_request

UTC = timezone.utc
XSS_NAME = "<script>alert(1)</script>"


def _rows(html: str) -> list[str]:
    return re.findall(r"<tr class=\"[^\"]*\">.*?</tr>", html, flags=re.S)


def _listed_references(html: str) -> list[str]:
    return re.findall(r'href="/staff/requests/(HSG-[0-9A-Z]{6})"', html)


def _urls(html: str) -> list[str]:
    return [unquote(url) for url in re.findall(r'(?:href|action|src)="([^"]*)"', html)]


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
    signed_in, database_url
) -> None:
    zelda = add_request(database_url, full_name="Zelda Quintanilla", phone_e164="+12015550199")
    ana = add_request(database_url, full_name="Ana Ruiz", phone_e164="+12015550123")

    for term, expected in [
        ("quintanilla", [zelda]),
        ("(201) 555-0123", [ana]),
        (ana.lower(), [ana]),
    ]:
        response = signed_in.post_form(
            "/staff/requests?status=new", "/staff/requests/search?status=new", {"q": term}
        )
        assert response.status_code == 302
        assert response.location == "/staff/requests?status=new"
        html = signed_in.get(response.location).get_data(as_text=True)
        assert _listed_references(html) == expected
        assert f"&ldquo;{term}&rdquo;" in html
        assert not any(term in url for url in _urls(html))

    cleared = signed_in.post_form("/staff/requests", "/staff/requests/search/clear")
    html = signed_in.get(cleared.location).get_data(as_text=True)
    assert sorted(_listed_references(html)) == sorted([zelda, ana])


def test_search_by_get_does_not_exist(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    # Taken as a request reference, which "search" is not.
    assert signed_in.get("/staff/requests/search?q=Ana+Ruiz").status_code == 404
    assert signed_in.get("/staff/requests?q=Ana+Ruiz").get_data(as_text=True).count("Ana Ruiz") == 1


def test_an_empty_search_clears_it(signed_in, database_url) -> None:
    add_request(database_url, full_name="Ana Ruiz")
    add_request(database_url, full_name="Zelda Quintanilla")
    signed_in.post_form("/staff/requests", "/staff/requests/search", {"q": "ruiz"})
    signed_in.post_form("/staff/requests", "/staff/requests/search", {"q": "   "})
    html = signed_in.get("/staff/requests").get_data(as_text=True)
    assert len(_listed_references(html)) == 2


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
    signed_in.post_form("/staff/requests", "/staff/requests/search", {"q": XSS_NAME})

    html = signed_in.get("/staff/requests").get_data(as_text=True)

    assert _listed_references(html) == [reference]
    assert XSS_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for url in _urls(html):
        assert "script" not in url and "2015550177" not in url and "example.org" not in url


def test_empty_list_says_so(signed_in) -> None:
    html = signed_in.get("/staff/requests").get_data(as_text=True)
    assert "No requests." in html
    assert "<strong>0</strong> new" in html
