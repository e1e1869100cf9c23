"""Last NLU step: routes unusable messages to the fallback and never lets a warning sign pass.

A classifier can miss "fever" inside a long message about something else; a patient with
a warning sign after an HSG must still be told to contact their doctor, so explicit
warning-sign phrases override whatever the classifier chose.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

WARNING_SIGNS_INTENT = "warning_signs"
# Added to the parse data so the fallback action can say why it could not answer.
GUARD_REASON_KEY = "guard_reason"

# Phrases that name a warning sign after an HSG (clinic article: fever, foul-smelling
# discharge, severe pain; facts.md/ASRM: heavy bleeding, worsening pain, swelling after the dye).
WARNING_SIGN_PATTERN = re.compile(
    r"""
    \bfever | \bfeverish | \bchills\b | \bhigh\ temp | \btemperature\ of\ (?:3[89]|10[0-4])
    | \b(?:foul|bad|awful|terrible|horrible|strong|fishy|rotten)[\s-]*(?:smell|smelling|odou?r)
    | \bsmell(?:s|ing)?\ (?:really\ |so\ |very\ )?(?:bad|foul|awful|terrible|rotten|fishy|off)\b | \bstinks?\b
    | \b(?:green|greenish|yellow|yellowish)\ (?:discharge|gunk|goo|gloop|mucus|slime|pus)
    | \bpus\b | \bpus-like
    | \bheavy\ bleeding | \bbleeding\ (?:heavily|a\ lot|really\ heavy)
    | \bsoak(?:ing|ed|s)?\ (?:through\ )?(?:a\ |my\ |one\ )?pads?
    | \bbleeding\ (?:won'?t|wont|doesn'?t|does\ not|hasn'?t|has\ not|isn'?t|is\ not)\ (?:stop|stopp)
    | \bhaemorrhag | \bhemorrhag
    | \bsevere\ (?:pain|cramp) | \bunbearable | \bexcruciating | \bagony\b
    | \bpain\ (?:is\ |keeps\ )?(?:getting|got|gets)\ worse | \bworsening\ pain | \bworse\ and\ worse
    | \bthroat\ (?:feels\ |is\ )?(?:tight|closing|swell) | \b(?:lips|face|tongue)\ (?:are\ |is\ )?swell
    | \bswollen\ (?:lips|face|tongue|throat) | \b(?:can'?t|cannot|cant)\ breathe
    | \b(?:trouble|difficulty|struggling\ to|hard\ to)\ breath | \bshort(?:ness)?\ of\ breath
    | \bhives\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class MessageGuard(GraphComponent, IntentClassifier):
    """Sends empty and over-long messages to the fallback and warning signs to warning_signs."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"max_characters": 1000}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.max_characters = int(config["max_characters"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MessageGuard:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            reason = self.override_reason(message.get(TEXT) or "")
            if reason:
                intent = (
                    WARNING_SIGNS_INTENT
                    if reason == "warning_sign"
                    else DEFAULT_NLU_FALLBACK_INTENT_NAME
                )
                _set_intent(message, intent)
                message.set(GUARD_REASON_KEY, reason, add_to_output=True)
        return messages

    def override_reason(self, text: Text) -> Optional[Text]:
        """Why the classifier's choice must be overridden: warning_sign, empty, too_long."""
        if WARNING_SIGN_PATTERN.search(text):
            return "warning_sign"
        if not text.strip():
            return "empty"
        if len(text) > self.max_characters:
            return "too_long"
        return None


def _set_intent(message: Message, intent_name: Text) -> None:
    intent = {INTENT_NAME_KEY: intent_name, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [
        entry
        for entry in message.get(INTENT_RANKING_KEY) or []
        if entry.get(INTENT_NAME_KEY) != intent_name
    ]
    message.set(INTENT, intent, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
