"""Dynamic batching for the server: requests that arrive together share one forward pass.

One worker thread owns the model (torch is never run from two threads at once). It takes the first
waiting request, then gathers more for up to `max_wait_ms` or until `max_batch_size` texts, runs the
batch through the Predictor once (one pass for single texts, one for pairs) and hands each request its
own rows back, in its own order. Nothing here knows about HTTP."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

_STOP = object()  # put after the last request: the worker answers everything before it, then ends


@dataclass
class Job:
    """One request: its texts (and second texts), whether it wants every class's score, and its answer."""

    texts: list[str]
    pairs: list[str] | None
    all_scores: bool
    future: Future = field(default_factory=Future)


class Batcher:
    """A queue of requests and the one thread that answers them in batches."""

    def __init__(self, predictor: Any, max_batch_size: int = 32, max_wait_ms: float = 5.0) -> None:
        self.predictor = predictor
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.forward_passes = 0  # predictor.logits calls: the tests and the stop line count batching by it
        self.texts_done = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()  # submit vs close: nothing enters the queue after the stop mark

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="seqtune-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], pairs: list[str] | None = None, all_scores: bool = False) -> Future:
        """The future rows of these texts: one dict per text, as `Predictor.predict` gives them."""
        job = Job(list(texts), None if pairs is None else list(pairs), all_scores)
        with self._lock:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.put(job)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Answer every request already submitted, then stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        held = None  # a request that did not fit the last batch: it opens the next one
        while True:
            first = held if held is not None else self._queue.get()
            held = None
            if first is _STOP:
                return
            batch, size, stopping = [first], len(first.texts), False
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch_size:
                try:
                    job = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                if size + len(job.texts) > self.max_batch_size:
                    held = job
                    break
                batch.append(job)
                size += len(job.texts)
            self._answer(batch)
            if stopping:
                return

    def _answer(self, batch: list[Job]) -> None:
        # A request whose client went away (its future cancelled) is dropped before it costs a forward pass.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        for group in ([j for j in live if j.pairs is None], [j for j in live if j.pairs is not None]):
            if group:
                self._run(group)

    def _run(self, group: list[Job]) -> None:
        texts = [text for job in group for text in job.texts]
        pairs = None if group[0].pairs is None else [text for job in group for text in job.pairs]
        try:
            logits = self.predictor.logits(texts, pairs)
        except Exception as err:  # noqa: BLE001 - one request must not fail the others in its batch
            if len(group) == 1:
                group[0].future.set_exception(err)
            else:  # find the one that breaks: each on its own
                for job in group:
                    self._run([job])
            return
        self.forward_passes += 1
        self.texts_done += len(texts)
        start = 0
        for job in group:
            end = start + len(job.texts)
            try:
                job.future.set_result(self.predictor.rows(logits[start:end], job.all_scores))
            except Exception as err:  # noqa: BLE001 - said to that request's client, the worker goes on
                job.future.set_exception(err)
            start = end
