"""What every text task's handler shares: texts (or pairs of texts) in, tokenized rows out, padded per batch."""

import json

import numpy as np
from tokenizers import Tokenizer

from hfx.serving.input_errors import InputError


class TextInputsHandler:
    """Texts in, tokenized rows out: what every text task shares. A model trained on pairs takes [text, pair]
    inputs (as text-embeddings-inference does), tokenized together and cut on the longer side first."""

    options: frozenset = frozenset()  # the request options the task takes
    capped_options: frozenset = frozenset()  # those whose value sets a request's work: the server caps them
    input_field = "text"
    processor_file = "tokenizer.json"
    outputs = ("logits",)  # the model outputs an answer is decided from, by name (ONNX and transformers alike)

    def __init__(self, info):
        self.labels, self.max_length, self.temperature = info.labels, info.max_length, info.temperature
        self.text_pairs, self.stride = info.text_pairs, info.chunk_stride
        self.tokenizer = Tokenizer.from_file(str(info.folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # each batch is padded to its own longest row, in pad()
        config_file = info.folder / "tokenizer_config.json"
        self.tokenizer_config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        # Which end a long text loses, as transformers' tokenizer of the same folder cuts it (and training did).
        self.truncation_side = self.tokenizer_config.get("truncation_side", "right")
        if self.truncation_side not in ("left", "right"):
            raise InputError(
                f'\'{config_file}\' has truncation_side {self.truncation_side!r}; expected "right" or "left"'
            )
        self.cut_at(self.max_length)
        self.pad_id = self.special_id("pad_token") or self.tokenizer.token_to_id("[PAD]") or 0

    def special_id(self, *names: str) -> int | None:
        """The id of the first special token tokenizer_config.json names among `names` (pad_token, cls_token...),
        or None."""
        for name in names:
            token = self.tokenizer_config.get(name)
            token = (
                token.get("content") if isinstance(token, dict) else token
            )  # an AddedToken as saved by older versions
            if isinstance(token, str) and self.tokenizer.token_to_id(token) is not None:
                return self.tokenizer.token_to_id(token)
        return None

    @property
    def table_columns(self) -> tuple[str, ...]:
        """predict's options naming the columns of a table that make one item."""
        return ("text_column", "text_pair_column") if self.text_pairs else ("text_column",)

    def cut_at(self, max_length: int) -> None:
        """Rows of at most `max_length` tokens: a longer text is cut there, or read in windows of that many tokens
        when the model was trained so (`preprocess.long_texts: chunk`), `stride` tokens shared between windows."""
        if self.stride is not None and self.stride >= max_length // 2:
            raise InputError(
                f"windows of {max_length} tokens leave too little new text beside the {self.stride} each shares with"
                f" the one before; give at least {2 * self.stride + 2}"
            )
        self.tokenizer.enable_truncation(max_length, stride=self.stride or 0, direction=self.truncation_side)

    def warmup_rows(self) -> list:
        """Rows of a few lengths up to the max, which a server runs before it reports ready."""
        lengths = sorted({1, 16, 64, self.max_length} & set(range(1, self.max_length + 1)))
        texts = [" ".join(["film"] * n) for n in lengths]
        return self.encode([[text, "film"] for text in texts] if self.text_pairs else texts)

    def parse(self, inputs) -> tuple[list, bool]:
        """(texts or [text, pair] pairs, whether a single one was sent rather than a list)."""
        if self.text_pairs:
            return self._parse_pairs(inputs)
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if not isinstance(texts, list):
            raise InputError(f"inputs must be a string or a list of strings, got {type(inputs).__name__}")
        if not texts:
            raise InputError("inputs is an empty list; send at least one text")
        for i, text in enumerate(texts):
            where = "inputs" if single else f"inputs[{i}]"
            if isinstance(text, list):
                raise InputError(f"{where} is a list; this model takes single texts, not pairs")
            if not isinstance(text, str):
                raise InputError(f"{where} must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InputError(f"{where} is empty")
        return texts, single

    @staticmethod
    def _is_pair(value) -> bool:
        return isinstance(value, list) and len(value) == 2 and all(isinstance(text, str) for text in value)

    def _parse_pairs(self, inputs) -> tuple[list, bool]:
        """["text", "pair"] is one pair, [["text", "pair"], ...] a list of them."""
        single = self._is_pair(inputs)
        pairs = [inputs] if single else inputs
        if not isinstance(pairs, list) or not pairs:
            raise InputError('this model compares two texts: send inputs as ["text", "pair"] or a list of them')
        for i, pair in enumerate(pairs):
            where = "inputs" if single else f"inputs[{i}]"
            if not self._is_pair(pair):
                raise InputError(f'{where} must be a pair of texts ["text", "pair"]; this model compares two texts')
            for j, text in enumerate(pair):
                if not text.strip():
                    raise InputError(f"{where}[{j}] is empty")
        return pairs, single

    def read(self, item):
        """One text (or [text, pair]) of a file or the command line, or an InputError saying why it cannot be
        labelled."""
        if self.text_pairs:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InputError("not a pair of texts")
            return [self._read_text(item[0], ""), self._read_text(item[1], "pair: ")]
        return self._read_text(item, "")

    @staticmethod
    def _read_text(text, where: str) -> str:
        if isinstance(text, str) and text.strip():
            return text
        missing = isinstance(text, str) or text is None or text != text  # a table's empty cell reads as NaN
        raise InputError(f"{where}empty text" if missing else f"{where}not a string ({text!r})")

    def fields(self, item) -> dict:
        """The input as a JSON result shows it: {"text"}, or {"text", "text_pair"}."""
        return {"text": item[0], "text_pair": item[1]} if self.text_pairs else {"text": item}

    def encode(self, items: list) -> list:
        """Each item tokenized, up to the model's max length: the rest is cut off (`truncated` tells when; a pair
        is cut on its longer side first), or held in the encoding's further windows (`windows`)."""
        return self.tokenizer.encode_batch([tuple(item) for item in items] if self.text_pairs else items)

    def windows(self, encoded) -> list:
        """The rows the model runs for one encoded item: itself, and its further windows when long texts are
        read in windows."""
        return [encoded, *encoded.overflowing] if self.stride is not None else [encoded]

    @staticmethod
    def merge(window_logits: list[np.ndarray], encoded, item) -> np.ndarray:
        """An item's logits from its windows': their mean (a long text's answer weighs every part of it)."""
        return window_logits[0] if len(window_logits) == 1 else np.mean(window_logits, axis=0)

    @staticmethod
    def length(row) -> int:
        return len(row.ids)

    @staticmethod
    def cost(row) -> int:
        """What a row costs a model call, in tokens (the server's --max-batch-tokens counts these)."""
        return len(row.ids)

    def truncated(self, encoded) -> bool:
        """Whether part of the item was cut off (never when long texts are read in windows)."""
        return bool(encoded.overflowing) and self.stride is None

    def pad(self, rows: list) -> dict[str, np.ndarray]:
        longest = max(len(row.ids) for row in rows)
        arrays = {
            "input_ids": np.full((len(rows), longest), self.pad_id, dtype=np.int64),
            "token_type_ids": np.zeros((len(rows), longest), dtype=np.int64),
            "attention_mask": np.zeros((len(rows), longest), dtype=np.int64),
        }
        for i, row in enumerate(rows):
            n = len(row.ids)
            arrays["input_ids"][i, :n] = row.ids
            arrays["token_type_ids"][i, :n] = row.type_ids
            arrays["attention_mask"][i, :n] = row.attention_mask
        return arrays
