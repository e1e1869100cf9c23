"""The patches of the pinned Rasa: they still fit its code, and they do what they say."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Dict, List

import jsonschema
import pytest
from rasa.core.actions.action import Action, ActionExecutionRejection, RemoteAction
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException

import rasa_patches


def test_the_patched_functions_are_still_the_pinned_rasa_code() -> None:
    # Fails when Rasa is upgraded: read the new code, then re-pin or drop the patch.
    for name, function in rasa_patches.pinned_functions().items():
        assert rasa_patches.source_sha256(function) == rasa_patches.PINNED_SOURCES[name], name


def test_install_applies_every_patch() -> None:
    assert rasa_patches.install() == {name: True for name in rasa_patches.PINNED_SOURCES}
    assert MessageProcessor.parse_message is rasa_patches.parse_message_off_the_loop
    assert RemoteAction._validate_action_result is (
        rasa_patches.validate_action_result_once_compiled
    )


REPLY = {
    "events": [{"event": "slot", "timestamp": None, "name": "phone", "value": "2015550123"}],
    "responses": [{"text": "Thanks!", "buttons": []}],
}


def test_a_valid_action_reply_passes() -> None:
    assert rasa_patches.validate_action_result_once_compiled(None, REPLY) is True


@pytest.mark.parametrize(
    "reply",
    [
        {"events": "not a list"},
        {"events": [{"event": "slot", "name": 3}]},
        {"responses": ["not an object"]},
    ],
)
def test_an_invalid_reply_fails_as_jsonschema_validate_fails(reply: Dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError) as expected:
        jsonschema.validate(reply, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as patched:
        rasa_patches.validate_action_result_once_compiled(None, reply)
    assert patched.value.message.startswith(expected.value.message)
    assert "Failed to validate Action server response" in patched.value.message


class FakeProcessor:
    """Just what parse_message touches; the graph run records its thread and can wait."""

    http_interpreter = None

    def __init__(self, wait_for_other: threading.Event | None = None) -> None:
        self.threads: List[int] = []
        self.wait_for_other = wait_for_other
        self.entered = threading.Event()

    def _parse_message_with_graph(self, message: Any, tracker: Any, only: bool) -> Dict:
        self.threads.append(threading.get_ident())
        self.entered.set()
        if self.wait_for_other is not None:
            # As the sentence encoder does while its worker runs a forward pass.
            with rasa_patches.others_may_run():
                assert self.wait_for_other.wait(10)
        return {"text": message.text, "intent": {"name": "greet"}, "entities": []}

    def _update_full_retrieval_intent(self, parse_data: Dict) -> None:
        pass

    def _check_for_unseen_features(self, parse_data: Dict) -> None:
        pass


class FakeMessage:
    sender_id = "rest:test"

    def __init__(self, text: str) -> None:
        self.text = text


def test_a_parse_runs_off_the_event_loop() -> None:
    processor = FakeProcessor()

    async def parse() -> Dict:
        return await rasa_patches.parse_message_off_the_loop(processor, FakeMessage("hi"))

    async def main() -> tuple[Dict, int]:
        return await parse(), threading.get_ident()

    parsed, loop_thread = asyncio.run(main())
    assert parsed["text"] == "hi"
    assert processor.threads and processor.threads[0] != loop_thread


def test_a_waiting_parse_lets_the_next_one_in_and_others_take_turns() -> None:
    second = FakeProcessor()
    first = FakeProcessor(wait_for_other=second.entered)

    async def main() -> List[Dict]:
        return await asyncio.gather(
            rasa_patches.parse_message_off_the_loop(first, FakeMessage("one")),
            rasa_patches.parse_message_off_the_loop(second, FakeMessage("two")),
        )

    # Without others_may_run the first parse would hold the graph lock and wait forever.
    assert [p["text"] for p in asyncio.run(main())] == ["one", "two"]
    assert not rasa_patches.GRAPH_LOCK.locked()


class FailingTrackerStore(InMemoryTrackerStore):
    """A tracker database that cannot be reached."""

    async def retrieve(self, sender_id: str) -> None:
        raise ConnectionError("the tracker database is down")


def test_the_agent_keeps_the_tracker_store_unwrapped_so_its_failures_reach_the_channel() -> None:
    rasa_patches.install()
    store = FailingTrackerStore(Domain.empty())
    agent = Agent(domain=Domain.empty(), tracker_store=store)

    # Rasa's FailSafeTrackerStore would answer None here: an empty conversation.
    assert agent.tracker_store is store
    with pytest.raises(ConnectionError):
        asyncio.run(agent.tracker_store.retrieve("rest:someone"))
    assert isinstance(Agent(domain=Domain.empty()).tracker_store, InMemoryTrackerStore)


class RaisingAction(Action):
    """A custom action whose action server cannot be reached."""

    def name(self) -> str:
        return "action_unreachable"

    async def run(self, *args: Any, **kwargs: Any) -> List:
        raise RasaException("Failed to execute custom action 'action_unreachable'")


class RejectingAction(RaisingAction):
    async def run(self, *args: Any, **kwargs: Any) -> List:
        raise ActionExecutionRejection(self.name())


def run_action(action: Action) -> tuple[bool, DialogueStateTracker]:
    rasa_patches.install()
    processor = MessageProcessor.__new__(MessageProcessor)
    processor.domain = Domain.empty()
    tracker = DialogueStateTracker.from_events("rest:someone", [])
    prediction = PolicyPrediction([], "RulePolicy")
    predict_another = asyncio.run(
        processor._run_action(action, tracker, CollectingOutputChannel(), None, prediction)
    )
    return predict_another, tracker


def test_a_custom_action_that_fails_fails_the_turn_instead_of_going_silent() -> None:
    with pytest.raises(rasa_patches.ActionFailedError) as failed:
        run_action(RaisingAction())
    assert isinstance(failed.value.__cause__, RasaException)


def test_a_rejected_action_is_still_rejected_as_rasa_does() -> None:
    predict_another, tracker = run_action(RejectingAction())

    assert predict_another is True
    assert [type(event) for event in tracker.events] == [ActionExecutionRejected]


def test_the_server_process_keeps_its_allocator_compact_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert rasa_patches.keep_allocator_compact() is True


class BrokenInsideRasa(RaisingAction):
    """An error in Rasa's own code around an action (not the action server's failure)."""

    async def run(self, *args: Any, **kwargs: Any) -> List:
        raise AttributeError("'NoneType' object has no attribute 'name'")


def test_an_error_of_rasas_own_is_still_logged_and_passed_over_as_rasa_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # POST /conversations/<id>/tracker/events starts a session with no output channel.
    with caplog.at_level(logging.ERROR, logger="rasa.core.processor"):
        predict_another, tracker = run_action(BrokenInsideRasa())

    assert predict_another is True
    assert [type(event) for event in tracker.events] == [ActionExecuted]
    assert "exception while running action 'action_unreachable'" in caplog.text


def test_the_server_process_trims_its_heaps_in_the_background_once() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    rasa_patches.keep_allocator_compact()
    rasa_patches.keep_allocator_compact()
    trimmers = [t for t in threading.enumerate() if t.name == "heap-trim"]
    assert len(trimmers) == 1 and trimmers[0].daemon


@pytest.mark.parametrize(
    "name", ["user", "bot", "action", "slot", "session_started", "active_loop", "followup"]
)
def test_an_event_name_resolves_to_the_class_rasas_lookup_finds(name: str) -> None:
    rasa_patches.install()
    rasas_lookup = rasa_patches.pinned_functions()["rasa.shared.core.events.Event.resolve_by_type"]

    assert Event.resolve_by_type(name) is rasas_lookup(name)
    assert Event.resolve_by_type(name) is rasas_lookup(name)  # the second time, remembered
    assert Event.resolve_by_type(name).type_name == name


def test_an_unknown_event_name_still_gets_rasas_default_topic_answer_and_error() -> None:
    rasa_patches.install()

    assert Event.resolve_by_type("no_such_event", default=UserUttered) is UserUttered
    assert Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")


def test_stored_events_read_back_as_the_same_events() -> None:
    rasa_patches.install()
    events = [
        SessionStarted(timestamp=1.0),
        UserUttered("does it hurt?", {"name": "pain", "confidence": 0.9}, timestamp=2.0),
        SlotSet("phone", "2015550123", timestamp=3.0),
    ]

    assert [Event.from_parameters(event.as_dict()) for event in events] == events
