"""Every answer parser, table-driven: good answers, and bad ones that must give a hint, not crash."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from actions.parsing import (
    SKIPPED,
    LastPeriod,
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

TODAY = date(2025, 11, 27)  # a Thursday
NOW = datetime(2025, 11, 27, 10, 30)

# Inputs no parser may choke on; each must come back as a hint (or a harmless value).
HOSTILE_INPUTS = [
    "",
    "   ",
    None,
    12345,
    "😀",
    "😀😀😀 🙈",
    "x" * 10_000,
    "a" * 201,
    "Robert'); DROP TABLE appointment_requests;--",
    "1 OR 1=1",
    "<script>alert('hi')</script>",
    "<b>bold</b>",
    "\x00\x1b[31m",
    "ﷺ",
    "مرحبا",
    "9" * 400,
]

ALL_PARSERS = [
    parse_full_name,
    lambda text: parse_date_of_birth(text, TODAY),
    parse_phone,
    parse_email,
    lambda text: parse_last_period(text, TODAY),
    lambda text: parse_preferred_times(text, NOW),
    parse_yes_no_unsure,
    parse_referring_doctor,
    parse_contact_method,
]


@pytest.mark.parametrize("parse", ALL_PARSERS)
@pytest.mark.parametrize("text", HOSTILE_INPUTS)
def test_no_parser_crashes_on_hostile_input(parse, text) -> None:
    result = parse(text)
    assert result.ok or result.hint


@pytest.mark.parametrize("parse", ALL_PARSERS)
def test_empty_and_long_answers_get_their_own_hints(parse) -> None:
    assert parse("").hint == "empty"
    assert parse("x" * 10_000).hint == "too_long"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ana Ruiz", "Ana Ruiz"),
        ("  ana   ruiz ", "Ana Ruiz"),
        ("ANA RUIZ", "Ana Ruiz"),
        ("I'm Ana Ruiz", "Ana Ruiz"),
        ("my name is Maria de la Cruz", "Maria de la Cruz"),
        ("I'm Ana Ruiz, born 3/4/1990", "Ana Ruiz"),
        ("hi, I'm Ana Ruiz and my number is 201-555-0123", "Ana Ruiz"),
        ("Ana Ruiz ana@example.com", "Ana Ruiz"),
        ("José Álvarez-Núñez", "José Álvarez-Núñez"),
        ("Sarah O'Connor", "Sarah O'Connor"),
        ("Sarah O\u2019Connor", "Sarah O\u2019Connor"),
        ("李 小龙", "李 小龙"),
    ],
)
def test_full_name_accepts(text, expected) -> None:
    assert parse_full_name(text).value == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Ana", "full_name_needs_last_name"),
        ("Does it hurt", "full_name_format"),
        ("what is an hsg?", "full_name_format"),
        ("<script>alert(1)</script>", "full_name_format"),
        ("Robert'); DROP TABLE students;--", "full_name_format"),
        ("😀", "full_name_format"),
        ("12345", "full_name_format"),
        ("N/A", "full_name_format"),
        ("yes", "full_name_format"),
        ("tomorrow", "full_name_needs_last_name"),
        ("a b c d e f g h i j", "full_name_format"),
    ],
)
def test_full_name_refuses(text, hint) -> None:
    assert parse_full_name(text).hint == hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3/4/1990", date(1990, 3, 4)),  # US order: March 4
        ("03/04/1990", date(1990, 3, 4)),
        ("March 4, 1990", date(1990, 3, 4)),
        ("4 March 1990", date(1990, 3, 4)),
        ("1990-03-04", date(1990, 3, 4)),
        ("I'm Ana Ruiz, born 3/4/1990", date(1990, 3, 4)),
        ("jan 5th, 1985", date(1985, 1, 5)),
        ("12.25.1985", date(1985, 12, 25)),
        ("11/27/2013", date(2013, 11, 27)),  # 12 today
        ("11/28/1906", date(1906, 11, 28)),  # 118, turning 119 tomorrow
    ],
)
def test_date_of_birth_accepts(text, expected) -> None:
    assert parse_date_of_birth(text, TODAY).value == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("tomorrow", "date_of_birth_future"),
        ("today", "date_of_birth_future"),
        ("12/1/2030", "date_of_birth_future"),
        ("11/28/2013", "date_of_birth_too_young"),  # turns 12 tomorrow
        ("1/1/2020", "date_of_birth_too_young"),
        ("11/27/1905", "date_of_birth_too_old"),  # 120 today
        ("1/1/1890", "date_of_birth_too_old"),
        ("02/30/1990", "date_of_birth_format"),
        ("Feb 29 2001", "date_of_birth_format"),
        ("13/13/1990", "date_of_birth_format"),
        ("March 1990", "date_of_birth_format"),
        ("1990", "date_of_birth_format"),
        ("N/A", "date_of_birth_format"),
        ("next tuesday afternoon", "date_of_birth_format"),
        ("<script>1/1/1990</script>", "date_of_birth_format"),
        ("SELECT * FROM patients", "date_of_birth_format"),
    ],
)
def test_date_of_birth_refuses(text, hint) -> None:
    assert parse_date_of_birth(text, TODAY).hint == hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("201-555-0123", "+12015550123"),
        ("(201) 555-0123", "+12015550123"),
        ("2015550123", "+12015550123"),
        ("+1 201 555 0123", "+12015550123"),
        ("1-201-555-0123", "+12015550123"),
        ("201.555.0123", "+12015550123"),
        ("my cell is (617) 253-1000", "+16172531000"),
        ("+1 787 555 0123", "+17875550123"),  # Puerto Rico
        # Markup is only text: the number in it is still the patient's number.
        ("<a href='tel:2015550123'>", "+12015550123"),
    ],
)
def test_phone_accepts(text, expected) -> None:
    assert parse_phone(text).value == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("+44 20 7946 0958", "phone_not_us"),
        ("+52 55 1234 5678", "phone_not_us"),
        ("+33 1 42 68 53 00", "phone_not_us"),
        ("555-0123", "phone_format"),
        ("12345", "phone_format"),
        ("1-800-220-2220", "phone_format"),  # toll-free: not a patient's phone
        ("000-000-0000", "phone_format"),
        ("tomorrow", "phone_format"),
        ("N/A", "phone_format"),
        ("call me maybe", "phone_format"),
    ],
)
def test_phone_refuses(text, hint) -> None:
    assert parse_phone(text).hint == hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana.ruiz@example.com", "ana.ruiz@example.com"),
        ("Ana.Ruiz@Example.COM", "Ana.Ruiz@example.com"),
        ("my email is ana@example.org.", "ana@example.org"),
        ("skip", SKIPPED),
        ("no", SKIPPED),
        ("N/A", SKIPPED),
        ("I don't have one", SKIPPED),
    ],
)
def test_email_accepts(text, expected) -> None:
    assert parse_email(text).value == expected


@pytest.mark.parametrize(
    "text",
    [
        "ana@",
        "ana@localhost",
        "a@b",
        "ana@mail.test",
        "ana ruiz at example dot com",
        "ana@@example.com",
        "<script>@example.com",
        "tomorrow",
        "'; DROP TABLE x; --",
    ],
)
def test_email_refuses(text) -> None:
    assert parse_email(text).hint == "email_format"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nov 10", LastPeriod(start=date(2025, 11, 10))),
        ("11/20/2025", LastPeriod(start=date(2025, 11, 20))),
        ("2 weeks ago", LastPeriod(start=date(2025, 11, 13))),
        ("today", LastPeriod(start=TODAY)),
        ("no periods", LastPeriod(not_applicable=True)),
        ("i'm post menopause", LastPeriod(not_applicable=True)),
        ("I don't get periods", LastPeriod(not_applicable=True)),
        ("on the pill nonstop so I don't have a period", LastPeriod(not_applicable=True)),
        # A tubal ligation check gives the date like everyone else.
        ("tubes tied, last period Nov 10", LastPeriod(start=date(2025, 11, 10))),
        ("not sure", LastPeriod()),
        ("my periods are irregular", LastPeriod()),
    ],
)
def test_last_period_accepts(text, expected) -> None:
    assert parse_last_period(text, TODAY).value == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("tomorrow", "last_period_future"),
        ("12/15/2025", "last_period_future"),
        ("June 1", "last_period_too_old"),
        ("1/1/2020", "last_period_too_old"),
        ("purple", "last_period_format"),
        ("in two weeks", "last_period_future"),
        # "Not applicable" is only for patients with no periods, who say so.
        ("n/a", "last_period_not_applicable_unclear"),
        ("N/A", "last_period_not_applicable_unclear"),
        ("not applicable", "last_period_not_applicable_unclear"),
        ("it's a tubal ligation check", "last_period_tubal_check"),
        ("I had my tubes tied", "last_period_tubal_check"),
        # An HSG needs a uterus.
        ("I had a hysterectomy", "last_period_hysterectomy"),
        ("no periods since my hysterectomy", "last_period_hysterectomy"),
    ],
)
def test_last_period_refuses(text, hint) -> None:
    assert parse_last_period(text, TODAY).hint == hint


@pytest.mark.parametrize(
    ("text", "answers"),
    [
        ("Nov 10", True),
        ("I had a hysterectomy", True),
        ("tubal ligation check", True),
        ("n/a", True),
        ("purple", False),
        ("does it hurt?", False),
    ],
)
def test_an_answer_about_the_period_that_gets_its_own_hint_is_still_an_answer(
    text, answers
) -> None:
    assert is_last_period_answer(text, TODAY) is answers


@pytest.mark.parametrize(
    ("last_period_start", "window"),
    [
        # Cycle days 7-12 (period ~5 days, then "a few days to a week").
        (date(2025, 11, 25), (date(2025, 12, 1), date(2025, 12, 6))),
        # Window under way: it starts today.
        (date(2025, 11, 20), (TODAY, date(2025, 12, 1))),
        # Window already past: the same days of the next cycle, 28 days on.
        (date(2025, 11, 1), (date(2025, 12, 5), date(2025, 12, 10))),
        # Two cycles on.
        (date(2025, 10, 1), (date(2025, 12, 2), date(2025, 12, 7))),
    ],
)
def test_suggested_window(last_period_start, window) -> None:
    assert suggested_window(last_period_start, TODAY) == window


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("next tuesday afternoon", [date(2025, 12, 2)]),
        ("tomorrow", [date(2025, 11, 28)]),
        ("Dec 3 or Dec 5", [date(2025, 12, 3), date(2025, 12, 5)]),
        ("mornings", []),
        ("any weekday after 3", []),
        ("I may be free most mornings", []),
        ("N/A", []),
        ("Monday or Wednesday", [date(2025, 12, 1), date(2025, 12, 3)]),
        ("<b>mornings</b>", []),
    ],
)
def test_preferred_times_keep_the_words_and_find_future_dates(text, dates) -> None:
    result = parse_preferred_times(text, NOW)
    assert result.value.raw == text
    assert result.value.dates == dates


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("1/1/2020", "preferred_times_past"),
        ("last monday", "preferred_times_past"),
        ("😀", "preferred_times_format"),
        ("?!", "preferred_times_format"),
    ],
)
def test_preferred_times_refuse(text, hint) -> None:
    assert parse_preferred_times(text, NOW).hint == hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", "yes"),
        ("Yep", "yes"),
        ("yes, I'm allergic to iodine", "yes"),
        ("no", "no"),
        ("nope", "no"),
        ("I'm not pregnant", "no"),
        ("I don't think so", "no"),
        ("not sure", "unsure"),
        ("maybe", "unsure"),
        ("I don't know", "unsure"),
    ],
)
def test_yes_no_unsure_accepts(text, expected) -> None:
    assert parse_yes_no_unsure(text).value == expected


@pytest.mark.parametrize("text", ["what?", "purple", "N/A", "tomorrow", "<b>", "1 OR 1=1"])
def test_yes_no_unsure_refuses(text) -> None:
    assert parse_yes_no_unsure(text).hint == "yes_no_unsure"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("text me", "text"),
        ("SMS", "text"),
        ("please call", "call"),
        ("phone", "call"),
        ("email is best", "email"),
        ("e-mail", "email"),
        ("text or call", "text"),
    ],
)
def test_contact_method_accepts(text, expected) -> None:
    assert parse_contact_method(text).value == expected


@pytest.mark.parametrize("text", ["carrier pigeon", "N/A", "tomorrow", "yes", "<script>"])
def test_contact_method_refuses(text) -> None:
    assert parse_contact_method(text).hint == "contact_method_format"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Patel", "Dr. Patel"),
        ("Dr Susan Lee, Riverside OB/GYN (Suite 4)", "Dr Susan Lee, Riverside OB/GYN (Suite 4)"),
        ("skip", SKIPPED),
        ("none", SKIPPED),
        ("N/A", SKIPPED),
        ("self-referred", SKIPPED),
    ],
)
def test_referring_doctor_accepts(text, expected) -> None:
    assert parse_referring_doctor(text).value == expected


@pytest.mark.parametrize(
    "text", ["<script>alert(1)</script>", "x;DROP TABLE doctors", "😀", "12", "d" * 150]
)
def test_referring_doctor_refuses(text) -> None:
    assert parse_referring_doctor(text).hint == "referring_doctor_format"
