"""What every one-label-per-input task shares (text and image classification): the label order and checks,
accuracy and macro F1, the evaluation tables."""

import numpy as np
import pandas as pd
from datasets import Dataset
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from hfx.training.adapters.common import (
    Evaluation,
    TaskDefaults,
    confident_mistakes,
    score_curves,
    sorted_labels,
    value_counts,
)
from hfx.training.calibration import TemperatureScaling
from hfx.training.params import Data, ParamsError


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict:
    ids = list(range(len(names)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, labels=ids, average="macro", zero_division=0
    )
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


class SingleLabelAdapter(TaskDefaults):
    """One label per row: label order and checks, accuracy and macro F1, the evaluation tables. Shared by text
    and image classification; `item_column` is the column a predictions row shows."""

    item_column = "text"
    stratify_column = "label"
    headline = "accuracy"  # the score export reports per format
    best_metric = "f1_macro"  # what finetune.metric_for_best_model: auto keeps
    validation_metrics = ("accuracy", "f1_macro")  # what trainer_metrics reports
    card_metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro")  # the model card's test scores
    margin_keys = ("accuracy", "f1_macro")  # compared with the baseline
    logits_axes = {0: "batch"}
    calibration = TemperatureScaling()  # softmax scores, made readable as probabilities by a temperature
    test_figure = "confusion_matrix"  # the model card's figure of the test split
    worst_errors = staticmethod(confident_mistakes)

    def label_counts(self, split: Dataset) -> dict:
        return dict(sorted(value_counts(split, "label").items()))

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        names = set(value_counts(splits["train"], "label"))
        if len(names) < 2:
            raise ParamsError(f"data: train has a single label {sorted(names)}; classification needs at least two")
        for split in ("validation", "test"):
            unseen = sorted(set(value_counts(splits[split], "label")) - names)
            if unseen:
                raise ParamsError(
                    f"data: labels {unseen} in {split} never appear in train (train labels: {sorted_labels(names)})"
                )

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        """The label order (ids): as `data.label_names` lists them, else numeric or alphabetical."""
        present = set(value_counts(train, "label"))
        if data.label_names:
            return [name for name in data.label_names.values() if name in present]
        return sorted_labels(present)

    def decode(self, logits: np.ndarray, labels: np.ndarray) -> list[tuple]:
        """(gold id, predicted id) per row, from the Trainer's logits (validation while training)."""
        return list(zip(labels.tolist(), logits.argmax(-1).tolist()))

    def gold_ids(self, raw_split: Dataset, names: list[str]) -> list[np.ndarray]:
        """Each row's gold label id, as one row (the shape of a handler's decision logits)."""
        ids = {name: i for i, name in enumerate(names)}
        return [np.array([ids[gold]]) for gold in raw_split["label"]]

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold id, served id) per test row, from the serving half's answers ([{label, score}], best first)."""
        ids = {name: i for i, name in enumerate(names)}
        return [(ids[gold], ids[result[0]["label"]]) for gold, result in zip(raw_test["label"], results)]

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold, predicted = (np.array(column) for column in zip(*pairs))
        return classification_metrics(gold, predicted, names)

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            scores = self.metrics(self.decode(eval_prediction.predictions, eval_prediction.label_ids), names)
            return {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}

        return compute

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        """Scores of the served answers (`results`); curves of the logits they were decided from (`decided`)."""
        pairs = self.served_pairs(results, raw_test, names)
        scores = self.metrics(pairs, names)
        curve_summary, curves = score_curves(np.array([gold for gold, _ in pairs]), np.concatenate(decided), names)
        items = raw_test[self.item_column] if self.item_column in raw_test.column_names else range(len(pairs))
        pair = {"text_pair": raw_test["text_pair"]} if "text_pair" in raw_test.column_names else {}
        predictions = pd.DataFrame(
            {
                self.item_column: items,
                **pair,
                "actual": [names[gold] for gold, _ in pairs],
                "predicted": [result[0]["label"] for result in results],
                "score": [round(result[0]["score"], 5) for result in results],
            }
        )
        return Evaluation.per_label(scores, curve_summary, predictions, curves)
