"""The message guard: warning signs always win, unusable messages go to the fallback."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from nlu_components.message_guard import GUARD_REASON_KEY, MessageGuard

guard = MessageGuard({"max_characters": 1000})


@pytest.mark.parametrize(
    "text",
    [
        "i have a fever since the hsg yesterday",
        "Running a temperature of 38.5 two days after the dye test",
        "my discharge smells really bad",
        "there's a foul smelling discharge",
        "greenish goo since tuesday's dye test",
        "some pus-like stuff down there after the procedure",
        "bleeding heavily, soaking a pad every hour",
        "the bleeding won't stop after my hsg",
        "the pain is getting worse not better",
        "SEVERE PAIN in my lower belly after the test",
        "my throat feels tight and my lips are swelling after the dye",
        "struggling to breathe since they put the contrast in",
        "hi, quick one about parking but also I've got chills and feel awful " + "x" * 2000,
    ],
)
def test_warning_signs_override_the_classifier(text: str) -> None:
    assert guard.override_reason(text) == "warning_sign"


@pytest.mark.parametrize(
    "text",
    [
        "does an hsg hurt?",
        "is spotting normal after the test",
        "can i bring my husband",
        "what should i wear",
        "light bleeding after my hsg",
    ],
)
def test_ordinary_questions_are_left_to_the_classifier(text: str) -> None:
    assert guard.override_reason(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   \n\t ", "empty"), ("a" * 1001, "too_long"), ("a" * 10_000, "too_long")],
)
def test_unusable_messages_go_to_the_fallback(text: str, reason: str) -> None:
    message = Message(data={"text": text, "intent": {"name": "greet", "confidence": 0.9}})
    guard.process([message])
    assert message.get("intent")["name"] == "nlu_fallback"
    assert message.get(GUARD_REASON_KEY) == reason


def test_override_puts_the_forced_intent_first_in_the_ranking() -> None:
    ranking = [{"name": "pain", "confidence": 0.6}, {"name": "warning_signs", "confidence": 0.3}]
    message = Message(
        data={"text": "fever and cramps", "intent": ranking[0], "intent_ranking": ranking}
    )
    guard.process([message])
    names = [entry["name"] for entry in message.get("intent_ranking")]
    assert message.get("intent")["name"] == "warning_signs"
    assert names == ["warning_signs", "pain"]
