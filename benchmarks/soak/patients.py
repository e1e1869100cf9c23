"""Simulated patients on the REST channel: what they send, and what the replies told them."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from enum import Enum

import aiohttp

from benchmarks.latency import FORM_TURNS
from channels.conversation_ids import rest_conversation_id

REFERENCE_PATTERN = re.compile(r"\bHSG-[23456789A-HJKMNP-Z]{6}\b")
# Phrases of the domain's responses (domain/appointment.yml) and of channels/failures.py.
SAVED_PHRASE = "your request is saved"
NOT_SAVED_PHRASE = "could not be saved"
APOLOGY_PHRASE = "could not take in your last message"
SUMMARY_PHRASE = "here is your request"
CONFIRM = "/affirm"
# The form's turns up to its summary, which asks the patient to confirm.
TURNS_TO_SUMMARY = FORM_TURNS


class Outcome(Enum):
    """What one reply told the patient about her request."""

    SAVED = "saved"
    NOT_SAVED = "not saved"
    APOLOGY = "apology"  # the message was not taken in: send it again
    NO_ANSWER = "no answer"  # connection refused, reset or timed out
    OTHER = "other"


@dataclass
class Reply:
    outcome: Outcome
    text: str = ""
    references: tuple[str, ...] = ()
    status: int | None = None


def classify(text: str) -> Reply:
    """The outcome a patient reads in a reply; a reference always means "saved"."""
    lowered = text.lower()
    references = tuple(REFERENCE_PATTERN.findall(text))
    if references and SAVED_PHRASE in lowered:
        return Reply(Outcome.SAVED, text, references)
    if NOT_SAVED_PHRASE in lowered:
        return Reply(Outcome.NOT_SAVED, text)
    if APOLOGY_PHRASE in lowered:
        return Reply(Outcome.APOLOGY, text)
    return Reply(Outcome.OTHER, text)


@dataclass
class Patient:
    """One patient's conversation, sent round the Rasa servers as a load balancer would."""

    sender: str
    replies: list[Reply] = field(default_factory=list)

    @property
    def conversation_id(self) -> str:
        return rest_conversation_id(self.sender)

    def told(self) -> list[Reply]:
        """The replies that said something definite about the request."""
        return [r for r in self.replies if r.outcome in (Outcome.SAVED, Outcome.NOT_SAVED)]

    def references_told(self) -> set[str]:
        return {ref for r in self.replies if r.outcome is Outcome.SAVED for ref in r.references}

    def final_outcome(self) -> Outcome | None:
        told = self.told()
        return told[-1].outcome if told else None


async def send(
    session: aiohttp.ClientSession, rasa_url: str, sender: str, text: str, timeout: float = 120
) -> Reply:
    """One REST post; a transport failure is an outcome, not an exception."""
    try:
        async with session.post(
            f"{rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if response.status != 200:
                return Reply(Outcome.NO_ANSWER, status=response.status)
            messages = await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return Reply(Outcome.NO_ANSWER)
    text_out = "\n".join(m.get("text", "") for m in messages if isinstance(m, dict))
    if not text_out.strip():
        return Reply(Outcome.NO_ANSWER, status=200)
    reply = classify(text_out)
    reply.status = 200
    return reply


async def send_until_answered(
    session: aiohttp.ClientSession,
    rasa_urls: list[str],
    patient: Patient,
    text: str,
    first_server: int,
    deadline: float,
    pause: float = 3.0,
) -> Reply:
    """Sends ``text`` until a reply takes it in, moving to the next server after a failure.

    What a patient does when the chat shows an error or nothing: she sends it again.
    """
    loop = asyncio.get_running_loop()
    server = first_server
    while True:
        reply = await send(session, rasa_urls[server % len(rasa_urls)], patient.sender, text)
        patient.replies.append(reply)
        if reply.outcome not in (Outcome.APOLOGY, Outcome.NO_ANSWER) or loop.time() > deadline:
            return reply
        server += 1
        await asyncio.sleep(pause)


async def fill_the_form(
    session: aiohttp.ClientSession,
    rasa_urls: list[str],
    patient: Patient,
    deadline: float,
    turns: slice = slice(None),
) -> bool:
    """Answers the request form's questions (``turns`` of them); True when each was taken in.

    When the last turn is the last question, True also means the summary came back: a form
    that lost its place on the way would ask something else by then.
    """
    numbered = list(enumerate(TURNS_TO_SUMMARY))[turns]
    for turn, text in numbered:
        reply = await send_until_answered(session, rasa_urls, patient, text, turn, deadline)
        if reply.outcome is not Outcome.OTHER:
            return False
    if numbered and numbered[-1][0] == len(TURNS_TO_SUMMARY) - 1:
        return SUMMARY_PHRASE in patient.replies[-1].text.lower()
    return True
