"""Multi-label classification: any number of labels per text (or pair of texts), none included: the emotions of a
comment, the topics of an article, the tags of a question.

Each label is its own yes-or-no output: a sigmoid score trained with binary cross-entropy (transformers'
`problem_type: multi_label_classification`). A text gets every label whose score reaches that label's threshold,
fitted on validation by evaluate (hfx/training/thresholds.py) and stored in the exported folder for predict and
serve. The labels of a row are a list (JSONL, parquet, a Hub dataset) or a string split on `data.label_separator`.
"""

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, Features, List, Value
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    jaccard_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.multiclass import OneVsRestClassifier

from hfx.training.adapters.common import (
    DROPPED,
    Evaluation,
    clean_rows,
    column_batches,
    excluded,
    read_label,
    require_columns,
    sorted_labels,
)
from hfx.training.adapters.text_inputs import TextFeatures, TextInputsAdapter, add_row, missing_text
from hfx.training.params import Data, ParamsError, Preprocess
from hfx.training.thresholds import PerLabelThresholds, fit_thresholds

NO_LABEL = "(no label)"  # the data card's count of rows without any label


def label_values(value, separator: str) -> list | None:
    """A cell's labels as raw values: a list as it is, a string split on `separator`, nothing for an empty cell.
    None when a string holds an empty label (',', 'a,,b'): a wrong separator or a broken row."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    if not value.strip():
        return []
    pieces = [piece.strip() for piece in value.split(separator)]
    return None if not all(pieces) else pieces


def multi_hot(label_lists, names: list[str]) -> np.ndarray:
    """(rows, labels) of 0/1: which of `names` each row has."""
    ids = {name: i for i, name in enumerate(names)}
    hot = np.zeros((len(label_lists), len(names)), dtype=np.int64)
    for row, labels in enumerate(label_lists):
        hot[row, [ids[label] for label in labels]] = 1
    return hot


def multi_label_metrics(gold: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """Micro and macro F1 (and their precision and recall), subset accuracy (every label right), Jaccard
    (the overlap of a row's labels with the answer's, averaged over rows), and each label's table."""
    scores = {}
    for average in ("micro", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(gold, predicted, average=average, zero_division=0)
        scores |= {
            f"f1_{average}": float(f1),
            f"precision_{average}": float(precision),
            f"recall_{average}": float(recall),
        }
    per_label = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    return {
        **scores,
        "subset_accuracy": float(accuracy_score(gold, predicted)),
        # a row with no label, answered with none, overlaps fully (sklearn's zero_division=1)
        "jaccard_samples": float(jaccard_score(gold, predicted, average="samples", zero_division=1)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, *per_label)
        },
    }


def score_curves(gold: np.ndarray, probabilities: np.ndarray) -> tuple[dict, dict]:
    """ROC AUC averaged over the labels test has both answers for; ROC and precision-recall curves pooled over
    every (row, label) decision."""
    both = (gold.min(0) == 0) & (gold.max(0) == 1)
    summary = {
        "roc_auc_macro": float(roc_auc_score(gold[:, both], probabilities[:, both], average="macro"))
        if both.any()
        else 0.0,
        "average_precision_micro": float(average_precision_score(gold.ravel(), probabilities.ravel())),
    }
    fpr, tpr, _ = roc_curve(gold.ravel(), probabilities.ravel())
    precision, recall, _ = precision_recall_curve(gold.ravel(), probabilities.ravel())
    step = max(1, len(fpr) // 2000)  # a plot needs a few thousand points, not one per decision
    return summary, {
        "roc.json": [{"fpr": round(float(f), 5), "tpr": round(float(t), 5)} for f, t in zip(fpr[::step], tpr[::step])],
        "precision_recall.json": [
            {"recall": round(float(r), 5), "precision": round(float(p), 5)}
            for r, p in zip(recall[::step], precision[::step])
        ],
    }


def joined(labels: list[str]) -> str:
    return ",".join(labels)


class MultiLabelClassificationAdapter(TextInputsAdapter):
    name = "multi-label-classification"
    auto_model = "AutoModelForSequenceClassification"
    columns = ("text", "label")
    item_column = "text"  # the column a predictions row shows
    truncated_unit = "rows"  # what stats.json counts as cut off by max_length
    logits_axes = {0: "batch"}
    stratify_column = None  # rows have sets of labels: carving and capping sample plainly
    # Every label's sigmoid score (transformers reads problem_type); truncated as predict and serve truncate.
    pipeline_kwargs = {"truncation": True, "top_k": None}
    headline = "f1_macro"
    # Checkpoints are kept (and training stopped early) by how well the scores rank, which needs no threshold:
    # evaluate fits the thresholds afterwards, and F1 at 0.5 stays flat while rare labels' scores sit under 0.5.
    best_metric = "average_precision_micro"
    validation_metrics = ("f1_micro", "f1_macro", "average_precision_micro")  # F1 at a threshold of 0.5
    card_metrics = ("f1_macro", "f1_micro", "subset_accuracy", "jaccard_samples")
    margin_keys = ("f1_micro", "f1_macro")
    calibration = PerLabelThresholds()
    test_figure = "per_label"

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {text, [text_pair], label: [names]}; drops (and counts) empty texts; a row may have no label.
        A label string with an empty label in it stops the run."""
        require_columns(split, data, split_name)
        if data.text_pair_column:
            require_columns(split, data, split_name, "text_pair_column")
        feature = split.features[data.label_column]
        inner = getattr(feature, "feature", feature)
        names = inner.names if isinstance(inner, ClassLabel) else None
        columns = {"text": Value("string"), **({"text_pair": Value("string")} if data.text_pair_column else {})}
        features = Features(
            {**columns, "label": List(Value("string")), DROPPED: Value("string"), "error": Value("string")}
        )
        kept, dropped, error = clean_rows(split, self._clean, features, data=data, names=names, split_name=split_name)
        if error:
            raise ParamsError(error)
        return kept, dropped

    def _clean(self, batch: dict, indices: list[int], data: Data, names: list[str] | None, split_name: str) -> dict:
        rows = {"text": [], "label": [], DROPPED: [], "error": []}
        pairs = batch[data.text_pair_column] if data.text_pair_column else [None] * len(indices)
        for index, text, pair, value in zip(indices, batch[data.text_column], pairs, batch[data.label_column]):
            values, error = label_values(value, data.label_separator), None
            if values is None:
                error = (
                    f"data.label_column: row {index} of the {split_name} split has {value!r}, which splits on"
                    f" data.label_separator {data.label_separator!r} into an empty label; leave the cell empty for"
                    " a row with no label, or set data.label_separator to what separates its labels"
                )
            labels = sorted({read_label(v, names, data) for v in values or []} - {None})
            labels = [label for label in labels if not excluded(label, data)]
            reason = missing_text(text, pair, data) or ("bad_labels" if error else None)
            add_row(rows, reason, text, pair, labels, data)
            rows["error"].append(error)
        return rows

    @staticmethod
    def _label_counts(split: Dataset) -> Counter:
        counts = Counter()
        for values in column_batches(split, "label"):
            flat = pc.list_flatten(values)
            counts.update({item["values"]: item["counts"] for item in pc.value_counts(flat).to_pylist()})
            empty = pc.sum(pc.equal(pc.list_value_length(values), 0)).as_py() or 0
            counts[NO_LABEL] += empty
        return counts

    def label_counts(self, split: Dataset) -> dict:
        """Rows per label (a row counts once for each of its labels), and rows with none."""
        counts = self._label_counts(split)
        none = counts.pop(NO_LABEL, 0)
        return {**{name: counts[name] for name in sorted_labels(counts)}, **({NO_LABEL: none} if none else {})}

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        names = set(self._label_counts(splits["train"])) - {NO_LABEL}
        if len(names) < 2:
            raise ParamsError(f"data: train has {len(names)} labels {sorted(names)}; multi-label needs at least two")
        for split in ("validation", "test"):
            unseen = sorted(set(self._label_counts(splits[split])) - names - {NO_LABEL})
            if unseen:
                raise ParamsError(
                    f"data: labels {unseen} in {split} never appear in train, so the model could never give them"
                    f" (train labels: {sorted_labels(names)})"
                )

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        present = set(self._label_counts(train)) - {NO_LABEL}
        if data.label_names:
            return [name for name in data.label_names.values() if name in present]
        return sorted_labels(present)

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        encoded, sources = self.encode_rows(batch, processor, settings)
        labels = multi_hot(batch["label"], list(label2id)).astype(np.float32)
        encoded["labels"] = labels[sources]  # BCE compares floats
        return encoded

    def decode(self, logits: np.ndarray, labels: np.ndarray) -> list[tuple]:
        """(gold, predicted) 0/1 rows at a threshold of 0.5, from the Trainer's logits (validation while training)."""
        return list(zip(labels.astype(np.int64), (expit(logits) >= 0.5).astype(np.int64)))

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            logits, gold = eval_prediction.predictions, eval_prediction.label_ids
            scores = self.metrics(self.decode(logits, gold), names)
            scores["average_precision_micro"] = float(
                average_precision_score(gold.astype(np.int64).ravel(), expit(logits).ravel())
            )
            return {key: scores[key] for key in self.validation_metrics}

        return compute

    def gold_ids(self, raw_split: Dataset, names: list[str]) -> list[np.ndarray]:
        """Each row's labels as one 0/1 row (the shape of a handler's decision logits)."""
        return list(multi_hot(raw_split["label"], names)[:, None, :])

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold 0/1 row, served 0/1 row) per test row, from the serving half's answers ({labels, scores})."""
        gold = multi_hot(raw_test["label"], names)
        served = multi_hot([result["labels"] for result in results], names)
        return list(zip(gold, served))

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold, predicted = (np.array(column) for column in zip(*pairs))
        return multi_label_metrics(gold, predicted, names)

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        gold = multi_hot(raw_test["label"], names)
        scores = self.metrics(self.served_pairs(results, raw_test, names), names)
        curve_summary, curves = score_curves(gold, expit(np.concatenate(decided).astype(np.float64)))
        pair = {"text_pair": raw_test["text_pair"]} if "text_pair" in raw_test.column_names else {}
        predictions = pd.DataFrame(
            {
                "text": raw_test["text"],
                **pair,
                "actual": [joined(labels) for labels in raw_test["label"]],
                "predicted": [joined(sorted(result["labels"])) for result in results],
                # how sure the answer is: its least certain decision (a label's score, or 1 - a left-out one's)
                "score": [round(min(max(s["score"], 1 - s["score"]) for s in r["scores"]), 5) for r in results],
            }
        )
        return Evaluation.per_label(scores, curve_summary, predictions, curves)

    @staticmethod
    def worst_errors(predictions: pd.DataFrame, count: int) -> pd.DataFrame:
        """The wrong answers given with the most confidence: rows whose labels differ from the gold ones."""
        wrong = predictions[predictions["actual"].fillna("") != predictions["predicted"].fillna("")]
        return wrong.sort_values("score", ascending=False, kind="stable").head(count)

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """One-vs-rest logistic regression on TF-IDF features, its thresholds fitted on validation as the model's
        are (0.5 without one): the bar a transformer must clear."""
        names = sorted_labels(set(self._label_counts(train)) - {NO_LABEL})
        features = TextFeatures(train)
        classifier = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=4.0))
        classifier.fit(features.transform(train), multi_hot(train["label"], names))
        thresholds = np.full(len(names), 0.5)
        if validation is not None and len(validation):
            fitted = fit_thresholds(
                classifier.predict_proba(features.transform(validation)), multi_hot(validation["label"], names)
            )
            thresholds = np.array([t for t, _ in fitted])
        predicted = (classifier.predict_proba(features.transform(test)) >= thresholds).astype(np.int64)
        scores = multi_label_metrics(multi_hot(test["label"], names), predicted, names)
        return {
            "model": "tfidf-logreg-one-vs-rest",
            **{key: scores[key] for key in ("f1_micro", "f1_macro", "subset_accuracy")},
        }
