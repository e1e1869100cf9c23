"""`python -m outreach.worker`: sends the planned texts that are due, and survives restarts.

Each pass: (1) takes over claims a stopped worker left behind (CLAIM_TIMEOUT old) and asks Twilio
whether their text went out, (2) claims the due rows one by one, applies the rules
(outreach/plan.py: quiet hours, one a day and three a week, usefulness, opt-out) and sends,
(3) records each sent text in the patient's SMS conversation (the context of the reply).
Several workers may run against the same database: a row is claimed by one only. The worker
listens on nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from sqlalchemy.exc import OperationalError

import rasa_http
from appointments import outbox
from appointments.database import session_scope
from appointments.models import OutboundMessage, utc_now
from channels.conversation_ids import sms_conversation_id
from clinic.settings import ClinicSettings, clinic_timezone, load_clinic_settings
from outreach.messages import DOMAIN_FILE, OUTREACH_METADATA_KEY, outreach_message, sms_body
from outreach.plan import WEEK, PlannedMessage, decide, retry_at
from outreach.twilio_sender import SendError, TwilioSender, twilio_settings

# Patient details never go into these log lines: only row ids, references, kinds and states.
logger = logging.getLogger(__name__)

POLL_SECONDS = 15.0
BATCH = 20
# A claim older than this was left by a worker that stopped mid-send: far longer than a send takes.
CLAIM_TIMEOUT = timedelta(minutes=2)
NOT_CONFIGURED_REASON = "Not sent: SMS not configured."


@dataclass
class Worker:
    """One worker: its name (host and process), its sender (None: SMS not configured), its clock."""

    name: str
    sender: TwilioSender | None
    zone: tzinfo
    clinic: ClinicSettings
    clock: Callable[[], datetime] = utc_now
    database_url: str | None = None
    domain_file: Path = DOMAIN_FILE

    def run_once(self) -> dict[str, int]:
        """One pass; returns counts by outcome (for logs and tests)."""
        counts: dict[str, int] = {}
        now = self.clock()
        if self.sender is not None:
            self.recover_stale_claims(now)
        with session_scope(self.database_url) as session:
            due = outbox.due_ids(session, now, BATCH)
        for message_id in due:
            outcome = self.process(message_id, now)
            counts[outcome] = counts.get(outcome, 0) + 1
        self.record_context(now)
        return counts

    def process(self, message_id: int, now: datetime) -> str:
        """Claims, decides and (maybe) sends one row; returns what happened."""
        with session_scope(self.database_url) as session:
            claimed = outbox.claim(session, message_id, self.name, now)
            if claimed is None:
                return "taken"
            if self.sender is None:
                outbox.finish(session, claimed.id, outbox.NOT_SENT, NOT_CONFIGURED_REASON, now)
                return "not_sent"
            decision = decide(
                PlannedMessage(claimed.kind, claimed.due_at, claimed.useful_until),
                now=now,
                zone=self.zone,
                sent_times=outbox.handed_over_times(
                    session, claimed.phone_e164, now - WEEK, excluding=claimed.id
                ),
                opted_out=outbox.is_opted_out(session, claimed.phone_e164),
            )
            if decision.action == "wait":
                outbox.release(session, claimed.id, decision.until, decision.reason, now)
                return "waiting"
            if decision.action in ("drop", "cancel"):
                state = outbox.DROPPED if decision.action == "drop" else outbox.CANCELLED
                outbox.finish(session, claimed.id, state, decision.reason, now)
                return state
        # The claim is committed: from here on, no other worker touches this row.
        return self.send(claimed, now)

    def body_of(self, claimed: outbox.ClaimedMessage) -> str:
        return sms_body(self.message_of(claimed))

    def message_of(self, claimed: outbox.ClaimedMessage) -> dict:
        return outreach_message(
            claimed.kind, claimed.appointment_at, self.zone, self.clinic, self.domain_file
        )

    def send(self, claimed: outbox.ClaimedMessage, now: datetime) -> str:
        try:
            body = self.body_of(claimed)
        except (KeyError, ValueError, OSError) as error:
            # A text that cannot be built (a domain file edited wrongly) is never sent half-made.
            logger.exception("Could not build the %s text of %s", claimed.kind, claimed.reference)
            return self.failed(
                claimed, f"Could not build the text ({type(error).__name__})", False, now
            )
        try:
            sent = self.sender.send_sms(claimed.phone_e164, body)
        except SendError as error:
            return self.failed(claimed, str(error), error.retryable, now)
        with session_scope(self.database_url) as session:
            outbox.mark_sent(session, claimed.id, sent.sid, sent.status, self.clock())
        logger.info("Sent the %s text of %s (%s)", claimed.kind, claimed.reference, sent.status)
        return "sent"

    def failed(
        self, claimed: outbox.ClaimedMessage, error: str, retryable: bool, now: datetime
    ) -> str:
        with session_scope(self.database_url) as session:
            attempts = outbox.record_attempt_failed(session, claimed.id, now)
            later = retry_at(attempts, now) if retryable else None
            if later is not None and later <= claimed.useful_until:
                outbox.release(session, claimed.id, later, f"Retrying: {error}", now)
                logger.warning(
                    "The %s text of %s will be retried: %s", claimed.kind, claimed.reference, error
                )
                return "retry"
            outbox.finish(session, claimed.id, outbox.FAILED, f"Failed: {error}", now)
            outbox.raise_flag(
                session,
                claimed.request_id,
                outbox.DELIVERY_FAILED,
                f"The {claimed.kind.replace('_', ' ')} text: {error}",
                now,
            )
        logger.error("The %s text of %s failed: %s", claimed.kind, claimed.reference, error)
        return "failed"

    def recover_stale_claims(self, now: datetime) -> None:
        """Rows a stopped worker claimed: sent if Twilio has the text, else planned again now."""
        with session_scope(self.database_url) as session:
            stale = outbox.stale_claims(session, now - CLAIM_TIMEOUT)
        for claimed in stale:
            with session_scope(self.database_url) as session:
                if outbox.reclaim(session, claimed.id, now - CLAIM_TIMEOUT, self.name, now) is None:
                    continue
            try:
                found = self.sender.find_sent(claimed.phone_e164, self.body_of(claimed))
            except SendError as error:
                logger.warning("Could not check a stopped send with Twilio: %s", error)
                continue  # the claim stays; the next pass after the timeout asks again
            with session_scope(self.database_url) as session:
                if found is not None:
                    outbox.mark_sent(session, claimed.id, found.sid, found.status, now)
                    logger.info("A stopped send of %s had reached Twilio", claimed.reference)
                else:
                    outbox.release(
                        session,
                        claimed.id,
                        now,
                        "A worker stopped before sending; planned again.",
                        now,
                    )

    def record_context(self, now: datetime) -> None:
        """Adds each sent text to the patient's SMS conversation; retried until Rasa takes it.

        Only the tracker is written (no side effects): the text itself went through Twilio.
        """
        with session_scope(self.database_url) as session:
            pending = outbox.messages_needing_context(session)
            rows = [(row.id, row.kind, row.phone_e164) for row in pending]
            details = {row.id: self._claimed_of(session, row) for row in pending}
        for message_id, kind, phone in rows:
            claimed = details[message_id]
            if claimed is None:
                continue
            message = self.message_of(claimed)
            event = {
                "event": "bot",
                "text": message["text"],
                "data": {"buttons": message["buttons"]},
                "metadata": {OUTREACH_METADATA_KEY: {"kind": kind, "reference": claimed.reference}},
            }
            conversation_id = sms_conversation_id(phone)
            with session_scope(self.database_url) as session:
                known = outbox.conversation_known(session, phone, conversation_id)
            # Reading a tracker through the API would start a session without an output
            # channel, which loses the session start's events; our records say instead.
            events = [event] if known else [*self.session_start_events(), event]
            try:
                rasa_http.append_events(conversation_id, events)
            except rasa_http.RasaApiError as error:
                logger.warning("Will record the %s text later: %s", kind, error)
                return
            with session_scope(self.database_url) as session:
                outbox.mark_context_recorded(session, message_id, now)

    def session_start_events(self) -> list[dict]:
        """A session for a conversation that has none yet (a web patient's first text).

        Rasa starts a session only at a conversation's first event or after the expiry, so a text
        appended to a new conversation would otherwise leave the clinic's slots empty for the
        reply. These are the session start's events (actions/session.py) without its disclaimer,
        which the patient was never sent.
        """
        slots = [
            {"event": "slot", "name": name, "value": value}
            for name, value in self.clinic.slot_values().items()
        ]
        return [
            {"event": "action", "name": "action_session_start"},
            {"event": "session_started"},
            *slots,
            {"event": "action", "name": "action_listen"},
        ]

    @staticmethod
    def _claimed_of(session, row: OutboundMessage) -> outbox.ClaimedMessage | None:
        request = outbox.request_by_id(session, row.request_id)
        if request is None or request.appointment_at is None:
            return None
        return outbox.ClaimedMessage.of(row, request)


def build_worker(clock: Callable[[], datetime] = utc_now) -> Worker:
    """A worker from the environment; says once when SMS is not configured."""
    settings = twilio_settings()
    if settings is None:
        logger.warning(
            "SMS is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER "
            "or TWILIO_MESSAGING_SERVICE_SID): no text will be sent; each due one is marked "
            "'%s' for staff.",
            NOT_CONFIGURED_REASON,
        )
    return Worker(
        name=f"{socket.gethostname()}:{os.getpid()}",
        sender=TwilioSender(settings) if settings else None,
        zone=clinic_timezone(),
        clinic=load_clinic_settings(),
        clock=clock,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach.worker", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument(
        "--interval", type=float, default=POLL_SECONDS, help="seconds between passes"
    )
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        help="pretend it is this time (ISO, with offset): for trying the plan out and for tests",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.now is not None and args.now.tzinfo is None:
        parser.error("--now needs an offset, e.g. 2026-11-02T09:00:00-05:00")
    clock = (lambda: args.now.astimezone(timezone.utc)) if args.now else utc_now
    worker = build_worker(clock)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while True:
        try:
            counts = worker.run_once()
            if counts:
                logger.info("Pass: %s", counts)
        except OperationalError as error:
            logger.error("Database unreachable, trying again later: %s", error.orig)
        except Exception:  # noqa: BLE001 - one bad pass must not stop the texts for everyone
            logger.exception("The pass failed; trying again later")
        if args.once or stopping:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
