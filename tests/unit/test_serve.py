"""The server's parts in process: the request queue's token budget and order, parallel model calls sharing
out the queue, and a request larger than the queue (tests/pipeline/test_serve.py runs the real server)."""

import threading

import pytest


def test_more_inputs_than_the_queue_holds_is_413_not_429():
    import asyncio
    from types import SimpleNamespace

    from hfx.serving.batcher import Batcher, Rejected
    from hfx.serving.telemetry import Metrics

    async def submit():
        batcher = Batcher(SimpleNamespace(), 32, 16384, max_queue=4, max_wait_ms=0, metrics=Metrics().for_model("m"))
        with pytest.raises(Rejected) as refused:
            await batcher.submit(["row"] * 5)
        return refused.value.status

    assert asyncio.run(submit()) == 413


def test_model_calls_keep_to_the_token_budget_oldest_request_first():
    """Rows of 10 tokens under a budget of 30 padded tokens: calls of 3 rows at most; a row over the budget
    goes alone; every request gets its own rows' logits back, in order, whatever calls they spread over."""
    import asyncio
    from types import SimpleNamespace

    from hfx.serving.batcher import Batcher
    from hfx.serving.telemetry import Metrics

    calls = []

    def model(rows, observe):
        calls.append([row for row in rows])
        observe(len(rows), len(rows) * max(rows))
        return [f"logits of {row}" for row in rows]

    model.handler = SimpleNamespace(cost=lambda row: row)  # a row here is its own cost in tokens

    async def serve(requests):
        batcher = Batcher(model, 32, 30, max_queue=64, max_wait_ms=0, metrics=Metrics().for_model("m"))
        runner = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
        runner.cancel()
        return [logits for logits, _ in answers]

    answers = asyncio.run(serve([[10, 10], [10, 10, 10], [100], [10]]))
    assert answers == [[f"logits of {row}" for row in rows] for rows in [[10, 10], [10, 10, 10], [100], [10]]]
    assert calls == [[10, 10, 10], [10, 10], [100], [10]]
    assert all(len(call) * max(call) <= 30 or len(call) == 1 for call in calls)


def test_parallel_calls_run_at_once_and_share_out_the_queue():
    """Two calls at a time: both threads are in the model together (each waits for the other at a barrier, which
    one call at a time would never pass), the queued rows are shared between them, and every request gets its
    own rows' logits back."""
    import asyncio
    from types import SimpleNamespace

    from hfx.serving.batcher import Batcher
    from hfx.serving.telemetry import Metrics

    both_in_the_model = threading.Barrier(2, timeout=10)
    calls = []

    def model(rows, observe):
        calls.append(list(rows))
        both_in_the_model.wait()
        return [f"logits of {row}" for row in rows]

    model.handler = SimpleNamespace(cost=lambda row: 1)

    async def serve(requests):
        batcher = Batcher(model, 32, 16384, 64, 0, Metrics().for_model("m"), parallel_calls=2)
        runner = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
        runner.cancel()
        batcher.close()
        return [logits for logits, _ in answers]

    requests = [["a"], ["b", "c"], ["d"]]
    assert asyncio.run(serve(requests)) == [[f"logits of {row}" for row in rows] for rows in requests]
    assert sorted(map(len, calls)) == [2, 2], calls
