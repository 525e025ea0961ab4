"""Per-task pre- and post-processing for `predict` and `serve`, behind one small interface.

A handler turns a request's `inputs` into items (`parse`), items into model rows (`encode`, `pad`), one
row's logits into its result (`decode(logits, row, text)`), and a result into output fields (`record` for
JSON, `columns` for a table). `options` names the request options the task takes. A new task adds a handler
here; the server and the command stay as they are.
"""

import json

import numpy as np
from tokenizers import Tokenizer


class InputError(ValueError):
    """Inputs the task cannot take: the message says which and why, in one line."""


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class TextInputs:
    """Texts in, tokenized rows out: what every text task shares."""

    options: frozenset = frozenset()

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


class TextClassification(TextInputs):
    task = "text-classification"
    auto_model = "AutoModelForSequenceClassification"  # for the pytorch format
    options = frozenset({"top_k", "raw_scores"})

    def decode(self, logits: np.ndarray, row, text: str, top_k: int | None = None,
               raw_scores: bool = False) -> list[dict]:
        """[{label, score}] sorted by score: probabilities, or the logits with raw_scores."""
        logits = logits.astype(np.float64)
        scores = logits if raw_scores else softmax(logits)
        return [{"label": self.labels[j], "score": float(scores[j])}
                for j in np.argsort(-scores, kind="stable")[:top_k]]

    @staticmethod
    def record(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, "scores": {e["label"]: e["score"] for e in result}} if all_scores else fields

    @staticmethod
    def columns(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, **{f"score_{e['label']}": e["score"] for e in result}} if all_scores else fields


class TokenClassification(TextInputs):
    """Entity spans as `pipeline("token-classification", aggregation_strategy="simple")` gives them."""

    task = "token-classification"
    auto_model = "AutoModelForTokenClassification"

    def __init__(self, info):
        super().__init__(info)
        self.unk_id = self.tokenizer.token_to_id(str(getattr(self.tokenizer.model, "unk_token", "[UNK]")))

    def decode(self, logits: np.ndarray, row, text: str) -> list[dict]:
        """[{entity_group, score, word, start, end}]: each sub-token takes its best tag; adjacent sub-tokens of
        one type merge unless the next starts with B-; the score is the mean of theirs; O spans are dropped."""
        scores = softmax(logits.astype(np.float32))
        groups = []
        for i, token in enumerate(row.tokens):
            if row.special_tokens_mask[i]:
                continue
            best = int(scores[i].argmax())
            prefix, tag = self.labels[best].split("-", 1) if self.labels[best][:2] in ("B-", "I-") \
                else ("I", self.labels[best])
            start, end = row.offsets[i]
            word = text[start:end] if row.ids[i] == self.unk_id else token  # as the pipeline: [UNK] shows the text
            if groups and groups[-1]["tag"] == tag and prefix != "B":
                groups[-1]["tokens"].append((word, float(scores[i, best]), end))
            else:
                groups.append({"tag": tag, "tokens": [(word, float(scores[i, best]), end)], "start": start})
        return [{"entity_group": g["tag"], "score": float(np.mean([s for _, s, _ in g["tokens"]], dtype=np.float32)),
                 "word": self.tokenizer.decoder.decode([w for w, _, _ in g["tokens"]]),
                 "start": g["start"], "end": g["tokens"][-1][2]} for g in groups if g["tag"] != "O"]

    @staticmethod
    def record(result: list[dict], all_scores: bool) -> dict:
        return {"entities": result}

    @staticmethod
    def columns(result: list[dict], all_scores: bool) -> dict:
        return {"entities": json.dumps(result, ensure_ascii=False)}


HANDLERS = {handler.task: handler for handler in (TextClassification, TokenClassification)}
