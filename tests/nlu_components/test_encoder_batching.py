"""The encoder's worker: texts that wait together are encoded together, and each caller gets its own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

from nlu_components.encoder_batching import BatchingEncoder


class SlowFirstPass:
    """Holds the first pass until released, so that later callers queue up behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.passes: List[List[str]] = []

    def __call__(self, texts: List[str]) -> List[str]:
        self.passes.append(list(texts))
        if len(self.passes) == 1:
            self.started.set()
            self.release.wait(10)
        return [text.upper() for text in texts]


def test_a_lone_message_is_encoded_at_once() -> None:
    encoder = BatchingEncoder(lambda texts: [len(t) for t in texts])
    assert encoder.encode(["abc"]) == [3]
    assert encoder.batch_sizes == [1]


def test_messages_waiting_together_share_one_pass_and_get_their_own_results() -> None:
    encode = SlowFirstPass()
    encoder = BatchingEncoder(encode, max_batch=32)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(encoder.encode, ["first"])
        assert encode.started.wait(10)
        waiting = [pool.submit(encoder.encode, [f"m{n}a", f"m{n}b"]) for n in range(5)]
        while encoder._jobs.qsize() < 5:
            threading.Event().wait(0.01)
        encode.release.set()
        assert first.result(10) == ["FIRST"]
        assert [w.result(10) for w in waiting] == [[f"M{n}A", f"M{n}B"] for n in range(5)]
    assert len(encode.passes) == 2
    assert sorted(encode.passes[1]) == sorted(f"m{n}{x}" for n in range(5) for x in "ab")


def test_a_pass_takes_at_most_max_batch_texts() -> None:
    encode = SlowFirstPass()
    encoder = BatchingEncoder(encode, max_batch=4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        pool.submit(encoder.encode, ["first"])
        assert encode.started.wait(10)
        waiting = [pool.submit(encoder.encode, [f"m{n}"]) for n in range(6)]
        while encoder._jobs.qsize() < 6:
            threading.Event().wait(0.01)
        encode.release.set()
        assert [w.result(10) for w in waiting] == [[f"M{n}"] for n in range(6)]
    assert [len(p) for p in encode.passes] == [1, 4, 2]


def test_a_failed_pass_fails_every_caller_in_it_and_the_worker_goes_on() -> None:
    calls = []

    def encode(texts: List[str]) -> List[str]:
        calls.append(texts)
        if len(calls) == 1:
            raise ValueError("broken pass")
        return texts

    encoder = BatchingEncoder(encode)
    with pytest.raises(ValueError, match="broken pass"):
        encoder.encode(["a"])
    assert encoder.encode(["b"]) == ["b"]
