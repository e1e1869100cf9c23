"""Last NLU step: routes unusable messages to the fallback and never lets a reported warning sign pass.

A classifier can miss "fever" inside a long message about something else, or take "im itchy all
over now" for an ordinary aftercare question; a patient who reports a warning sign after an HSG
must still be told to contact their doctor now. So a message that *reports* a warning sign gets
the warning_signs intent whatever the classifier chose, also in the middle of the appointment
form (actions/forms.py treats ``guard_reason: warning_sign`` as an interruption).

Asking about a warning sign in advance ("will I bleed heavily?", "what if I get a rash?") and
saying one is absent ("no fever", "I don't have any heavy bleeding") are not reports: they keep
the classifier's topic, whose answer (pain, aftercare, allergy...) fits the question better. Only
when the classifier found no topic for such a question (fallback, out of scope, a bare "yes") does
it get the warning_signs answer, which is then the topic it asks about.

Patients type in lower case, without punctuation, with typos and texting shorthand, so the text is
normalised first and every pattern is written for that normalised text.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Text

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
# Added to the parse data so the fallback action can say why it could not answer, and so the
# appointment form knows a warning sign is never an answer to its question.
GUARD_REASON_KEY = "guard_reason"
WARNING_SIGN_REASON = "warning_sign"

# Intents that cannot answer a question about a warning sign: such a question goes to warning_signs.
DEFAULT_NO_ANSWER_INTENTS = (
    DEFAULT_NLU_FALLBACK_INTENT_NAME,
    "out_of_scope",
    "inform",
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "bot_challenge",
)

# How a message speaks of one warning sign.
REPORT, QUESTION, NEGATED, HISTORY = "report", "question", "negated", "history"


# --- normalisation ------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"[\u2018\u2019\u201b\u02bc\u00b4`]")
# Texting shorthand and contractions typed without an apostrophe, as the patterns expect them.
_SHORTHAND = {
    r"\bim\b": "i'm",
    r"\bi m\b": "i'm",
    r"\bive\b": "i've",
    r"\bdont\b": "don't",
    r"\bdoesnt\b": "doesn't",
    r"\bdidnt\b": "didn't",
    r"\bisnt\b": "isn't",
    r"\barent\b": "aren't",
    r"\bwasnt\b": "wasn't",
    r"\bhavent\b": "haven't",
    r"\bhasnt\b": "hasn't",
    r"\bwont\b": "won't",
    r"\bcant\b": "can't",
    r"\bcannot\b": "can't",
    r"\bcan not\b": "can't",
    r"\bcouldnt\b": "couldn't",
    r"\bthats\b": "that's",
    r"\bw/o\b": "without",
    r"\bw/": "with ",
    r"\bthru\b": "through",
    r"\brn\b": "right now",
    r"\batm\b": "at the moment",
    r"\bu\b": "you",
    r"\bur\b": "your",
    r"\bhrs?\b": "hour",
    r"\btemps?\b": "temp",
}
_SHORTHAND_PATTERNS = [(re.compile(pattern), value) for pattern, value in _SHORTHAND.items()]

# Longer words the patterns rely on, for typo correction ("bleading", "excrutiating",
# "vommiting"); short ones ("fevr", "ichy") are spelled out in the patterns instead.
_TYPO_VOCABULARY = frozenset(
    "allergic bleeding breathing cramping discharge excruciating fainted fainting feverish "
    "heavily itching painful pregnant reaction shivering smelling soaking spotting swelling "
    "swollen temperature throwing unbearable vomited vomiting worsening".split()
)
# Real words one typo away from a vocabulary word: never "corrected".
_NOT_TYPOS = frozenset(
    "breeding bleeping pleading spitting slotting spelling selling shelling swilling cramming "
    "clamping inching reactions redaction slivering painted smoking".split()
)
_MIN_TYPO_LENGTH = 6


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe, shorthand spelled out and typos of key words fixed."""
    text = _APOSTROPHES.sub("'", text.lower())
    for pattern, value in _SHORTHAND_PATTERNS:
        text = pattern.sub(value, text)
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(rf"[a-z]{{{_MIN_TYPO_LENGTH},}}", lambda match: _corrected(match.group()), text)


def _corrected(word: str) -> str:
    """The vocabulary word ``word`` is a typo of, or ``word`` itself."""
    if word in _NOT_TYPOS or word in _TYPO_VOCABULARY:
        return word
    candidates = {
        known
        for known in _TYPO_VOCABULARY
        if known[0] == word[0]
        and _edit_distance(word, known, _typos_allowed(known)) <= _typos_allowed(known)
    }
    return candidates.pop() if len(candidates) == 1 else word


def _typos_allowed(known: str) -> int:
    """Two typos only in long words: "breaking" is two edits from "breathing" and means something else."""
    return 2 if len(known) >= 10 else 1


def _edit_distance(first: str, second: str, cap: int) -> int:
    """Optimal string alignment distance (a swap of two letters counts once), stopping above ``cap``."""
    if abs(len(first) - len(second)) > cap:
        return cap + 1
    previous_row: List[int] = []
    row = list(range(len(second) + 1))
    for i, letter in enumerate(first, start=1):
        before, previous_row, row = previous_row, row, [i] + [0] * len(second)
        for j, other in enumerate(second, start=1):
            row[j] = min(
                previous_row[j] + 1,
                row[j - 1] + 1,
                previous_row[j - 1] + (letter != other),
            )
            if i > 1 and j > 1 and letter == second[j - 2] and first[i - 2] == other:
                row[j] = min(row[j], before[j - 2] + 1)
        if min(row) > cap:
            return cap + 1
    return row[-1]


# --- what counts as a warning sign --------------------------------------------------------
# Sources: clinic article (fever, foul-smelling discharge, severe pain); facts.md warning_signs and
# risks (ASRM: pain that gets worse, heavy bleeding, fainting, rash, itching or swelling after the
# dye; Guerbet: pain or bleeding that does not stop; NHS/Kentucky contrast sheet: breathing trouble,
# hives; pregnancy with bleeding or one-sided pain: ectopic pregnancy, facts.md tubal_ligation_check).

# Not "pain tolerance" or "pain threshold": a trait, not a symptom.
_PAIN = r"(?:pains?|painful|cramps?|cramping|crampy|aches?|aching|hurts?|hurting|sore(?:ness)?|(?:stomach|tummy|belly)\s?ache)(?!\s+(?:tolerance|threshold))"
# One word that is not a negation: the filler slots of the patterns must not swallow the "not"
# of "the pain is not getting worse".
_NOT_NEG = r"(?:(?!(?:not|never|no|hardly|barely|[a-z]+n't)\b)[a-z0-9']+\s+)"
_NEGATED_VERB = (
    r"(?:won't|will\s+not|doesn't|does\s+not|isn't|is\s+not|not|hasn't|has\s+not|haven't|"
    r"have\s+not|aren't|are\s+not|never|didn't|did\s+not|don't|do\s+not|can't)"
)
_TEMP_WORD = r"(?:temp|temperature|thermometer|fever)"
_FEVER_C = r"(?:3[89]|4[0-2])(?:[.,]\d{1,2})?"
_FEVER_F = r"(?:10[0-6])(?:[.,]\d{1,2})?"
_NOT_A_UNIT = r"(?!\d|[.,]\d|\s*(?:kg|kgs|lbs?|pounds|mg|ml|%|cm|mm|weeks?|wks?|days?|years?|yrs?|hours?|minutes?|mins?|am|pm|h)\b)"
_FACE = r"(?:lips?|face|tongue|throat|eyes?|eyelids?|mouth|cheeks?)"
_DISCHARGE = (
    r"(?:discharge|gunk|goo|gloop|goop|mucus|mucous|slime|fluid|stuff|liquid|pus|ooze|oozing)"
)
_COLOUR = r"(?:green|greenish|greeny|yellow|yellowish|yellowy|grey|gray|greyish|grayish|frothy|foamy|colou?red)"
_PREGNANT = r"(?:pregnant|preggers|preggo|bfp|ectopic|positive\s+(?:\w+\s+){0,2}?tests?|pregnancy(?!\s+tests?))"

# Each kind's phrases. "Measured" ones (a temperature figure, a pad an hour, below) are reports
# even inside a question: nobody asks about "38.5" they have not read off a thermometer.
_KIND_PHRASES: Dict[str, List[str]] = {
    "fever": [
        r"(?<!hay\s)(?<!yellow\s)(?<!cabin\s)(?<!scarlet\s)(?<!glandular\s)\bf(?:e|ee|ea|ie)[vb](?:[eaou]?r|re)(?:s|ish|y)?\b",
        r"\bfebrile\b",
        r"\bchills?\b",
        r"\bshiver(?:s|ing|y)?\b",
        r"\brigou?rs\b",
        r"\bhot\s+(?:and|then|n)\s+cold\b",
        r"\bcold\s+sweats?\b",
        r"\bburning\s+up\b",
        r"\b(?:high|raised|elevated)\s+temp(?:erature)?\b",
        r"\b(?:running|got|have|has|had|with)\s+a\s+temp(?:erature)?\b(?!\s+(?:of|at|is)\s+3[0-7])",
    ],
    "discharge": [
        r"\b(?:foul|bad|awful|terrible|horrible|strong|fishy|rotten|nasty|gross|funky|funny|weird|strange|rank|putrid|disgusting|pungent|unusual|off)[\s-]+(?:[a-z]+[\s-]+)?(?:smell\w*|odou?r\w*|stench|scent)",
        r"\bsmell(?:s|ing|ed)?\s+(?:[a-z]+\s+){0,2}?(?:bad|foul|awful|terrible|horrible|rotten|fishy|off|weird|funny|strange|nasty|gross|like\s+(?:fish|rot|death|garbage|something))",
        r"\b(?:stinks?|stinky|stinking|stank|smelly|reeks?|reeking|stench|malodorous|odou?r)\b",
        rf"\b{_COLOUR}(?:[\s-]+[a-z]+){{0,2}}?[\s-]+{_DISCHARGE}\b",
        rf"\b{_DISCHARGE}\s+(?:[a-z']+\s+){{0,4}}?{_COLOUR}\b",
        rf"\b(?:weird|strange|abnormal|unusual|odd)(?:[\s-]+[a-z]+)?[\s-]+(?:discharge|{_DISCHARGE}\s+coming)",
        r"\bpus\b|\bpus-\w+|\bpurulent\b",
    ],
    "pain": [
        r"\bagony\b|\bagoni[sz]ing\b|\bunbearabl[ey]\b|\bexcruciating\w*|\bunbearable\b|\bexcruciating\b",
        rf"\b(?:severe|severely|extreme|intense|crippling|debilitating|horrible|horrendous|terrible|awful|worst|insane|(?:really|very|so|super|extremely|incredibly|seriously|unbelievably|sooo+)\s+(?:bad|strong|painful|sharp|intense))\s+(?:[a-z]+\s+)?{_PAIN}",
        rf"\b{_PAIN}\s+(?:[a-z]+\s+){{0,2}}?(?:is|are|was|were|feels?|feeling|getting|gotten|got|has\s+been|have\s+been|been|'s)\s+{_NOT_NEG}?(?:severe|extreme|intense|horrible|terrible|awful|(?:really|very|so|super|extremely|way\s+too)\s+(?:bad|strong|painful|intense|sharp))",
        rf"\b(?:{_PAIN}|it|it's|its|this|everything|things|symptoms?)\s+(?:[a-z']+\s+){{0,4}}?(?:getting|got|gets|get|going|grown|growing|becoming|became|gone|feels?|is|are)\s+(?:[a-z]+\s+)?(?:worse|stronger|more\s+intense|more\s+painful)\b",
        rf"\bworsening\s+(?:[a-z]+\s+)?{_PAIN}|\bworse\s+and\s+worse\b|\bworse\s+(?:[a-z]+\s+)?{_PAIN}",
        r"\b(?:and|keeps?|kept|still|only)\s+(?:getting|got)\s+worse\b",
        rf"\b{_PAIN}\s+(?:[a-z']+\s+){{0,4}}?{_NEGATED_VERB}\s+(?:[a-z]+\s+)?(?:go(?:ing)?\s+away|gone\s+away|went\s+away|go(?:ing)?\s+down|ease|easing|eased|stop|stopping|stopped|let(?:ting)?\s+up|settle|settling|settled|calm(?:ing)?\s+down|improve|improving|improved|better|subside|subsiding|subsided|budge|budging|fade|fading|faded|quit|quitting)\b",
        r"\b(?:won't|will\s+not|doesn't|isn't|not|never)\s+go(?:ing)?\s+away\b",
        r"\b(?:pain\s*killers?|pain\s+(?:meds?|medicine|medication|relief|pills?)|meds|medication|medicine|ibuprofen|advil|motrin|tylenol|paracetamol|acetaminophen|panadol|naproxen|aleve|nurofen)\s+(?:[a-z']+\s+){0,3}?"
        + _NEGATED_VERB
        + r"\s+(?:[a-z]+\s+)?(?:help|helping|helped|work|working|worked|touch|touching|touched|doing\s+anything|do\s+anything|doing\s+much|make\s+a\s+difference|making\s+a\s+difference)\b",
        r"\bnothing\s+(?:is\s+)?(?:helps|helping|works|working|touches)\b",
        r"\b(?:pain\s*killers?|pain\s+(?:meds?|medicine|medication|pills?)|meds|ibuprofen|advil|motrin|tylenol|paracetamol|acetaminophen|panadol|naproxen|aleve|nurofen)\s+(?:is\s+|are\s+)?(?:did|does|do|doing)\s+nothing\b",
        r"\b(?:can't|couldn't|could\s+not|unable\s+to|can\s+barely|could\s+barely|can\s+hardly|barely\s+able\s+to)\s+(?:even\s+)?(?:stand(?:\s+up)?(?:\s+straight)?|walk|move|get\s+up|get\s+out\s+of\s+bed|sit\s+up|straighten\s+up)\b",
        rf"\b(?:can't|couldn't)\s+sleep\s+(?:because\s+of|from|with|for)\s+(?:the\s+|my\s+)?{_PAIN}",
        r"\bdoubled\s+over\b|\bbent\s+over\s+in\s+pain\b|\bcurled\s+up\s+in\s+(?:a\s+)?ball\b",
        rf"\b(?:{_PAIN}|stomach|belly|tummy|back|uterus|womb|it|it's|its|this)\s+(?:is\s+|are\s+)?killing\s+me\b",
        r"\b(?:hurts?|hurting|aches?|aching|cramping)\s+(?:so|really|very|super|extremely|way\s+too|too)\s+(?:bad|badly|much)\b",
        rf"\b{_PAIN}\s+(?:so|really|very|super|extremely|unbelievably|way\s+too|too)\s+bad\b",
        r"\bin\s+(?:so\s+much|a\s+lot\s+of|severe|terrible|horrible|awful|extreme|unbearable|constant)\s+pain\b",
        rf"\b(?:crying|screaming|sobbing|in\s+tears)\s+(?:from|with|because\s+of|in|of)\s+(?:the\s+)?{_PAIN}",
        # Pain scores: a report when stated, but not when heard of or asked about in advance.
        r"\b(?:7|8|9|10|seven|eight|nine|ten)\s*(?:out\s+of|outta)\s*(?:10|ten)\b",
        rf"\b{_PAIN}\b.{{0,40}}?\b(?:7|8|9|10)\s*/\s*10\b|\b(?:7|8|9|10)\s*/\s*10\b.{{0,40}}?\b{_PAIN}",
        rf"\b{_PAIN}\s+(?:[a-z']+\s+){{0,3}}?(?:is|at|of|'s|level|score|about|around|like)\s+(?:an?\s+|like\s+an?\s+)?(?:7|8|9|10|seven|eight|nine|ten)\b(?!\s*(?:am|pm|days?|hours?|mins?|minutes?|weeks?|:|\.\d))",
        r"\bscale\s+(?:of\s+)?(?:0|1|one|zero)\s*(?:-|to)\s*10\W+(?:[a-z']+\W+){0,4}?(?:7|8|9|10|seven|eight|nine|ten)\b",
    ],
    "bleeding": [
        r"\bheavy\s+(?:[a-z]+\s+)?(?:bleeding|bleed|blood)\b|\bheavily\s+bleeding\b",
        r"\b(?:bleed|bleeding|bled|bleeds)\s+(?:[a-z]+\s+)?(?:heavily|heavy|a\s+lot|alot|loads|lots|so\s+much|too\s+much|really\s+bad|badly|like\s+crazy|non-?stop|everywhere|through)\b",
        r"\b(?:lots|loads|tons|so\s+much|too\s+much|a\s+ton|a\s+lot|large\s+amounts?|huge\s+amounts?)\s+of\s+(?:[a-z]+\s+)?blood\b|\bmore\s+blood\s+than\b",
        r"\bblood\s+(?:all\s+over|everywhere|on\s+the\s+(?:floor|sheets|bed|seat|toilet))\b|\b(?:pool|puddle)\s+of\s+blood\b|\bcovered\s+in\s+blood\b",
        r"\b(?:bleed\w*|blood|flow|spotting)\s+(?:[a-z]+\s+){0,3}?(?:getting|got|gets|becoming|became|is|are)\s+(?:[a-z]+\s+)?heavier\b|\bheavier\s+and\s+heavier\b",
        r"\b(?:bleed\w*|blood)\s+more\s+and\s+more\b|\bmore\s+and\s+more\s+(?:blood|bleeding)\b|\bsoak(?:ed|ing)\s+through\b",
        r"\b(?:blood\s+)?clots?\b|\bclotting\b",
        r"\bsoak(?:ed|ing|s)?\s+(?:through\s+)?(?:[a-z]+\s+){0,2}?(?:pads?|tampons?|underwear|pants|knickers|clothes|sheets|bed|towels?|jeans)\b",
        r"\b(?:a|one|1|every|each|another)\s+pad\s+(?:an?|every|per|each|in\s+an?|within\s+an?|in\s+less\s+than\s+an?)\s*(?:hour|\d+\s*(?:hours?|min\w*)|half\s+hour)",
        r"\bpads?\s+(?:every|an?|per|each)\s+(?:hour|\d+\s*min\w*|half\s+hour|couple\s+of\s+hours)",
        r"\b(?:gone|went|going|go)\s+through\s+(?:[a-z0-9]+\s+){0,2}?pads?\b|\b(?:filled|filling)\s+(?:[a-z]+\s+){0,2}?pads?\b",
        r"\bchang(?:e|ed|ing)\s+(?:my\s+)?pads?\s+every\s+(?:hour|\d+\s*min\w*|half)",
        r"\b(?:pouring|gushing|gushes|haemorrhag\w*|hemorrhag\w*)\b",
        r"\b(?:bleed\w*|blood|spotting)\s+(?:[a-z]+\s+){0,2}?"
        + _NEGATED_VERB
        + r"\s+(?:[a-z]+\s+)?(?:stop|stopped|stopping|slow|slowing|slowed|ease|easing|let\s+up|letting\s+up|end|ending|ended|settle|settling|die\s+down|dying\s+down)\b",
        r"\bheavier\s+than\s+(?:a\s+|my\s+)?(?:normal\s+|regular\s+|usual\s+)?(?:period|normal)\b",
        r"\b(?:bleed\w*|blood|flow)\s+(?:[a-z']+\s+){0,2}?(?:worse|more)\s+than\s+(?:a\s+|my\s+|any\s+)?(?:[a-z]+\s+)?period\b",
    ],
    "fainting": [
        r"\b(?:fainted|fainting|feinted|passed\s+out|passing\s+out|pass\s+out|past\s+out|blacked\s+out|blacking\s+out|black\s+out|lost\s+consciousness|losing\s+consciousness|collapsed|collapsing|keeled\s+over)\b",
        # Not "feel faint": feeling dizzy is a normal after-effect (clinic article).
        r"\b(?:going\s+to|gonna|about\s+to)\s+(?:[a-z]+\s+)?faint\b",
    ],
    "allergic_reaction": [
        r"\brash(?:es|y)?\b|\bhives\b|\bwelts?\b|\bbreaking\s+out\b|\bbroke\s+out\b",
        r"\bitch(?:y|ey|ie|ing|iness|es)?\b|\bichy\b|\biching\b",
        rf"\b{_FACE}\s+(?:[a-z']+\s+){{0,3}}?(?:swell\w*|swollen|puff\w*|tight\w*|tingl\w*|closing|blow\w*\s+up|feels?\s+thick)",
        rf"\b(?:swollen|swelling|puffy|puffed\s+up|swelled\s+up|tingly|tingling)\s+(?:[a-z]+\s+)?{_FACE}\b",
        r"\btight(?:ness)?\s+(?:in\s+)?(?:my\s+|the\s+)?(?:throat|chest)\b|\bchest\s+(?:[a-z']+\s+)?tight\w*",
        r"\b(?:can't|couldn't|could\s+not|unable\s+to|struggling\s+to|struggle\s+to|hard\s+to|hard\s+time|difficult\s+to|trouble|difficulty|problems?|issues?)\s+(?:[a-z]+\s+)?(?:breath\w*|breth\w*|swallow\w*)",
        r"\bshort(?:ness)?\s+of\s+breath\b|\bout\s+of\s+breath\b|\bbreathless\w*|\bwheez\w*|\bgasping\b",
        r"\bcan't\s+(?:catch|get)\s+my\s+breath\b|\bbreathing\s+(?:is\s+)?(?:[a-z]+\s+)?(?:hard|difficult|weird|funny|shallow|labou?red)\b",
        r"\b(?:allergic\s+)?(?:reaction|reacting|reacted)\b|\banaphyla\w*",
    ],
    "vomiting": [
        r"\b(?:keep|keeps|kept|been|still|can't\s+stop|won't\s+stop|non-?stop|constantly|repeatedly)\s+(?:[a-z]+\s+)?(?:vomit\w*|throw(?:ing)?\s+up|puk\w*|being\s+sick|been\s+sick)",
        r"\b(?:vomit\w*|threw\s+up|thrown\s+up|throwing\s+up|puked|puking|been\s+sick)\s+(?:[a-z]+\s+){0,3}?(?:again|twice|several\s+times|multiple\s+times|many\s+times|(?:\d+|two|three|four|five|six|a\s+few|a\s+couple(?:\s+of)?|few)\s+times|all\s+(?:day|night|morning|afternoon|evening)|non-?stop|repeatedly)\b",
        r"\b(?:vomiting|throwing\s+up|puking)\b",
        r"\bcan't\s+keep\s+(?:anything|water|food|fluids|liquids|it)\s+down\b",
    ],
}
# Read off a thermometer or counted in pads: always a report.
_MEASURED_PHRASES: Dict[str, List[str]] = {
    "fever": [
        rf"\b{_TEMP_WORD}\s+(?:[a-z']+\s+){{0,3}}?(?:like\s+|about\s+|around\s+|over\s+|above\s+)?(?:{_FEVER_C}|{_FEVER_F}){_NOT_A_UNIT}",
        rf"(?<![\d.,/$£-])(?:{_FEVER_C}|{_FEVER_F})\s*(?:°|º|deg\w*)\s*(?:[cf]\b|celsius|fahrenheit)?",
        rf"(?<![\d.,/$£-])(?:{_FEVER_C})\s*c(?:elsius)?\b|(?<![\d.,/$£-])(?:{_FEVER_F})\s*f(?:ahrenheit)?\b",
        rf"(?<![\d.,/$£:-])(?:3[89]|4[0-2]|10[0-5])\.\d{_NOT_A_UNIT}(?![./-]\d)",
    ],
    "bleeding": [
        r"\b(?:a|one|1|every|each|another)\s+pad\s+(?:an?|every|per|each|in\s+an?|within\s+an?|in\s+less\s+than\s+an?)\s*(?:hour|\d+\s*(?:hours?|min\w*)|half\s+hour)",
        r"\bpads?\s+(?:every|an?|per|each)\s+(?:hour|\d+\s*min\w*|half\s+hour)",
    ],
}
# Pregnancy is a warning sign only with bleeding or one-sided pain (an ectopic pregnancy).
_PREGNANCY_PHRASES = [rf"\b{_PREGNANT}\b"]
_WITH_PREGNANCY_PHRASES = [
    r"\b(?:bleed\w*|blood|spotting)\b",
    rf"\b{_PAIN}\s+(?:[a-z]+\s+){{0,3}}?(?:on|in|down)\s+(?:my\s+|the\s+)?(?:left|right|one)\s+(?:side|ovary)\b",
    rf"\b(?:left|right|one)[\s-]+(?:sided|side)\s+(?:[a-z]+\s+)?{_PAIN}",
    r"\b(?:left|right|one)\s+side\s+(?:[a-z]+\s+)?(?:hurts?|is\s+(?:[a-z]+\s+)?(?:sore|painful))\b",
    r"\bshoulder\s+(?:tip\s+)?pain\b",
]


def _compile(phrases: Iterable[str]) -> re.Pattern:
    """One pattern of ``phrases``, whose any-word slots never take a negation."""
    joined = "|".join(f"(?:{phrase})" for phrase in phrases)
    for any_word in (r"(?:[a-z]+\s+)", r"(?:[a-z']+\s+)", r"(?:[a-z0-9]+\s+)"):
        joined = joined.replace(any_word, _NOT_NEG)
    return re.compile(joined)


KIND_PATTERNS = {kind: _compile(phrases) for kind, phrases in _KIND_PHRASES.items()}
MEASURED_PATTERNS = {kind: _compile(phrases) for kind, phrases in _MEASURED_PHRASES.items()}
PREGNANCY_PATTERN = _compile(_PREGNANCY_PHRASES)
WITH_PREGNANCY_PATTERN = _compile(_WITH_PREGNANCY_PHRASES)


# --- how the message speaks of it ---------------------------------------------------------

# A negation applies to the sign it comes just before: "no fever", "didn't pass out", "not
# having a reaction", "no fever, chills or rash". Only these words may stand between the two.
_NEGATION_CUES = frozenset(
    "no not don't doesn't didn't haven't hasn't never without none nor isn't wasn't aren't "
    "weren't zero negative".split()
)
_NEGATION_FILLERS = frozenset(
    "any a an the some more real really much major serious significant big obvious sign signs "
    "symptom symptoms of sort kind type have has had having got get getting gotten noticed notice "
    "seen see felt feel feeling experienced experiencing been with like too at all yet currently "
    "think believe suppose it it's its is was there there's that that's seem seems to be my "
    "or nor , anything in".split()
)
_SUBJECTS_AFTER_THINK = frozenset("i i'm it it's its there's that's this".split())
_THINKING = frozenset("think believe suppose".split())
_MAX_NEGATION_GAP = 7

_SENTENCE = re.compile(r"(?:[^.!?;\n]|\.(?=\S))+[.!?;]*")
# "but" starts a new thought: nothing said before it carries over. Commas only separate clauses.
_CONTRAST = re.compile(r"\b(?:but|however|although|though|except|yet)\b")
_CLAUSE_BREAK = re.compile(r",(?!\d)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|,")

# The patient speaking of their own state now: "i have", "i'm", "i've been", "am i", "my".
_SELF_STATE = re.compile(
    r"(?<![a-z'])(?:i'm|i\s+am|i've|i\s+(?:[a-z]+ly\s+|just\s+|also\s+|now\s+|still\s+|def\s+|kinda\s+|literally\s+)*"
    r"(?:have|has|got|had|feel|felt|been|bled|bleed|fainted|passed|vomited|threw|keep|kept|started|"
    r"noticed|woke|developed|think|thought|believe|guess|might|may|could\s+be|can't|couldn't|seem|"
    r"am|soaked|broke)|am\s+i|do\s+i\s+have|my(?!\s+(?:friend|friends|sister|mum|mom|mother|cousin|aunt|colleague|co-?worker|neighbou?r)\b))\b"
    # Someone writing for the patient: "my wife has a fever", "she passed out".
    r"|\b(?:she|she's|wife|partner|girlfriend|daughter|fiancee?)\s+(?:is|has|had|got|keeps|kept|can't|passed|fainted|bled|started|feels|felt)\b"
)
# Words before "i"/"my" that make what follows hypothetical or future: "what if i get", "will i".
_HYPOTHETICAL_BEFORE = re.compile(
    r"\b(?:if|when|whether|once|case|will|would|could|might|may|should|shall|can|to|gonna|going)\s*$"
)
# "i'm worried/nervous..." is not a state of the body.
_NOT_A_STATE = re.compile(
    r"\s*(?:worried|scared|nervous|afraid|concerned|wondering|curious|anxious|terrified|dreading|frightened|petrified|stressed|booked|due|having\s+(?:my|an?|the)\s+(?:hsg|test|procedure|exam|appointment|scan))\b"
)
# After the sign: "the rash i got", "the bleeding i'm having".
_SELF_AFTER = re.compile(r"\s*(?:that\s+)?i(?:'m|'ve)?\s+(?:have|got|had|having|getting)\b")
# Between "i have" and the sign: words that show a question rather than a report.
_ASKING_WORDS = re.compile(
    r"\b(?:question|questions|query|wondering|wonder|curious|asking|ask|worried|scared|nervous|afraid|concerned|about|will|would|if|whether|hsg|test|appointment|procedure|exam|scan|tomorrow|next"
    r"|read|heard|said|told|can|could|may|might|be)\b"
)

# The sign is here and now: a time since, "still", "now".
_NOW = re.compile(
    r"\bsince\s+(?:yesterday|last|this|the|my|then|monday|tuesday|wednesday|thursday|friday|saturday|sunday|morning|early|earlier|tonight|lunch|getting|leaving|coming|waking|i\s+(?:got|left|came|woke|had|went)|\d)"
    r"|\bstill\b|\bright\s+now\b|\bcurrently\b|\bat\s+the\s+moment\b|\bnow\b"
    r"|\ball\s+(?:day|night|morning|afternoon|evening|weekend)\b|\bfor\s+(?:the\s+)?(?:last|past)\s+"
    r"|\bfor\s+(?:\d+|a\s+few|a\s+couple(?:\s+of)?|two|three|four|five|six|several|many)\s+(?:hours?|days?|minutes?|mins?)\b"
)
# The patient asks about what they have: "is this normal", "what do i do", "should i go to the er".
_ASKS_ABOUT_OWN = re.compile(
    r"\b(?:is|isn't|was)\s+(?:this|that)\s+(?:normal|ok|okay|alright|bad|serious|dangerous|an?\s+emergency|something|a\s+problem|a\s+sign|an?\s+(?:allergic\s+)?reaction|an?\s+infection|concerning|worrying|expected|common|typical|usual|too|a\s+lot|heavy)\b"
    r"|\b(?:this|that)\s+(?:is|'s)\s+not\s+normal\b|\bthat's\s+(?:normal|ok|okay|bad)\b"
    r"|^(?!.*\b(?:if|when|in\s+case)\b).*(?:\bshould\s+i\s+(?:go|call|ring|head|get\s+checked|see\s+a|come\s+in)\b|\bwhat\s+(?:should|do|can|shall)\s+i\s+do\b)"
    r"|\bhelp\s+me\b|^\s*help\b"
)
# The exam itself: pain or fainting *during* the HSG is the pain topic, not a warning sign now.
_DURING_THE_EXAM = (
    r"|\bduring\s+(?:the\s+|my\s+|an\s+)?(?:test|procedure|exam|hsg|injection|scan|x-?ray)\b"
    r"|\bwhen\s+(?:they|the\s+doctor|the\s+radiologist|the\s+nurse|she|he|the\s+dye|the\s+catheter|the\s+tube|the\s+speculum|the\s+balloon)\s+"
    r"(?:put|inserted|injected|pushed|did|went|was|were|started|came|inflated|opened)\b"
    r"|\bwhile\s+(?:they|the\s+dye|the\s+doctor)\b"
)
# Said of the past before this test: "had a reaction to contrast years ago", "hives from shellfish".
_HISTORY = re.compile(
    r"\b(?:years?|yrs?|months?)\s+(?:ago|back)\b"
    r"|\bin\s+the\s+past\b|\bhistory\s+of\b|\blast\s+(?:year|time)\b|\bprevious(?:ly)?\b"
    r"|\bas\s+a\s+(?:kid|child|teen\w*|baby)\b|\bwhen\s+i\s+was\s+(?:a\s+)?(?:kid|child|little|young|younger|teen\w*)\b"
    r"|\bbefore\s*[.!?]*$|\bonce\s+before\b|\bin\s+(?:19|20)\d\d\b"
    r"|\bsmears?\b|\bpap\b|\biuds?\b|\bcoil\b|\bcolposcopy\b|\bbiopsy\b|\bhysteroscopy\b|\blaparoscopy\b"
    r"|\b(?:ct|cat)\s+scans?\b|\bmri\b|\bivp\b|\bangiogram\b|\b(?:previous|prior|past|other|earlier|different|another)\s+(?:scan|test|procedure|x-?ray)\b"
    r"|\b(?:shellfish|seafood|penicillin|peanuts?|nuts|latex|bee\s+stings?|eczema)\b"
    # Periods and long-standing conditions told for the appointment request.
    r"|\b(?:had|got|started|finished|ended)\s+my\s+(?:last\s+)?period\b|\b(?:during|on|with|in)\s+my\s+(?:last\s+)?periods?\b"
    r"|\bmy\s+periods?\s+(?:is|are|was|were|tend|always|usually)\b|\bevery\s+(?:period|month|cycle)\b"
    r"|\bblood\s+thinners?\b|\b(?:dvt|anticoagula\w*|warfarin|xarelto|eliquis|heparin)\b"
    r"|\bi\s+(?:always\s+|usually\s+|normally\s+|sometimes\s+)?get\b|\bevery\s*time\b|\bwhenever\b"
    r"|(?<!than\s)(?<!like\s)(?<!than\smy\s)(?<!than\sa\s)(?<!like\smy\s)(?<!like\sa\s)\b(?:period|menstrual)\s+(?:pain|pains|cramps?|cramping)\b(?!\s+(?:times|x\s*\d|but\s+worse))"
    r"|\b(?:endometriosis|endo|fibroids?|pcos|adenomyosis)\b" + _DURING_THE_EXAM
)
# A question asked in advance, or a hypothetical: "will i", "what if", "is it normal to". Judged
# per clause (a "?" only for its own clause): "bleeding won't stop, will i be ok?" is a report.
_ADVANCE = re.compile(
    r"^\s*(?:(?:so|and|but|also|hi|hey|hello|ok|okay|quick\s+question|question|sorry|um|hmm)\W+)*"
    r"(?:will|would|can|could|should|shall|might|may|is|are|do|does|did|was|were|has|have|how|what|what's|whats|when|why|where|which|who|any|anyone|anybody|if)\b(?!'|\s+(?:barely|hardly|only|not)\b)"
    r"|\bwhat\s+if\b|\bif\s+(?:i|you|my|she|it|there|the|a|an|someone|anyone|we)\b|\bin\s+case\b"
    r"|\bis\s+it\s+(?:normal|common|possible|usual|ok|okay|safe|bad|likely|typical|expected)\b"
    r"|\b(?:chance|chances|risk|risks|likelihood|odds|possibility)\s+of\b|\bhow\s+(?:likely|common|often|long|much|bad)\b"
    r"|\b(?:signs?|symptoms?)\s+of\b|\bexpect\w*|\b(?:worried|worry|worrying|scared|afraid|nervous|concerned|anxious|fear|freaking\s+out)\b"
    r"|\b(?:can|could|does|do|will|would|might|may)\s+(?:an?\s+|the\s+|this\s+|my\s+)?(?:hsg|test|dye|contrast|procedure|exam|it|iodine|x-?ray)\s+(?:cause|give|lead|make|trigger|result|bring)\b"
    r"|\b(?:people|women|patients|someone|somebody|anyone|anybody|others|ladies|girls)\b"
    r"|\b(?:wondering|wonder|curious|want\s+to\s+know|wanna\s+know|like\s+to\s+know|need\s+to\s+know|questions?|tell\s+me\s+about|explain)\b"
    r"|\bbefore\s+(?:the|my|an?|your)\s+(?:hsg|test|procedure|exam|appointment|scan)\b"
    r"|\b(?:usually|normally|typically|generally|ever|commonly)\b"
    r"|\b(?:heard|read|been\s+told|was\s+told|said|says|say|told\s+me|tells\s+me|reviews?|online|internet|reddit|forums?|google)\b"
    r"|\b(?:terrified|dreading|dread|frightened|petrified|panicking|stressed|not\s+looking\s+forward)\b"
    r"|\bmy\s+(?:friend|friends|sister|mum|mom|mother|cousin|aunt|colleague|co-?worker|neighbou?r)\b"
    r"|\b(?:will|'ll|would)\s+(?:[a-z]+\s+)?(?:be|get|have|feel|hurt|bleed|start|happen)\b"
    r"|\b(?:going\s+to|gonna)\s+(?:[a-z]+\s+)?(?:be|have|get|bleed|hurt|feel)\b"
)


@dataclass(frozen=True)
class Mention:
    """One warning sign named in the (normalised) text, and how it is spoken of."""

    kind: str
    phrase: str
    reading: str


@dataclass(frozen=True)
class _Sign:
    kind: str
    start: int
    end: int
    measured: bool


# Messages longer than this are refused before NLU (channels/message_limits.py); the guard reads
# no further, so that no message can make it slow.
MAX_ASSESSED_CHARACTERS = 4000


def assess(text: str) -> List[Mention]:
    """Every warning sign the message names, each read as a report, question, negation or history."""
    normalised = normalise(text[:MAX_ASSESSED_CHARACTERS])
    sentences = [_Sentence(normalised[start:end]) for start, end in _sentence_spans(normalised)]
    mentions = [
        Mention(sign.kind, sentence.text[sign.start : sign.end], sentence.reading(sign))
        for sentence in sentences
        for sign in sentence.signs
    ]
    return mentions + _pregnancy_mentions(sentences)


def reported_signs(text: str) -> List[str]:
    """The kinds of warning sign the message reports as happening (not asked about, not denied)."""
    return sorted({mention.kind for mention in assess(text) if mention.reading == REPORT})


def _sentence_spans(text: str) -> List[tuple[int, int]]:
    return [match.span() for match in _SENTENCE.finditer(text) if match.group().strip()]


class _Sentence:
    """One sentence, its warning signs, and what it says about time, the patient and asking."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.signs = _signs_in(text)
        self.words = _words_with_signs(text, self.signs)
        self.offsets = [offset for offset, _ in self.words]
        self.has_list = bool(re.search(r"\b(?:or|nor)\b", text))
        self.asks_about_own = bool(_ASKS_ABOUT_OWN.search(text))
        self.clauses = _clauses(text)
        self.clause_starts = [clause.start for clause in self.clauses]

    def reading(self, sign: _Sign) -> str:
        """How the sentence speaks of ``sign``. Unclear cases are reports."""
        clause = self.clauses[max(0, bisect.bisect_right(self.clause_starts, sign.start) - 1)]
        if self.is_negated(sign.start):
            return NEGATED
        if sign.measured or clause.now:
            return REPORT
        if clause.history:
            return QUESTION if clause.advance else HISTORY
        if self.asks_about_own or self.speaks_of_self(sign.start, sign.end):
            return REPORT
        return QUESTION if clause.advance else REPORT

    def is_negated(self, start: int) -> bool:
        """True when a negation cue comes shortly before ``start`` with only filler words between."""
        index = bisect.bisect_left(self.offsets, start)
        gap = 0
        for position in range(index - 1, max(-1, index - 3 * _MAX_NEGATION_GAP), -1):
            word = self.words[position][1]
            if word in _NEGATION_CUES:
                return True
            if word == "," and not self.has_list:
                return False
            after_think = position > 0 and self.words[position - 1][1] in _THINKING
            if word == "<sign>":
                continue
            if word in _NEGATION_FILLERS or (word in _SUBJECTS_AFTER_THINK and after_think):
                gap += 1
                if gap > _MAX_NEGATION_GAP:
                    return False
                continue
            return False
        return False

    def speaks_of_self(self, start: int, end: int) -> bool:
        """True when the patient says the sign is theirs: "i have a fever", "my lips are swelling"."""
        text = self.text
        for match in _SELF_STATE.finditer(text, max(0, start - 40), end):
            if _HYPOTHETICAL_BEFORE.search(text, max(0, match.start() - 12), match.start()):
                continue
            if _NOT_A_STATE.match(text, match.end()):
                continue
            if match.start() < start and _ASKING_WORDS.search(text, match.end(), start):
                continue
            return True
        return bool(_SELF_AFTER.match(text, end))


@dataclass(frozen=True)
class _Clause:
    """A comma clause: is it about now or the past (its "but"-segment), does it ask in advance."""

    start: int
    now: bool
    history: bool
    # Its own "?", or a question frame in it or an earlier clause of its segment.
    advance: bool


def _clauses(sentence: str) -> List[_Clause]:
    """The sentence's comma clauses, with what their "but"-segment and earlier clauses say."""
    clauses = []
    for segment_start, segment_end in _spans_between(_CONTRAST, sentence, 0, len(sentence)):
        segment = sentence[segment_start:segment_end]
        now, history = bool(_NOW.search(segment)), bool(_HISTORY.search(segment))
        framed = False
        for start, end in _spans_between(_CLAUSE_BREAK, sentence, segment_start, segment_end):
            framed = framed or bool(_ADVANCE.search(sentence[start:end]))
            advance = framed or "?" in sentence[start:end]
            clauses.append(_Clause(start, now, history, advance))
    return clauses


def _spans_between(separator: re.Pattern, text: str, start: int, end: int) -> List[tuple[int, int]]:
    """The spans of ``text[start:end]`` between matches of ``separator``."""
    spans, position = [], start
    for match in separator.finditer(text, start, end):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, end))
    return spans


def _signs_in(sentence: str) -> List[_Sign]:
    """Every warning-sign phrase in one sentence; a measured one wins where two overlap."""
    signs = [
        _Sign(kind, match.start(), match.end(), True)
        for kind, pattern in MEASURED_PATTERNS.items()
        for match in pattern.finditer(sentence)
    ]
    signs += [
        _Sign(kind, match.start(), match.end(), False)
        for kind, pattern in KIND_PATTERNS.items()
        for match in pattern.finditer(sentence)
        if not any(sign.start <= match.start() < sign.end for sign in signs)
    ]
    return signs


def _words_with_signs(sentence: str, signs: List[_Sign]) -> List[tuple[int, str]]:
    """(offset, word) of the sentence, where every sign counts as the one word "<sign>"."""
    covered = sorted((sign.start, sign.end) for sign in signs)
    words = [(start, "<sign>") for start, _ in covered]
    for match in _WORD.finditer(sentence):
        position = bisect.bisect_right(covered, (match.start(), len(sentence))) - 1
        if position >= 0 and covered[position][0] <= match.start() < covered[position][1]:
            continue
        words.append((match.start(), match.group()))
    return sorted(words)


def _pregnancy_mentions(sentences: List[_Sentence]) -> List[Mention]:
    """A reported pregnancy together with reported bleeding or one-sided pain is one warning sign."""
    if _reports(sentences, PREGNANCY_PATTERN) and _reports(sentences, WITH_PREGNANCY_PATTERN):
        return [Mention("pregnancy_with_bleeding_or_pain", "pregnant", REPORT)]
    return []


def _reports(sentences: List[_Sentence], pattern: re.Pattern) -> bool:
    """True when some sentence reports what ``pattern`` names."""
    return any(
        sentence.reading(_Sign("", match.start(), match.end(), False)) == REPORT
        for sentence in sentences
        for match in pattern.finditer(sentence.text)
    )


# --- the component ------------------------------------------------------------------------


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class MessageGuard(GraphComponent, IntentClassifier):
    """Sends empty and over-long messages to the fallback and reported warning signs to warning_signs."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"max_characters": 1000, "no_answer_intents": list(DEFAULT_NO_ANSWER_INTENTS)}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.max_characters = int(config["max_characters"])
        self.no_answer_intents = frozenset(
            config.get("no_answer_intents", DEFAULT_NO_ANSWER_INTENTS)
        )

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
            classified = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            reason = self.override_reason(message.get(TEXT) or "", classified)
            if reason:
                intent = (
                    WARNING_SIGNS_INTENT
                    if reason == WARNING_SIGN_REASON
                    else DEFAULT_NLU_FALLBACK_INTENT_NAME
                )
                _set_intent(message, intent)
                message.set(GUARD_REASON_KEY, reason, add_to_output=True)
            elif classified == DEFAULT_NLU_FALLBACK_INTENT_NAME and _first_guess(message) == (
                WARNING_SIGNS_INTENT
            ):
                # Unsure, but warning signs is the best guess: answered, never offered as a choice.
                _set_intent(message, WARNING_SIGNS_INTENT)
        return messages

    def override_reason(self, text: Text, classified: Optional[Text] = None) -> Optional[Text]:
        """Why the classifier's choice must be overridden: warning_sign, empty, too_long."""
        if self.is_warning_sign(text, classified):
            return WARNING_SIGN_REASON
        if not text.strip():
            return "empty"
        if len(text) > self.max_characters:
            return "too_long"
        return None

    def is_warning_sign(self, text: Text, classified: Optional[Text] = None) -> bool:
        """A reported sign always; a question about one only where the classifier has no answer."""
        readings = {mention.reading for mention in assess(text)}
        if REPORT in readings:
            return True
        return QUESTION in readings and (classified is None or classified in self.no_answer_intents)


def _first_guess(message: Message) -> Optional[Text]:
    """The classifier's best intent under the FallbackClassifier's own entry, if any."""
    for entry in message.get(INTENT_RANKING_KEY) or []:
        if entry.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME:
            return entry.get(INTENT_NAME_KEY)
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
