"""Text classification: one label per text (sentiment, topic, question type)."""

from collections import Counter

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, Features, Value
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from scipy.special import softmax
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from stages.params import Data, ParamsError, Preprocess
from stages.tasks.text_inputs import TextInputs
from stages.tasks.common import (DROPPED, Evaluation, clean_rows, label_text, require_columns, score_curves,
                                 sorted_labels, value_counts)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict:
    ids = list(range(len(names)))
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, labels=ids, average="macro",
                                                               zero_division=0)
    per_class = precision_recall_fscore_support(labels, predictions, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1_macro": float(f1),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, *per_class)
        },
    }


class SingleLabel:
    """One label per row: label order and checks, accuracy and macro F1, the evaluation tables. Shared by text
    and image classification; `item_column` is the column a predictions row shows."""

    item_column = "text"
    stratify_column = "label"
    headline = "accuracy"  # the score export reports per format
    best_metric = "f1_macro"  # what finetune.metric_for_best_model: auto keeps
    validation_metrics = ("accuracy", "f1_macro")  # what trainer_metrics reports
    card_metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro")  # the model card's test scores
    pipeline_kwargs = {}
    margin_keys = ("accuracy", "f1_macro")  # compared with the baseline
    logits_axes = {0: "batch"}

    def label_counts(self, split: Dataset) -> dict:
        return dict(sorted(value_counts(split, "label").items()))

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        names = set(value_counts(splits["train"], "label"))
        if len(names) < 2:
            raise ParamsError(f"data: train has a single label {sorted(names)}; classification needs at least two")
        for split in ("validation", "test"):
            unseen = sorted(set(value_counts(splits[split], "label")) - names)
            if unseen:
                raise ParamsError(f"data: labels {unseen} in {split} never appear in train"
                                  f" (train labels: {sorted_labels(names)})")

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        """The label order (ids): as `data.label_names` lists them, else numeric or alphabetical."""
        present = set(value_counts(train, "label"))
        if data.label_names:
            return [name for name in data.label_names.values() if name in present]
        return sorted_labels(present)

    def read_label(self, value, names: list[str] | None, data: Data) -> str | None:
        """A source label as the text the pipeline uses: through a ClassLabel's names, then `data.label_names`."""
        label = label_text(value, names)
        if label is None or data.label_names is None:
            return label
        if label not in data.label_names:
            raise ParamsError(f"data.label_names: no name for label '{label}'; it names"
                              f" {', '.join(sorted_labels(data.label_names))}")
        return data.label_names[label]

    def excluded(self, label: str, data: Data) -> bool:
        """`data.exclude_labels` may give a label by its name or by its value in the source."""
        source = {name: value for value, name in (data.label_names or {}).items()}
        return label in data.exclude_labels or source.get(label) in data.exclude_labels

    def decode(self, logits: np.ndarray, labels: np.ndarray) -> list[tuple]:
        """(gold id, predicted id) per row."""
        return list(zip(labels.tolist(), logits.argmax(-1).tolist()))

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold, predicted = (np.array(column) for column in zip(*pairs))
        return classification_metrics(gold, predicted, names)

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            scores = self.metrics(self.decode(eval_prediction.predictions, eval_prediction.label_ids), names)
            return {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}

        return compute

    def evaluation(self, raw_test: Dataset, logits: np.ndarray, labels: np.ndarray, names: list[str]) -> Evaluation:
        scores = self.metrics(self.decode(logits, labels), names)
        curve_summary, curves = score_curves(labels, logits, names)
        probabilities = softmax(logits.astype(np.float64), axis=-1)
        items = raw_test[self.item_column] if self.item_column in raw_test.column_names else range(len(labels))
        predictions = pd.DataFrame({self.item_column: items, "actual": [names[i] for i in labels],
                                    "predicted": [names[i] for i in probabilities.argmax(-1)],
                                    "score": probabilities.max(-1).round(5)})
        per_class = pd.DataFrame([{"label": name, **values} for name, values in scores["per_class"].items()])
        return Evaluation(metrics={**{k: v for k, v in scores.items() if k != "per_class"}, **curve_summary},
                          per_class=scores["per_class"], predictions=predictions,
                          files={**curves, "per_class.csv": per_class})


class TextClassification(TextInputs, SingleLabel):
    name = "text-classification"
    auto_model = AutoModelForSequenceClassification
    columns = ("text", "label")
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
        return {"model": "tfidf-logreg", "accuracy": float(accuracy_score(truth, predictions)),
                "f1_macro": float(f1)}
