"""Scores as users get them: a split's raw inputs through the serving half, one format at a time.

evaluate scores the fine-tuned folder and export every format it writes with this, so metrics/eval.json and
metrics/export.json hold what `python -m hfx.predict` and `python -m hfx.serve` answer: the same reading,
tokenization, truncation, batching, decoding and temperature.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset

from hfx.serving.input_errors import InputError
from hfx.serving.loaded_model import LoadedModel
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.params import StageError


@dataclass
class Served:
    """A split's raw inputs answered as predict gives them."""

    results: list  # each row's answer (the handler's decode)
    logits: list[np.ndarray]  # each model row's logits as the model gives them (per token for entities; a long
    # text read in windows has a row per window)
    decided: list[np.ndarray]  # the logits each answer is decided from, one row per label it gives
    model: LoadedModel


def serve_split(
    folder: Path,
    fmt: str,
    task: TaskAdapter,
    raw_split: Dataset,
    batch_size: int,
    threads: int,
    calibration: dict | None = None,
) -> Served:
    """`calibration`: what calibration.json would hold (evaluate, before export writes it); None: the folder's."""
    model = LoadedModel(folder, fmt, threads, calibration)
    items = []
    for row, item in enumerate(task.served_inputs(raw_split), start=1):
        try:
            items.append(model.handler.read(item))
        except InputError as exc:  # download drops what no model can read; a tokenizer may read less
            raise StageError(
                f"{raw_split.split or 'split'} row {row}: {exc}; predict and serve refuse it too: drop the row"
                " from the data"
            ) from None
    encoded = model.handler.encode(items)
    logits, window_logits = model.item_logits(encoded, items, batch_size)
    return Served(
        results=[model.handler.decode(*answer) for answer in zip(logits, encoded, items)],
        logits=window_logits,
        decided=[model.handler.decision_logits(*answer) for answer in zip(logits, encoded, items)],
        model=model,
    )


def median_latency_ms(model: LoadedModel, task: TaskAdapter, raw_test: Dataset, queries: int) -> float:
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
