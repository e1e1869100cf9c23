"""The two patches of the pinned Rasa: they still fit its code, and they do what they say."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.core.processor import MessageProcessor

import rasa_patches


def test_the_patched_functions_are_still_the_pinned_rasa_code() -> None:
    # Fails when Rasa is upgraded: read the new code, then re-pin or drop the patch.
    for name, function in rasa_patches.pinned_functions().items():
        assert rasa_patches.source_sha256(function) == rasa_patches.PINNED_SOURCES[name], name


def test_install_applies_both_patches() -> None:
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
