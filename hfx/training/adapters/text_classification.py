"""Text classification: one label per text (sentiment, topic, question type)."""

from collections import Counter

from datasets import ClassLabel, Dataset, Features, Value
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from hfx.training.adapters.common import DROPPED, clean_rows, require_columns
from hfx.training.adapters.single_label import SingleLabelAdapter
from hfx.training.adapters.text_inputs import TextInputsAdapter
from hfx.training.params import Data, Preprocess


class TextClassificationAdapter(TextInputsAdapter, SingleLabelAdapter):
    name = "text-classification"
    auto_model = AutoModelForSequenceClassification
    columns = ("text", "label")
    # The text-classification pipeline does not truncate unless told: past the max input length it would fail,
    # or label a text differently from predict and serve, which cut it there.
    pipeline_kwargs = {"truncation": True}
    truncated_unit = "rows"  # what stats.json counts as cut off by max_length

    def has_head(self, config) -> bool:
        """Whether a pretrained checkpoint already carries this task's head (a fine-tuned classifier)."""
        return any(name.endswith("ForSequenceClassification") for name in config.architectures or ())

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {text, label} strings; drops (and counts) empty texts, missing and excluded labels."""
        require_columns(split, data, split_name)
        feature = split.features[data.label_column]
        names = feature.names if isinstance(feature, ClassLabel) else None
        features = Features({"text": Value("string"), "label": Value("string"), DROPPED: Value("string")})
        kept, dropped, _ = clean_rows(split, self._clean, features, data=data, names=names)
        return kept, dropped

    def _clean(self, batch: dict, indices: list[int], data: Data, names: list[str] | None) -> dict:
        rows = {"text": [], "label": [], DROPPED: []}
        for text, value in zip(batch[data.text_column], batch[data.label_column]):
            label = self.read_label(value, names, data)
            if not isinstance(text, str) or not text.strip():
                reason = "empty_text"
            elif label is None:
                reason = "missing_label"
            elif self.excluded(label, data):
                reason = f"excluded_label:{label}"
            else:
                reason = None
            rows["text"].append(text if reason is None else None)
            rows["label"].append(label if reason is None else None)
            rows[DROPPED].append(reason)
        return rows

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        encoded = processor(batch["text"], truncation=True, max_length=settings.max_length)
        encoded["labels"] = [label2id[label] for label in batch["label"]]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        # A fast tokenizer keeps what truncation cut off; count it so stats.json can report it.
        encoded["truncated"] = [int(bool(e.overflowing)) for e in encoded.encodings]
        encoded["units"] = [1] * len(encoded["input_ids"])  # what `truncated` counts: rows
        return encoded

    def collator(self, tokenizer):
        return DataCollatorWithPadding(tokenizer)

    def baseline(self, train: Dataset, test: Dataset) -> dict:
        """TF-IDF + logistic regression on the same train split: the bar a transformer must clear."""
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        classifier = LogisticRegression(max_iter=2000, C=4.0)
        classifier.fit(vectorizer.fit_transform(list(train["text"])), list(train["label"]))
        predictions = classifier.predict(vectorizer.transform(list(test["text"])))
        truth = list(test["label"])
        _, _, f1, _ = precision_recall_fscore_support(truth, predictions, average="macro", zero_division=0)
        return {"model": "tfidf-logreg", "accuracy": float(accuracy_score(truth, predictions)), "f1_macro": float(f1)}
