"""Per-task pre- and post-processing for `predict` and `serve`, behind one small interface.

A handler turns a request's `inputs` into items (`parse`), items into model rows (`encode`, `pad`) and
logits into results (`decode`). A new task adds a handler here; the server and the command stay as they are.
"""

import json

import numpy as np
from tokenizers import Tokenizer


class InputError(ValueError):
    """Inputs the task cannot take: the message says which and why, in one line."""


class TextClassification:
    task = "text-classification"

    def __init__(self, info):
        self.labels, self.max_length = info.labels, info.max_length
        self.tokenizer = Tokenizer.from_file(str(info.folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # each batch is padded to its own longest row, in pad()
        self.tokenizer.enable_truncation(self.max_length)
        config_file = info.folder / "tokenizer_config.json"
        pad_token = json.loads(config_file.read_text()).get("pad_token") if config_file.is_file() else None
        self.pad_id = self.tokenizer.token_to_id(pad_token or "[PAD]") or 0

    def parse(self, inputs) -> tuple[list[str], bool]:
        """(texts, whether a single text was sent rather than a list)."""
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if not isinstance(texts, list):
            raise InputError(f"inputs must be a string or a list of strings, got {type(inputs).__name__}")
        if not texts:
            raise InputError("inputs is an empty list; send at least one text")
        for i, text in enumerate(texts):
            where = "inputs" if single else f"inputs[{i}]"
            if not isinstance(text, str):
                raise InputError(f"{where} must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InputError(f"{where} is empty")
        return texts, single

    def encode(self, texts: list[str]) -> list:
        """Tokenized rows, truncated to the model's max length (`truncated(row)` tells which were)."""
        return self.tokenizer.encode_batch(texts)

    @staticmethod
    def length(row) -> int:
        return len(row.ids)

    @staticmethod
    def truncated(row) -> bool:
        return bool(row.overflowing)

    def pad(self, rows: list) -> dict[str, np.ndarray]:
        longest = max(len(row.ids) for row in rows)
        arrays = {"input_ids": np.full((len(rows), longest), self.pad_id, dtype=np.int64),
                  "token_type_ids": np.zeros((len(rows), longest), dtype=np.int64),
                  "attention_mask": np.zeros((len(rows), longest), dtype=np.int64)}
        for i, row in enumerate(rows):
            n = len(row.ids)
            arrays["input_ids"][i, :n] = row.ids
            arrays["token_type_ids"][i, :n] = row.type_ids
            arrays["attention_mask"][i, :n] = row.attention_mask
        return arrays

    def decode(self, logits: np.ndarray, top_k: int | None = None, raw_scores: bool = False) -> list[list[dict]]:
        """Per row, [{label, score}] sorted by score: probabilities, or the logits with raw_scores."""
        logits = logits.astype(np.float64)
        if raw_scores:
            scores = logits
        else:
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            scores = exp / exp.sum(axis=-1, keepdims=True)
        order = np.argsort(-scores, axis=-1, kind="stable")[:, :top_k]
        return [[{"label": self.labels[j], "score": float(row[j])} for j in ranks] for row, ranks in zip(scores, order)]


HANDLERS = {handler.task: handler for handler in (TextClassification,)}

