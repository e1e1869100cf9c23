"""SMS text rules: keywords, numbered buttons, splitting at sentence ends, picking by number."""

from __future__ import annotations

import pytest

from channels.sms_text import (
    CHOICE_PROMPT,
    MAX_SMS_CHARACTERS,
    chosen_payload,
    keyword_of,
    plain_text,
    render_reply,
    sms_messages,
    split_for_sms,
)

GREETING_BUTTONS = [
    {"title": "What is an HSG?", "payload": "/what_is_hsg"},
    {"title": "Does it hurt?", "payload": "/pain"},
    {"title": "Request an appointment", "payload": "/book_appointment"},
]


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "STOP"),
        ("  stop. ", "STOP"),
        ("Help!", "HELP"),
        ("start", "START"),
        ("please stop texting me", ""),
        ("", ""),
        ("?!", ""),
    ],
)
def test_keyword_is_the_whole_message_in_capitals(body: str, keyword: str) -> None:
    assert keyword_of(body) == keyword


def test_buttons_become_a_numbered_list_with_a_prompt() -> None:
    text = render_reply({"text": "What would you like to know?", "buttons": GREETING_BUTTONS})

    assert text.splitlines() == [
        "What would you like to know?",
        "1. What is an HSG?",
        "2. Does it hurt?",
        "3. Request an appointment",
        CHOICE_PROMPT,
    ]


def test_markdown_links_are_spelled_out() -> None:
    text = "Call [800-220-2220](tel:800-220-2220) or read **the leaflet** [here](https://example.org/hsg)."

    assert (
        plain_text(text) == "Call 800-220-2220 or read the leaflet here: https://example.org/hsg."
    )


def test_short_replies_of_one_turn_share_one_message() -> None:
    messages = sms_messages(
        [
            {"text": "Hi, I'm the clinic's assistant."},
            {"text": "What would you like to know?", "buttons": GREETING_BUTTONS[:2]},
        ]
    )

    assert messages == [
        "Hi, I'm the clinic's assistant.\nWhat would you like to know?\n"
        f"1. What is an HSG?\n2. Does it hurt?\n{CHOICE_PROMPT}"
    ]


def test_long_text_is_split_at_sentence_ends_within_the_limit() -> None:
    sentences = [f"Sentence number {index} is here to make the text long." for index in range(20)]
    text = " ".join(sentences)

    parts = split_for_sms(text)

    assert len(parts) > 1
    assert all(len(part) <= MAX_SMS_CHARACTERS for part in parts)
    assert all(part.endswith(".") for part in parts)
    assert " ".join(parts) == text


def test_list_numbers_are_not_taken_for_sentence_ends() -> None:
    parts = split_for_sms("Pick one.\n1. What is an HSG?\n2. Does it hurt?", limit=20)

    assert parts == ["Pick one.", "1. What is an HSG?", "2. Does it hurt?"]


def test_a_sentence_longer_than_an_sms_is_cut_between_words() -> None:
    sentence = " ".join(["word"] * 200) + "."

    parts = split_for_sms(sentence)

    assert all(len(part) <= MAX_SMS_CHARACTERS for part in parts)
    assert " ".join(parts) == sentence


@pytest.mark.parametrize(
    ("answer", "payload"),
    [
        ("2", "/pain"),
        (" 3. ", "/book_appointment"),
        ("does it hurt", "/pain"),
        ("Request an appointment!", "/book_appointment"),
        ("4", None),
        ("0", None),
        ("does an hsg hurt a lot?", None),
    ],
)
def test_a_button_is_picked_by_number_or_title(answer: str, payload: str | None) -> None:
    assert chosen_payload(answer, GREETING_BUTTONS) == payload


def test_nothing_is_picked_when_no_buttons_were_offered() -> None:
    assert chosen_payload("1", []) is None


def test_a_list_of_choices_stays_in_one_sms_when_it_fits() -> None:
    long_intro = "Hi, I'm the clinic's automated assistant. " * 6
    messages = sms_messages(
        [
            {"text": long_intro},
            {"text": "What would you like to know?", "buttons": GREETING_BUTTONS},
        ]
    )

    with_choices = [message for message in messages if "1. What is an HSG?" in message]
    assert len(with_choices) == 1
    assert "3. Request an appointment" in with_choices[0]
    assert all(len(message) <= MAX_SMS_CHARACTERS for message in messages)
