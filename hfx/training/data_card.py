"""What a person should know about the data before trusting a score: rows and labels per split, what was
dropped, duplicates inside train, and test or validation rows that also appear in train (leakage), exactly and
once normalised (case, whitespace and punctuation ignored); after tokenizing, how long the texts are and how
many were cut. Rows are compared by an 8-byte hash, read a batch at a time: 16 bytes of memory a row."""

import hashlib
import re

import numpy as np
import pandas as pd
from datasets import Dataset

from hfx.training.adapters.common import column_batches
from hfx.training.adapters.interface import TaskAdapter

PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalised(text: str) -> str:
    """'The  Movie, was GREAT!' and 'the movie was great' read the same: lower case, punctuation removed,
    whitespace collapsed."""
    return " ".join(PUNCTUATION.sub("", text.lower()).split())


def as_text(value) -> str | bytes:
    """A row's input as one value to compare: a text, the words of a sentence, or an image's bytes."""
    if isinstance(value, dict):
        return value.get("bytes") or value.get("path") or b""
    return " ".join(value) if isinstance(value, list) else value


def _digest(value: str | bytes) -> int:
    data = value.encode() if isinstance(value, str) else value
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def row_inputs(split: Dataset, column: str):
    """Each row's input as one value, a batch at a time: a pair of texts joins its two texts (a pair repeats
    only when both of its texts do)."""
    if "text_pair" not in split.column_names:
        yield from ([as_text(value) for value in values.to_pylist()] for values in column_batches(split, column))
        return
    for batch in split.select_columns([column, "text_pair"]).iter(batch_size=10_000):
        yield [f"{text}\x1f{pair}" for text, pair in zip(batch[column], batch["text_pair"])]


def fingerprints(split: Dataset, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (exact, normalised) hash; an image's bytes are compared exactly only."""
    exact, loose = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    for batch in row_inputs(split, column):
        exact.append(np.fromiter((_digest(v) for v in batch), np.uint64, len(batch)))
        loose.append(
            np.fromiter((_digest(normalised(v) if isinstance(v, str) else v) for v in batch), np.uint64, len(batch))
        )
    return np.concatenate(exact), np.concatenate(loose)


def repeats(rows: np.ndarray) -> int:
    """Rows equal to an earlier row."""
    return int(len(rows) - len(np.unique(rows)))


def overlap(rows: np.ndarray, train: np.ndarray) -> int:
    """Rows also in train."""
    return int(np.isin(rows, train).sum())


def overlaps(splits: dict[str, Dataset], column: str) -> dict:
    """Duplicates inside train and rows of validation and test also in train, exact and normalised."""
    train_exact, train_loose = fingerprints(splits["train"], column)
    card = {"duplicates_in_train": {"exact": repeats(train_exact), "normalised": repeats(train_loose)}, "leakage": {}}
    for name in ("test", "validation"):
        exact, loose = fingerprints(splits[name], column)
        card["leakage"][f"{name}_in_train"] = {
            "exact": overlap(exact, train_exact),
            "normalised": overlap(loose, train_loose),
        }
    return card


def data_card(splits: dict[str, Dataset], task: TaskAdapter, labels: dict, dropped: dict) -> dict:
    """Rows, labels (entities per type for token classification, as the manifest counted them) and dropped
    rows per split, what the task says of its inputs (image sizes), and the overlaps."""
    inputs = {name: task.input_summary(split) for name, split in splits.items()}
    return {
        "rows": {name: len(split) for name, split in splits.items()},
        "labels": labels,
        "dropped": dropped,
        **{key: {name: summary[key] for name, summary in inputs.items()} for key in inputs["train"]},
        **overlaps(splits, task.columns[0]),
    }


def length_card(
    lengths: dict[str, np.ndarray], truncated: dict[str, int], units: dict[str, int], max_length: int
) -> dict:
    """Per split: text length in tokens (median, 90th and 99th percentile, longest, after truncation) and
    the share of `units` (rows, or words of sentences) cut at `max_length`."""
    return {
        name: {
            "tokens": {
                "p50": int(np.percentile(values, 50)),
                "p90": int(np.percentile(values, 90)),
                "p99": int(np.percentile(values, 99)),
                "max": int(values.max(initial=0)),
            },
            "truncated_share": round(truncated[name] / max(units[name], 1), 4),
            "max_length": max_length,
        }
        for name, values in lengths.items()
    }


def length_histogram(lengths: dict[str, np.ndarray], max_length: int, bins: int = 32) -> pd.DataFrame:
    """The share of each split's rows per length bin (tokens: the bin's lower edge), for a DVC plot."""
    edges = np.linspace(0, max_length, bins + 1)
    shares = {name: np.histogram(values, bins=edges)[0] / max(len(values), 1) for name, values in lengths.items()}
    return pd.DataFrame({"tokens": edges[:-1].round(1), **{name: share.round(5) for name, share in shares.items()}})


def label_balance(labels: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Each label's share of each split (entities per type for token classification), one bar a label and
    split, for a DVC plot."""
    names = sorted({label for counts in labels.values() for label in counts})
    return pd.DataFrame(
        [
            {"label": f"{name} ({split})", "share": round(counts.get(name, 0) / max(sum(counts.values()), 1), 5)}
            for name in names
            for split, counts in labels.items()
        ]
    )
