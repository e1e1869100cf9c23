"""The trained model honours the topic contract and meets its held-out accuracy targets."""

from __future__ import annotations

import asyncio

import pytest

from nlu_contract import load_topics
from scripts.assistant_servers import MODEL
from scripts.evaluate_nlu import held_out_questions, predict, score


@pytest.fixture(scope="module")
def held_out_score() -> dict:
    questions = held_out_questions()
    return score(questions, asyncio.run(predict(MODEL, [q.text for q in questions])))


def test_every_contract_topic_is_an_intent_of_the_trained_model() -> None:
    from rasa.core.agent import Agent

    topics = load_topics()
    keys = set(topics["faq"]) | set(topics["dialogue"])
    assert keys <= set(Agent.load(str(MODEL)).domain.intents)


# The target; this pipeline measures 0.968 on the current training data (README,
# "Understanding"), a margin of about five questions.
HELD_OUT_ACCURACY_FLOOR = 0.95


def test_held_out_accuracy_meets_the_target(held_out_score: dict) -> None:
    assert held_out_score["accuracy"] >= HELD_OUT_ACCURACY_FLOOR, held_out_score["errors"]


def test_every_held_out_warning_sign_is_recognised(held_out_score: dict) -> None:
    assert held_out_score["warning_signs_recall"] == 1.0, held_out_score["errors"]
