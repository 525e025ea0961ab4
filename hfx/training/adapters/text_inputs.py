"""What the text tasks share: a fast tokenizer is their processor, rows have a length in tokens, and a baseline
reads TF-IDF features of a text or of a pair of texts."""

import scipy.sparse as sp
from datasets import Dataset

from hfx.training.adapters.common import DROPPED, TaskDefaults
from hfx.training.params import Data, Model, Params, ParamsError, Preprocess
from hfx.training.sources import from_pretrained


class TextInputsAdapter(TaskDefaults):
    input_key = "text_column"  # the data.* key naming the input column

    def input_column(self, data: Data) -> str:
        return data.text_column

    group_by_length = True  # batches of rows of similar length pad less; rows carry a `length` column
    quantize_op_types = None  # int8: every op onnxruntime quantizes dynamically
    static_int8 = False  # weights only: activation ranges are computed per batch

    def served_inputs(self, raw_test) -> list:
        """The test split's inputs as a user hands them to predict and serve: the texts, or [text, pair] pairs."""
        if "text_pair" in raw_test.column_names:
            return [list(pair) for pair in zip(raw_test["text"], raw_test["text_pair"])]
        return list(raw_test["text"])

    def input_summary(self, split) -> dict:
        """What the data card says of a split's inputs beside its labels: nothing for texts here (their length
        in tokens depends on the model: preprocess reports it)."""
        return {}

    def card_figures(self, out, test, predictions_csv: str) -> list[tuple[str, str]]:
        """Figures of the task's own for the model card: none beyond the shared ones for text."""
        return []

    def train_transform(self, settings: Preprocess, seed: int = 0):
        """What changes training rows as they are read: nothing for text."""
        return None

    def check_settings(self, model: Model, settings: Preprocess) -> None:
        """preprocess.max_length within the positions the model has, in one line before any work."""
        from transformers import AutoConfig  # here, not at the top: transformers loads torch, download needs neither

        config = from_pretrained(AutoConfig, model)
        positions = getattr(config, "max_position_embeddings", None)
        if positions and settings.max_length > positions:
            raise ParamsError(
                f"preprocess.max_length: {settings.max_length} is more tokens than '{model.name}' takes"
                f" ({positions}, max_position_embeddings); set it to {positions} or less"
            )

    def collator(self, tokenizer):
        """Batches padded to their own longest row (token classification pads its labels too)."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def load_processor(self, model: Model):
        """The model's tokenizer; a fast one, since word alignment and offsets need it."""
        from transformers import AutoTokenizer

        tokenizer = from_pretrained(AutoTokenizer, model)
        if not tokenizer.is_fast:
            raise ParamsError(f"model.name: '{model.name}' has no fast tokenizer (tokenizer.json); hfx needs one")
        return tokenizer

    def saved_processor(self, folder):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)

    def input_names(self, tokenizer) -> list[str]:
        return list(tokenizer.model_input_names)

    def sample_inputs(self, tokenizer) -> tuple[dict, dict]:
        """Inputs to trace the ONNX graph with, and their dynamic axes."""
        names = list(tokenizer.model_input_names)
        sample = tokenizer(["a short example", "a somewhat longer example sentence"], padding=True, return_tensors="pt")
        return {name: sample[name] for name in names}, {name: {0: "batch", 1: "sequence"} for name in names}

    @staticmethod
    def encode_rows(batch: dict, processor, settings: Preprocess) -> tuple[dict, list[int]]:
        """A batch of texts (or pairs) tokenized, with each row's length and whether it was cut; and which text
        each row comes from. A text is one row, cut at max_length, or with `long_texts: chunk` as many
        overlapping windows as it takes (`stride` tokens shared), each trained on with the text's label."""
        pairs = (batch["text_pair"],) if "text_pair" in batch else ()
        chunk = settings.long_texts == "chunk"
        windows = {"stride": settings.stride, "return_overflowing_tokens": True} if chunk else {}
        encoded = processor(batch["text"], *pairs, truncation=True, max_length=settings.max_length, **windows)
        sources = encoded.pop("overflow_to_sample_mapping", None) or list(range(len(batch["text"])))
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        # A fast tokenizer keeps what truncation cut off; count it so stats.json can report it (chunk cuts nothing).
        encoded["truncated"] = [int(bool(e.overflowing) and not chunk) for e in encoded.encodings]
        encoded["units"] = [int(i == 0 or sources[i - 1] != source) for i, source in enumerate(sources)]  # texts
        return encoded, sources

    def prepare_saved(self, model, tokenizer, params: Params) -> None:
        # The fine-tuned folder's tokenizer truncates to the length the model was fine-tuned on, as preprocess
        # did: evaluate, predict, serve and pipeline() all read it from there.
        tokenizer.model_max_length = params.preprocess.max_length
        # Whether the model reads text pairs: config.json tells predict and serve (hfx/serving/folder.py).
        model.config.hfx_text_pairs = params.data.text_pair_column is not None
        # How predict and serve read a text longer than max_length: cut, or in windows (hfx/serving/folder.py).
        if params.preprocess.long_texts == "chunk":
            model.config.hfx_long_texts = {"windows": "chunk", "stride": params.preprocess.stride}


def add_row(rows: dict, reason: str | None, text, pair, label, data: Data) -> None:
    """One source row into a `clean_rows` batch: its text (and second text) and label, or Nones and why it is
    dropped (`reason`)."""
    keep = reason is None
    rows["text"].append(text if keep else None)
    rows["label"].append(label if keep else None)
    rows[DROPPED].append(reason)
    if data.text_pair_column:
        rows.setdefault("text_pair", []).append(pair if keep else None)


def missing_text(text, pair, data: Data) -> str | None:
    """Why a row's text (or its pair's second text) cannot be read: `empty_text`, `empty_text_pair`, or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty_text"
    if data.text_pair_column and (not isinstance(pair, str) or not pair.strip()):
        return "empty_text_pair"
    return None


class TextFeatures:
    """TF-IDF features for a baseline, fitted on train: of each text, or of each pair as both texts' vectors,
    their absolute difference and their element-wise product (what two texts share, and where they differ)."""

    def __init__(self, train: Dataset):
        from sklearn.feature_extraction.text import TfidfVectorizer  # for the baseline only

        self.pairs = "text_pair" in train.column_names
        texts = list(train["text"]) + (list(train["text_pair"]) if self.pairs else [])
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit(texts)

    def transform(self, split: Dataset):
        first = self.vectorizer.transform(list(split["text"]))
        if not self.pairs:
            return first
        second = self.vectorizer.transform(list(split["text_pair"]))
        return sp.hstack([first, second, abs(first - second), first.multiply(second)]).tocsr()
