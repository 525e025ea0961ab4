"""Dynamic batching for the HTTP service: the rows of concurrent requests gathered into model calls, one call at
a time in one worker thread, off the event loop."""

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class Rejected(Exception):
    """A request the service refuses: its HTTP status, a one-line message and the error type."""

    def __init__(self, status: int, message: str, kind: str):
        super().__init__(message)
        self.status, self.kind = status, kind


@dataclass
class Timing:
    """Where a request's time went, in seconds: waiting for the model, and in its calls."""

    queue: float = 0.0
    inference: float = 0.0


class Batcher:
    """Groups the rows of concurrent requests into model calls of at most `max_batch_size` rows, in the order they
    came; a request larger than that is split across calls. `max_queue` rows wait at most: beyond, 429."""

    def __init__(self, model, max_batch_size: int, max_queue: int, max_wait_ms: float, metrics):
        self.model, self.metrics = model, metrics
        self.max_batch_size, self.max_queue, self.max_wait_ms = max_batch_size, max_queue, max_wait_ms
        self.waiting: deque = deque()  # (rows, future): each at most max_batch_size rows
        self.pending = 0
        self.wakeup = asyncio.Event()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def submit(self, rows: list) -> tuple[list[np.ndarray], Timing]:
        """Each row's logits, and how long the request waited and ran."""
        if len(rows) > self.max_queue:
            raise Rejected(
                413,
                f"{len(rows)} inputs, more than the queue ever holds ({self.max_queue}); send fewer at a time",
                "PayloadTooLarge",
            )
        if self.pending + len(rows) > self.max_queue:
            raise Rejected(
                429,
                f"the queue is full ({self.pending} inputs waiting, max {self.max_queue}); retry later",
                "Overloaded",
            )
        loop, submitted = asyncio.get_running_loop(), time.perf_counter()
        futures = []
        for start in range(0, len(rows), self.max_batch_size):
            futures.append(loop.create_future())
            self.waiting.append((rows[start : start + self.max_batch_size], futures[-1]))
        self.pending += len(rows)
        self.metrics.queue_depth.set(self.pending)
        self.wakeup.set()
        parts = await asyncio.gather(*futures)
        first_start = min(started for _, started, _ in parts)
        timing = Timing(queue=first_start - submitted, inference=max(ended for _, _, ended in parts) - first_start)
        self.metrics.queue_time.observe(timing.queue)
        return [logits for part, _, _ in parts for logits in part], timing

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.max_wait_ms and self.pending < self.max_batch_size:
                await asyncio.sleep(self.max_wait_ms / 1000)
            while self.waiting:
                batch = [self.waiting.popleft()]
                size = len(batch[0][0])
                while self.waiting and size + len(self.waiting[0][0]) <= self.max_batch_size:
                    batch.append(self.waiting.popleft())
                    size += len(batch[-1][0])
                rows = [row for item, _ in batch for row in item]
                started = time.perf_counter()
                try:
                    logits = await loop.run_in_executor(self.worker, self.model, rows, self.observe_call)
                except Exception as exc:  # noqa: BLE001 - the requests in this batch get it; the server goes on
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    logits = None
                ended = time.perf_counter()
                self.metrics.inference.observe(ended - started)
                self.pending -= len(rows)
                self.metrics.queue_depth.set(self.pending)
                offset = 0
                for item, future in batch:
                    if logits is not None and not future.done():
                        future.set_result((logits[offset : offset + len(item)], started, ended))
                    offset += len(item)

    def observe_call(self, rows: int, padded_tokens: int) -> None:
        self.metrics.batch_size.observe(rows)
        self.metrics.batch_tokens.observe(padded_tokens)

    async def drained(self) -> None:
        """Returns once every row submitted so far has its answer."""
        while self.pending:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self.worker.shutdown()
