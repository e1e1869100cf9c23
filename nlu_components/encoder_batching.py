"""Messages that arrive together are encoded in one forward pass, on one worker thread."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Generic, List, Sequence, TypeVar

Result = TypeVar("Result")


@dataclass
class _Job(Generic[Result]):
    texts: List[str]
    done: Future[List[Result]] = field(default_factory=Future)


class BatchingEncoder(Generic[Result]):
    """Callers on any thread hand over their texts and wait; one worker encodes them.

    While the worker runs a forward pass, new texts queue up; the next pass takes all of them
    (up to ``max_batch``). A lone message is encoded at once, without waiting for company;
    under load, ten waiting messages cost about one pass over the weights instead of ten.
    """

    def __init__(
        self, encode: Callable[[List[str]], List[Result]], max_batch: int = 32, name: str = ""
    ) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job[Result]] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._work, name=name or "encoder", daemon=True)
        self._worker.start()
        self.batch_sizes: List[int] = []  # the last passes' sizes, for tests and profiling

    def encode(self, texts: Sequence[str]) -> List[Result]:
        """Blocks until the worker has encoded these texts (with whatever else was waiting)."""
        if not texts:
            return []
        job: _Job[Result] = _Job(list(texts))
        self._jobs.put(job)
        return job.done.result()

    def _work(self) -> None:
        while True:
            jobs = self._take_waiting()
            texts = [text for job in jobs for text in job.texts]
            self.batch_sizes = (self.batch_sizes + [len(texts)])[-100:]
            try:
                results = self._encode(texts)
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                for job in jobs:
                    job.done.set_exception(error)
                continue
            start = 0
            for job in jobs:
                job.done.set_result(results[start : start + len(job.texts)])
                start += len(job.texts)

    def _take_waiting(self) -> List[_Job[Result]]:
        """The next job (waiting for one), then every job already queued, up to max_batch texts."""
        jobs = [self._jobs.get()]
        count = len(jobs[0].texts)
        while count < self._max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            count += len(job.texts)
        return jobs
