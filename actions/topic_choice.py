"""Which topics to offer when the classifier is unsure, and which runner-up earns an "Also:" reply.

Patients write in ways the model has not seen. When it cannot tell two topics apart, a wrong
answer given with confidence costs more than one tap, so the fallback offers the likely topics
as buttons (numbered choices on SMS, see channels/sms_text.py) instead of "please rephrase", and
an answer whose runner-up is also plausible carries a quick reply to it.

Whether to answer or ask is the FallbackClassifier's decision (config.yml: threshold and
ambiguity_threshold); this module only reads the ranking Rasa keeps in the parse data
(``intent_ranking``), so the action server and the evaluation (scripts/evaluate_nlu.py) apply
the same rules. The floors below were chosen on the held-out set (tests/nlu), never on the
public sample (README, "Understanding").

Warning signs are never hidden behind a button: wherever warning_signs would be offered, its
answer is sent instead (actions/fallback.py, actions/runner_up.py).
"""

from __future__ import annotations

from typing import Any, Mapping

FALLBACK_INTENT = "nlu_fallback"
WARNING_SIGNS = "warning_signs"
GUARD_REASON_KEY = "guard_reason"  # set by nlu_components.message_guard

# The one place a topic's short button title is spelled. Short enough for a phone screen and for
# three numbered SMS choices to share one text; the greeting menu (domain/base.yml) uses the same
# titles (tests/actions/test_topic_choice.py).
TOPIC_TITLES: dict[str, str] = {
    "what_is_hsg": "What is an HSG?",
    "hsg_purpose": "Why have an HSG?",
    "hsg_alternatives": "Other tests instead of an HSG",
    "tubal_ligation_check": "Checking tied tubes",
    "procedure_steps": "What happens during it?",
    "procedure_duration": "How long does it take?",
    "pain": "Does it hurt?",
    "prep_timing": "When should I have it?",
    "prep_medication": "Medicines before the test",
    "prep_other": "Food, clothes and driving",
    "pregnancy_concern": "What if I might be pregnant?",
    "contrast_allergy": "Dye and iodine allergy",
    "risks": "Is it safe? The risks",
    "aftercare_symptoms": "What's normal afterwards?",
    "aftercare_activities": "Sex, baths and work after",
    WARNING_SIGNS: "Warning signs afterwards",
    "results": "Getting my results",
    "fertility_after": "Getting pregnant after",
    "radiation_safety": "Is the X-ray dose safe?",
    "cost_insurance": "Cost and insurance",
    "location_hours_contact": "Where, when and phone",
    "companion": "Bringing someone along",
    "book_appointment": "Request an appointment",
    "reschedule_cancel": "Move or cancel a booking",
    "human_handoff": "Talk to a person",
}

ALSO_PREFIX = "Also: "
# A topic the classifier gives less than this is not worth a button when it is unsure.
CHOICE_FLOOR = 0.1
MAX_CHOICES = 3
# A runner-up with at least this confidence is plausible enough for an "Also:" reply. On the held-out
# set 0.15 puts as many right answers one tap away as 0.1, with the reply on 7% of answers, not 11%.
RUNNER_UP_FLOOR = 0.15


def classifier_ranking(parse: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The classifier's (intent, confidence) ranking, without the fallback's own entry."""
    return [
        (entry.get("name"), float(entry.get("confidence") or 0.0))
        for entry in parse.get("intent_ranking") or []
        if entry.get("name") and entry.get("name") != FALLBACK_INTENT
    ]


def likely_topics(
    parse: Mapping[str, Any], floor: float = CHOICE_FLOOR, limit: int = MAX_CHOICES
) -> list[str]:
    """The topics worth offering for an unsure parse, most likely first (out_of_scope is never one)."""
    topics = [
        name
        for name, confidence in classifier_ranking(parse)
        if name in TOPIC_TITLES and confidence >= floor
    ]
    return topics[:limit]


def plausible_runner_up(parse: Mapping[str, Any], floor: float = RUNNER_UP_FLOOR) -> str | None:
    """The second topic of an answered parse, where it is plausible enough to offer too.

    None where the message guard chose the answer (its reason is the point, not the ranking) or
    where the answer was not the classifier's first choice (a tapped button has no runner-up).
    """
    if parse.get(GUARD_REASON_KEY):
        return None
    answered = (parse.get("intent") or {}).get("name")
    ranking = classifier_ranking(parse)
    if len(ranking) < 2 or ranking[0][0] != answered:
        return None
    name, confidence = ranking[1]
    return name if name in TOPIC_TITLES and confidence >= floor else None


def topic_button(topic: str, prefix: str = "") -> dict[str, str]:
    """A button that asks the topic's question as its intent payload."""
    return {"title": f"{prefix}{TOPIC_TITLES[topic]}", "payload": f"/{topic}"}
