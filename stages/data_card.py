"""What a person should know about the data before trusting a score: duplicates inside train, and test or
validation rows that also appear in train (leakage), exactly and once normalised (case, whitespace and
punctuation ignored). Rows are compared by an 8-byte hash, read a batch at a time: 16 bytes of memory a row."""

import hashlib
import re

import numpy as np
from datasets import Dataset

from stages.tasks.common import column_batches

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


def fingerprints(split: Dataset, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (exact, normalised) hash; an image's bytes are compared exactly only."""
    exact, loose = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    for values in column_batches(split, column):
        batch = [as_text(value) for value in values.to_pylist()]
        exact.append(np.fromiter((_digest(v) for v in batch), np.uint64, len(batch)))
        loose.append(np.fromiter((_digest(normalised(v) if isinstance(v, str) else v) for v in batch), np.uint64,
                                 len(batch)))
    return np.concatenate(exact), np.concatenate(loose)


def repeats(rows: np.ndarray) -> int:
    """Rows equal to an earlier row."""
    return int(len(rows) - len(np.unique(rows)))


def overlap(rows: np.ndarray, train: np.ndarray) -> int:
    """Rows also in train."""
    return int(np.isin(rows, train).sum())


def data_card(splits: dict[str, Dataset], column: str) -> dict:
    """Duplicates inside train and rows of validation and test also in train, exact and normalised."""
    train_exact, train_loose = fingerprints(splits["train"], column)
    card = {"duplicates_in_train": {"exact": repeats(train_exact), "normalised": repeats(train_loose)},
            "leakage": {}}
    for name in ("test", "validation"):
        exact, loose = fingerprints(splits[name], column)
        card["leakage"][f"{name}_in_train"] = {"exact": overlap(exact, train_exact),
                                               "normalised": overlap(loose, train_loose)}
    return card
