"""Scores as users get them: the test split's raw inputs through the serving half, one format at a time.

export measures every format it writes with this, so metrics/export.json holds what `python -m hfx.predict` and
`python -m hfx.serve` answer: the same reading, tokenization, truncation, batching, decoding and temperature.
"""

import time
from pathlib import Path

import numpy as np
from datasets import Dataset

from hfx.serving.model import LoadedModel


def serve_test_split(folder: Path, fmt: str, task, raw_test: Dataset, batch_size: int, threads: int):
    """(each test row's result as predict gives it, each row's logits, the loaded model)."""
    model = LoadedModel(folder, fmt, threads)
    items = [model.handler.read(item) for item in task.served_inputs(raw_test)]
    rows = model.handler.encode(items)
    logits = model.logits(rows, batch_size)
    results = [model.handler.decode(*row) for row in zip(logits, rows, items)]
    return results, logits, model


def median_latency_ms(model: LoadedModel, task, raw_test: Dataset, queries: int) -> float:
    """The median time of one input answered alone, from its raw form to its result (as a request to serve
    with one input, without HTTP)."""
    items = task.served_inputs(raw_test.select(range(min(queries, len(raw_test)))))
    model.predict([model.handler.read(items[0])])  # warm-up
    times = []
    for item in items:
        start = time.perf_counter()
        model.predict([model.handler.read(item)])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def largest_difference(logits: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """The largest absolute logit difference between two formats' answers to the same rows."""
    return max((float(np.abs(a - b).max()) for a, b in zip(logits, reference)), default=0.0)
