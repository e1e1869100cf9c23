"""Small patches of the pinned Rasa 3.6.21: three take work off each served turn, two make failures visible.

Why they exist, and why they are safe to drop once Rasa does the same:

1. **The NLU graph runs on worker threads, not in the event loop.** Rasa 3.6's
   ``MessageProcessor.parse_message`` calls the graph synchronously inside the server's event
   loop, so while one message is parsed no other conversation moves, and no two messages are
   ever in a component's ``process()`` at once: batching them would be impossible. The patched
   version awaits the same ``_parse_message_with_graph`` on a small thread pool. Graph runs
   still take turns (``GRAPH_LOCK``, as in the event loop before), except where a component
   explicitly lets the next one in while it waits (``others_may_run``): the sentence encoder
   does, so the messages that arrive together meet in one forward pass.
2. **Action-server replies are checked by a validator built once.** Rasa 3.6's
   ``RemoteAction._validate_action_result`` calls ``jsonschema.validate``, which re-checks the
   reply schema against its meta-schema on every call: about 20 ms per custom action here,
   against under 1 ms for the same check with the validator made once.
3. **A tracker database that fails fails the turn.** Rasa 3.6 wraps every tracker store in a
   ``FailSafeTrackerStore``: when the database cannot be read it hands back an empty
   conversation, and when it cannot be written it keeps the turn in this process's memory.
   A patient in the middle of the appointment form would be answered as a stranger, and her
   answers would vanish on the next server. Unwrapped, the error reaches the channel, which
   tells her that her message was not taken in (channels/failures.py); nothing is half-saved.
4. **A custom action that fails fails the turn.** Rasa 3.6 logs the failure, drops the
   action's events and goes on, so a patient whose message reached an unreachable action
   server hears nothing. Failing the turn instead keeps the conversation as it was before her
   message (the form asks the same question again once she resends it) and lets the channel
   apologise. A repeated confirmation is safe: the request is stored once (actions/submission.py).
5. **An event's class is looked up once per event name.** Rasa 3.6's ``Event.resolve_by_type``
   walks every subclass of ``Event`` (``all_subclasses``, recursive, with an ``isabstract`` check
   for each) for every stored event it reads back: a turn reads the whole conversation, so this
   was about 5% of the server's time under load. The patched version remembers the class that
   Rasa's own lookup found for each name (names it does not find are looked up every time, as
   before, so the default and the error stay Rasa's).

``install()`` also sets glibc's allocator (``keep_allocator_compact``), which is not Rasa's code
but is this process's: see its docstring.

Each patch replaces one function whose pinned source is hashed in ``PINNED_SOURCES``: if Rasa's
code differs, ``install()`` leaves that function alone (and says so in the log), and
``tests/test_rasa_patches.py`` fails, so an upgrade is looked at rather than silently patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ctypes
import functools
import hashlib
import inspect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, Optional, Text

logger = logging.getLogger(__name__)

PINNED_SOURCES = {
    "rasa.core.processor.MessageProcessor.parse_message": (
        "b98d8e49b9f2c433040af62752212dc374600d50cd21deec82386642b64d30dc"
    ),
    "rasa.core.actions.action.RemoteAction._validate_action_result": (
        "f8cdb4be6812396167ced74161b2ccd65c5ea676ad86d7d359d8c322d9d8dc42"
    ),
    "rasa.core.agent.Agent._create_tracker_store": (
        "97499b594b45581b2c6d8ff7adb9083af24eba85654995a40350de65633ca574"
    ),
    "rasa.core.processor.MessageProcessor._run_action": (
        "6d383d0179ef1187639887289168959a5a82f94e6949e4e27bb83b2165094995"
    ),
    "rasa.shared.core.events.Event.resolve_by_type": (
        "b5cf570fa7f286c7059ec73d8880528d03a78b28cf4e80285a46079c0fa65968"
    ),
}
# Parses in flight at once: how many waiting messages one forward pass can take together.
PARSE_THREADS = 16

GRAPH_LOCK = threading.Lock()
_holder = threading.local()
_parsers: Optional[ThreadPoolExecutor] = None
_installed: Dict[str, bool] = {}
# Rasa's own functions, kept when replaced: the pin is checked against them, not the patch.
_originals: Dict[str, Callable] = {}


def source_sha256(function: Callable) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def pinned_functions() -> Dict[str, Callable]:
    """Rasa's own versions of the patched functions, whether or not the patches are applied."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import Event

    current = {
        "rasa.core.processor.MessageProcessor.parse_message": MessageProcessor.parse_message,
        "rasa.core.actions.action.RemoteAction._validate_action_result": (
            RemoteAction._validate_action_result
        ),
        "rasa.core.agent.Agent._create_tracker_store": Agent._create_tracker_store,
        "rasa.core.processor.MessageProcessor._run_action": MessageProcessor._run_action,
        "rasa.shared.core.events.Event.resolve_by_type": Event.resolve_by_type,
    }
    return {name: _originals.get(name, function) for name, function in current.items()}


# glibc's mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024
ARENA_MAX = 2
# How often the server hands the heap pages it has freed back to the system.
TRIM_INTERVAL_SECONDS = 30.0


@functools.cache
def keep_allocator_compact() -> bool:
    """Keeps glibc from holding on to freed memory in a long-running, many-threaded server.

    Each parse thread can get a malloc arena of its own (up to 8 per core), and glibc raises
    its mmap threshold each time a large block is freed, after which blocks of a few hundred
    kB (a message's token features) come from the arenas and leave holes there: the Rasa
    server's memory crept up by 9-13% over the soak suite's 10,000 messages. Two arenas and a
    fixed 128 kB threshold (large blocks mapped and unmapped) lowered that, and a thread that
    trims the heaps every ``TRIM_INTERVAL_SECONDS`` returns the holes that remain: free pages
    inside the heap, which glibc otherwise keeps until the process ends. Once per process;
    not glibc: no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    compact = bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX)) and bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
    threading.Thread(
        target=trim_heaps_forever, args=(libc, TRIM_INTERVAL_SECONDS), name="heap-trim", daemon=True
    ).start()
    return compact


def trim_heaps_forever(libc: Any, interval_seconds: float) -> None:
    """``malloc_trim(0)`` every ``interval_seconds``: unused heap pages go back to the system.

    It walks the arenas' free lists under their locks: measured at 0.2-0.3 ms on a loaded
    model's heap, once every half minute.
    """
    while True:
        time.sleep(interval_seconds)
        libc.malloc_trim(0)


def install() -> Dict[str, bool]:
    """Applies each patch whose target is still the pinned code (idempotent); returns which."""
    keep_allocator_compact()
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import Event

    replacements = {
        "rasa.core.processor.MessageProcessor.parse_message": (
            MessageProcessor,
            "parse_message",
            parse_message_off_the_loop,
        ),
        "rasa.core.actions.action.RemoteAction._validate_action_result": (
            RemoteAction,
            "_validate_action_result",
            validate_action_result_once_compiled,
        ),
        "rasa.core.agent.Agent._create_tracker_store": (
            Agent,
            "_create_tracker_store",
            staticmethod(tracker_store_without_fallback),
        ),
        "rasa.core.processor.MessageProcessor._run_action": (
            MessageProcessor,
            "_run_action",
            run_action_failing_the_turn,
        ),
        "rasa.shared.core.events.Event.resolve_by_type": (
            Event,
            "resolve_by_type",
            staticmethod(resolve_event_class_once),
        ),
    }
    for name, function in pinned_functions().items():
        if _installed.get(name):
            continue
        if source_sha256(function) != PINNED_SOURCES[name]:
            logger.warning("Rasa's %s is not the pinned code: left unpatched.", name)
            _installed[name] = False
            continue
        owner, attribute, replacement = replacements[name]
        _originals[name] = function
        setattr(owner, attribute, replacement)
        _installed[name] = True
    return dict(_installed)


@contextlib.contextmanager
def others_may_run() -> Iterator[None]:
    """Lets another graph run proceed while this one waits (on the encoder's worker, say).

    Outside a patched parse (training, tests, ``rasa shell``) it does nothing.
    """
    if not getattr(_holder, "holds", False):
        yield
        return
    _holder.holds = False
    GRAPH_LOCK.release()
    try:
        yield
    finally:
        GRAPH_LOCK.acquire()
        _holder.holds = True


def _parse_with_graph_lock(processor: Any, *args: Any) -> Dict[Text, Any]:
    with GRAPH_LOCK:
        _holder.holds = True
        try:
            return processor._parse_message_with_graph(*args)
        finally:
            _holder.holds = False


def _parser_pool() -> ThreadPoolExecutor:
    global _parsers
    if _parsers is None:
        _parsers = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="nlu-parse")
    return _parsers


async def parse_message_off_the_loop(
    self: Any,
    message: Any,
    tracker: Any = None,
    only_output_properties: bool = True,
) -> Dict[Text, Any]:
    """Rasa 3.6.21's MessageProcessor.parse_message, with the graph run awaited on a thread."""
    from rasa.core.processor import structlogger
    from rasa.shared.core.trackers import DialogueStateTracker

    if self.http_interpreter:
        parse_data = await self.http_interpreter.parse(message)
    else:
        if tracker is None:
            tracker = DialogueStateTracker.from_events(message.sender_id, [])
        parse_data = await asyncio.get_running_loop().run_in_executor(
            _parser_pool(),
            _parse_with_graph_lock,
            self,
            message,
            tracker,
            only_output_properties,
        )

    self._update_full_retrieval_intent(parse_data)
    structlogger.debug(
        "processor.message.parse",
        parse_data_text=copy.deepcopy(parse_data["text"]),
        parse_data_intent=parse_data["intent"],
        parse_data_entities=copy.deepcopy(parse_data["entities"]),
    )

    self._check_for_unseen_features(parse_data)

    return parse_data


_reply_validator: Any = None


def action_reply_validator() -> Any:
    """Rasa's reply schema, checked against its meta-schema once, as a ready validator."""
    global _reply_validator
    if _reply_validator is None:
        from jsonschema.validators import validator_for
        from rasa.core.actions.action import RemoteAction

        schema = RemoteAction.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)
        _reply_validator = cls(schema)
    return _reply_validator


def validate_action_result_once_compiled(self: Any, result: Dict[Text, Any]) -> bool:
    """Rasa 3.6.21's RemoteAction._validate_action_result, minus the per-call schema check.

    ``jsonschema.validate`` raises ``best_match`` of the validator's errors; so does this.
    """
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error = best_match(action_reply_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def tracker_store_without_fallback(store: Any, domain: Any) -> Any:
    """Rasa 3.6.21's Agent._create_tracker_store, minus the FailSafeTrackerStore wrapper."""
    from rasa.core.tracker_store import InMemoryTrackerStore

    if store is None:
        return InMemoryTrackerStore(domain)
    store.domain = domain
    return store


class ActionFailedError(RuntimeError):
    """A predicted action raised: the turn stops here, unsaved, and the channel apologises."""


async def run_action_failing_the_turn(
    self: Any, action: Any, tracker: Any, output_channel: Any, nlg: Any, prediction: Any
) -> bool:
    """Rasa 3.6.21's MessageProcessor._run_action, raising where Rasa would log and go on.

    Rasa's own code runs unchanged (rejections still reject); the action's ``run`` is watched
    for the action server's failures (``RasaException``: unreachable, an error status), and the
    first one is raised once Rasa returns. Other exceptions are Rasa's own, swallowed as before:
    events posted through the HTTP API start a session whose responses have no output channel.
    """
    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.exceptions import RasaException

    failures: list[Exception] = []
    run = action.run

    async def watched_run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await run(*args, **kwargs)
        except ActionExecutionRejection:
            raise
        except RasaException as error:
            failures.append(error)
            raise

    action.run = watched_run
    try:
        predict_another = await _originals["rasa.core.processor.MessageProcessor._run_action"](
            self, action, tracker, output_channel, nlg, prediction
        )
    finally:
        del action.run
    if failures:
        raise ActionFailedError(f"action {action.name()} failed") from failures[0]
    return predict_another


# Event name -> the class Rasa's own lookup found for it (event classes are never redefined).
_event_classes: Dict[Text, Any] = {}


def resolve_event_class_once(type_name: Text, default: Any = None) -> Any:
    """Rasa 3.6.21's Event.resolve_by_type, remembering each class it finds by name."""
    found = _event_classes.get(type_name)
    if found is not None:
        return found
    resolved = _originals["rasa.shared.core.events.Event.resolve_by_type"](type_name, default)
    if resolved is not None and getattr(resolved, "type_name", None) == type_name:
        _event_classes[type_name] = resolved
    return resolved
