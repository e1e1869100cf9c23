"""SMS text rules: keywords, bot replies as plain numbered text, splitting, and numbered answers."""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

# At most two concatenated segments: longer texts arrive in pieces, or out of order, on some phones.
MAX_SMS_CHARACTERS = 320

# Twilio's standard opt-out keywords, except CANCEL: patients type "cancel" to leave the
# appointment form, and that must reach the assistant (see README, "SMS").
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
# Twilio also re-subscribes on YES, but from a subscribed number "yes" is an ordinary answer.
OPT_IN_KEYWORDS_WHEN_OPTED_OUT = OPT_IN_KEYWORDS | {"YES"}
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

CHOICE_PROMPT = "Reply with a number."

_KEYWORD_PUNCTUATION = ".!?,;:\"'()"
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
# After ., ! or ?, but not after a list number ("2. Does it hurt?") or a common abbreviation.
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?])(?<!^\d\.)(?<!^\d\d\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bDr\.)(?<!\bMs\.)(?<!\bMr\.)\s+"
)


def keyword_of(body: str) -> str:
    """The message as an upper-case keyword ("Stop." gives "STOP"); "" if it is not one word."""
    word = body.strip().strip(_KEYWORD_PUNCTUATION).strip()
    if not word or any(character.isspace() for character in word):
        return ""
    return word.upper()


def plain_text(text: str) -> str:
    """Markdown meant for the web widget, as SMS text: links spelled out, no bold markers."""

    def spell_out(match: re.Match) -> str:
        label, target = match.groups()
        if target.startswith(("tel:", "mailto:")) or target == label:
            return label
        return f"{label}: {target}"

    return _MARKDOWN_LINK.sub(spell_out, text).replace("**", "")


def render_reply(message: Dict[str, Any]) -> str:
    """One bot message (as Rasa's collecting channel stores it) as SMS text."""
    return "".join(f"{separator}{piece}" for separator, piece in _reply_pieces(message)).lstrip()


def sms_messages(replies: Iterable[Dict[str, Any]], limit: int = MAX_SMS_CHARACTERS) -> List[str]:
    """The bot's replies to one message, packed into as few SMS of at most ``limit`` as fit.

    Packing matters: Twilio does not guarantee that several messages arrive in order. For the
    same reason a list of choices stays in one SMS whenever it fits in one.
    """
    pieces = [piece for message in replies for piece in _reply_pieces(message, limit)]
    return _pack(pieces, limit)


def split_for_sms(text: str, limit: int = MAX_SMS_CHARACTERS) -> List[str]:
    """Splits ``text`` at line and sentence ends into parts of at most ``limit`` characters."""
    return _pack(list(_sentences(text)), limit)


def _reply_pieces(
    message: Dict[str, Any], limit: int = MAX_SMS_CHARACTERS
) -> List[Tuple[str, str]]:
    """(separator, piece) pairs of one bot message: its sentences, then its choices as one piece."""
    pieces = list(_sentences(plain_text((message.get("text") or "").strip())))
    buttons = message.get("buttons") or []
    if buttons:
        lines = [
            f"{number}. {button.get('title', '').strip()}"
            for number, button in enumerate(buttons, start=1)
        ]
        lines.append(CHOICE_PROMPT)
        choices = "\n".join(lines)
        if len(choices) <= limit:
            pieces.append(("\n", choices))
        else:
            pieces.extend(("\n", line) for line in lines)
    if message.get("image"):
        pieces.append(("\n", str(message["image"])))
    return pieces


def _pack(pieces: List[Tuple[str, str]], limit: int) -> List[str]:
    """Joins pieces into parts of at most ``limit``; a piece's separator is dropped at a part's start."""
    parts: List[str] = []
    current = ""
    for separator, piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        *whole_parts, current = _cut_between_words(piece, limit)
        parts.extend(whole_parts)
    if current:
        parts.append(current)
    return parts


def _sentences(text: str) -> Iterable[Tuple[str, str]]:
    """(separator, sentence) pairs; the separator keeps line breaks where the text had them."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        for index, sentence in enumerate(_SENTENCE_BREAK.split(line)):
            yield ("\n" if index == 0 else " "), sentence


def _cut_between_words(sentence: str, limit: int) -> List[str]:
    """A sentence longer than ``limit`` cut between words (inside a word only if it must)."""
    parts: List[str] = []
    current = ""
    for word in sentence.split(" "):
        while len(word) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = word
    return parts + [current]


def _normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def chosen_payload(answer: str, buttons: List[Dict[str, Any]]) -> Optional[str]:
    """The payload of the button that ``answer`` picks by number ("2") or title, else None."""
    normalized = _normalized(answer)
    if not normalized or not buttons:
        return None
    if normalized.isdigit():
        number = int(normalized)
        if 1 <= number <= len(buttons):
            button = buttons[number - 1]
            return button.get("payload") or button.get("title")
        return None
    for button in buttons:
        if _normalized(button.get("title", "")) == normalized:
            return button.get("payload") or button.get("title")
    return None
