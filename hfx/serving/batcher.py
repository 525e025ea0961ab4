"""Dynamic batching for the HTTP service: the rows of concurrent requests gathered into model calls, run in
worker threads off the event loop, `parallel_calls` at a time."""

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


@dataclass
class Waiting:
    """A request's rows in the queue: how many a model call has taken, their logits as calls return them."""

    rows: list
    costs: list[int]
    future: asyncio.Future
    taken: int = 0
    answered: int = 0
    started: float | None = None
    ended: float = 0.0

    def __post_init__(self):
        self.logits = [None] * len(self.rows)


class Batcher:
    """Gathers the rows of concurrent requests into model calls, oldest request first, until a call holds
    `max_batch_size` rows or its padded tokens (rows x the longest row's cost) would pass `max_batch_tokens`; a
    request larger than that spreads over calls, and a row over the budget goes alone. Inside a call the model
    groups rows of similar length (LoadedModel). `max_queue` rows wait at most: beyond, 429.

    With `parallel_calls` above 1, that many calls run at once, each in its own thread (ONNX Runtime releases the
    GIL), and the queued rows are shared out among the idle threads, so none idles while another has a backlog."""

    def __init__(
        self,
        model,
        max_batch_size: int,
        max_batch_tokens: int,
        max_queue: int,
        max_wait_ms: float,
        metrics,
        parallel_calls: int = 1,
    ):
        self.model, self.metrics = model, metrics
        self.max_batch_size, self.max_batch_tokens = max_batch_size, max_batch_tokens
        self.max_queue, self.max_wait_ms = max_queue, max_wait_ms
        self.waiting: deque[Waiting] = deque()
        self.pending = 0  # rows submitted and not yet answered (the queue limit counts these)
        self.queued = 0  # rows submitted and not yet taken by a call
        self.parallel_calls = self.idle = parallel_calls
        self.wakeup = asyncio.Event()
        self.worker = ThreadPoolExecutor(max_workers=parallel_calls, thread_name_prefix="model")

    async def submit(self, rows: list) -> tuple[list[np.ndarray], Timing]:
        """Each row's logits, and how long the request waited and ran."""
        if len(rows) > self.max_queue:
            raise Rejected(
                413,
                f"{len(rows)} inputs (a long text read in windows counts each window), more than the queue ever"
                f" holds ({self.max_queue}); send fewer at a time",
                "PayloadTooLarge",
            )
        if self.pending + len(rows) > self.max_queue:
            raise Rejected(
                429,
                f"the queue is full ({self.pending} inputs waiting, max {self.max_queue}); retry later",
                "Overloaded",
            )
        submitted = time.perf_counter()
        waiting = Waiting(
            rows, [self.model.handler.cost(row) for row in rows], asyncio.get_running_loop().create_future()
        )
        self.waiting.append(waiting)
        self.pending += len(rows)
        self.queued += len(rows)
        self.metrics.queue_depth.set(self.pending)
        self.wakeup.set()
        await waiting.future
        timing = Timing(queue=waiting.started - submitted, inference=waiting.ended - waiting.started)
        self.metrics.queue_time.observe(timing.queue)
        return waiting.logits, timing

    def next_call(self, limit: int) -> list[tuple[Waiting, int]]:
        """(request, row index) pairs for one model call, oldest request first, within the limits."""
        call, longest = [], 0
        while self.waiting and len(call) < min(self.max_batch_size, limit):
            waiting = self.waiting[0]
            cost = waiting.costs[waiting.taken]
            if call and (len(call) + 1) * max(longest, cost) > self.max_batch_tokens:
                break
            call.append((waiting, waiting.taken))
            longest = max(longest, cost)
            waiting.taken += 1
            if waiting.taken == len(waiting.rows):
                self.waiting.popleft()
        self.queued -= len(call)
        return call

    async def run(self) -> None:
        running = set()
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                if self.max_wait_ms and self.idle == self.parallel_calls and self.queued < self.max_batch_size:
                    await asyncio.sleep(self.max_wait_ms / 1000)
                while self.waiting and self.idle:
                    call = self.next_call(limit=max(1, -(-self.queued // self.idle)))  # a share for each idle thread
                    self.idle -= 1
                    task = asyncio.create_task(self.run_call(call))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def run_call(self, call: list[tuple[Waiting, int]]) -> None:
        rows = [waiting.rows[i] for waiting, i in call]
        started = time.perf_counter()
        try:
            logits = await asyncio.get_running_loop().run_in_executor(self.worker, self.model, rows, self.observe_call)
            failure = None
        except Exception as exc:  # noqa: BLE001 - the requests in this call get it; the server goes on
            logits, failure = [None] * len(rows), exc
        finally:
            self.idle += 1
            self.wakeup.set()
        ended = time.perf_counter()
        self.metrics.inference.observe(ended - started)
        self.pending -= len(rows)
        self.metrics.queue_depth.set(self.pending)
        for (waiting, i), row_logits in zip(call, logits):
            waiting.logits[i] = row_logits
            waiting.answered += 1
            waiting.started = started if waiting.started is None else min(waiting.started, started)
            waiting.ended = max(waiting.ended, ended)
            if waiting.future.done():
                continue
            if failure is not None:
                self.drop(waiting)
                waiting.future.set_exception(failure)
            elif waiting.answered == len(waiting.rows):
                waiting.future.set_result(None)

    def drop(self, waiting: Waiting) -> None:
        """A failed request's rows still queued leave the queue with it."""
        if waiting in self.waiting:
            self.waiting.remove(waiting)
            self.pending -= len(waiting.rows) - waiting.taken
            self.queued -= len(waiting.rows) - waiting.taken
            self.metrics.queue_depth.set(self.pending)

    def observe_call(self, rows: int, padded_tokens: int) -> None:
        self.metrics.batch_size.observe(rows)
        self.metrics.batch_tokens.observe(padded_tokens)

    async def drained(self) -> None:
        """Returns once every row submitted so far has its answer."""
        while self.pending:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self.worker.shutdown()
