"""Text regression: one number per text or pair of texts (similarity 0-5, a rating, a readability score).

The model's head has one output, trained with mean squared error (transformers' `problem_type: regression`);
scored by Pearson and Spearman correlation and RMSE against a ridge regression on TF-IDF features."""

import math
from collections import Counter

import numpy as np
import pandas as pd
from datasets import Dataset, Features, Value
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error

from hfx.training.adapters.common import DROPPED, Evaluation, clean_rows, column_batches, require_columns
from hfx.training.adapters.text_inputs import TextFeatures, TextInputsAdapter, add_row, missing_text
from hfx.training.params import Data, ParamsError, Preprocess

SCORE = "score"  # the head's one output, as id2label names it


def regression_metrics(gold, predicted) -> dict:
    gold, predicted = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    constant = np.ptp(gold) == 0 or np.ptp(predicted) == 0  # a correlation is undefined then: 0
    return {
        "pearson": 0.0 if constant else float(pearsonr(gold, predicted).statistic),
        "spearman": 0.0 if constant else float(spearmanr(gold, predicted).statistic),
        "rmse": float(root_mean_squared_error(gold, predicted)),
    }


def bin_width(low: float, high: float, bins: int = 10) -> float:
    """A round width (1, 2 or 5 times a power of ten) that cuts [low, high] into at most about `bins` bins."""
    span = (high - low) / bins or 1.0
    power = 10 ** math.floor(math.log10(span))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= span)


class TextRegressionAdapter(TextInputsAdapter):
    name = "text-regression"
    auto_model = "AutoModelForSequenceClassification"
    fixed_outputs = 1  # finetune.epochs: 0 keeps a ready-made model's one output, whatever its name
    columns = ("text", "label")
    item_column = "text"
    stratify_column = None  # splits are carved at random
    pipeline_kwargs = {"truncation": True, "function_to_apply": "none"}
    truncated_unit = "rows"
    headline = "spearman"
    best_metric = "spearman"
    validation_metrics = ("pearson", "spearman", "rmse")
    card_metrics = ("spearman", "pearson", "rmse")
    margin_keys = ("pearson", "spearman")
    calibration = None  # a number is not a probability: no temperature, no calibration error
    test_figure = "predictions"  # the model card plots predicted against actual values
    logits_axes = {0: "batch"}

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {text, [text_pair], label: float}; drops (and counts) empty texts and missing numbers; a label
        that is not a number stops the run."""
        require_columns(split, data, split_name)
        if data.text_pair_column:
            require_columns(split, data, split_name, "text_pair_column")
        columns = {"text": Value("string"), **({"text_pair": Value("string")} if data.text_pair_column else {})}
        features = Features({**columns, "label": Value("float64"), DROPPED: Value("string"), "error": Value("string")})
        kept, dropped, error = clean_rows(split, self._clean, features, data=data, split_name=split_name)
        if error:
            raise ParamsError(error)
        return kept, dropped

    def _clean(self, batch: dict, indices: list[int], data: Data, split_name: str) -> dict:
        rows = {"text": [], "label": [], DROPPED: [], "error": []}
        pairs = batch[data.text_pair_column] if data.text_pair_column else [None] * len(indices)
        for index, text, pair, value in zip(indices, batch[data.text_column], pairs, batch[data.label_column]):
            label, error = self._number(value), None
            reason = missing_text(text, pair, data) or (
                "missing_label" if label is None else "not_a_number" if isinstance(label, str) else None
            )
            if reason == "not_a_number":
                error = (
                    f"data.label_column: row {index} of the {split_name} split has {label!r}, not a number;"
                    " text-regression needs a number in every row (an empty cell is dropped)"
                )
            add_row(rows, reason, text, pair, label, data)
            rows["error"].append(error)
        return rows

    @staticmethod
    def _number(value) -> float | str | None:
        """A label as a float; None when missing; the value itself (as text) when it is not a number."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        text = str(value).strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text

    def label_counts(self, split: Dataset) -> dict:
        """The data card's label balance: rows per bin of round width ('1.5-2': rows from 1.5 up to 2)."""
        values = np.concatenate([b.to_numpy() for b in column_batches(split, "label")] or [np.zeros(0)])
        if not len(values):
            return {}
        width = bin_width(values.min(), values.max())
        starts = np.floor(values / width) * width
        counts = Counter(np.round(starts, 10).tolist())
        return {f"{start:g}-{start + width:g}": counts[start] for start in sorted(counts)}

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        values = np.concatenate([b.to_numpy() for b in column_batches(splits["train"], "label")])
        if np.ptp(values) == 0:
            raise ParamsError(f"data: every train label is {values[0]:g}; regression needs labels that vary")

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        return [SCORE]

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        encoded, sources = self.encode_rows(batch, processor, settings)
        encoded["labels"] = np.asarray(batch["label"], dtype=np.float32)[
            sources
        ]  # the dtype of the logits MSE compares
        return encoded

    def trainer_metrics(self, names: list[str]):
        def compute(eval_prediction) -> dict:
            return regression_metrics(eval_prediction.label_ids, np.asarray(eval_prediction.predictions).ravel())

        return compute

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold, served) number per test row."""
        return [(gold, result["score"]) for gold, result in zip(raw_test["label"], results)]

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        gold, predicted = zip(*pairs)
        return regression_metrics(gold, predicted)

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        pairs = self.served_pairs(results, raw_test, names)
        pair = {"text_pair": raw_test["text_pair"]} if "text_pair" in raw_test.column_names else {}
        predictions = pd.DataFrame(
            {
                "text": raw_test["text"],
                **pair,
                "actual": [gold for gold, _ in pairs],
                "predicted": [round(predicted, 5) for _, predicted in pairs],
            }
        )
        predictions["error"] = (predictions["predicted"] - predictions["actual"]).round(5)
        return Evaluation(
            metrics=self.metrics(pairs, names),
            per_class={},
            predictions=predictions,
            files={"scatter.csv": predictions[["actual", "predicted"]]},
        )

    def worst_errors(self, predictions: pd.DataFrame, count: int) -> pd.DataFrame:
        """The test rows the model misses by the most."""
        order = predictions["error"].abs().sort_values(ascending=False, kind="stable").index
        return predictions.loc[order].head(count)

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """Ridge regression on TF-IDF features of the text (or of both texts) on the same train split."""
        features = TextFeatures(train)
        model = Ridge(alpha=1.0).fit(features.transform(train), np.asarray(train["label"]))
        return {"model": "tfidf-ridge", **regression_metrics(test["label"], model.predict(features.transform(test)))}
