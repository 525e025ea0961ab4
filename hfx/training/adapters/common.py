"""What the task adapters share: label names and order, reading a split batch by batch, and the shape of an
evaluation."""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset
from scipy.special import softmax
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.preprocessing import label_binarize

from hfx.tasks import TASKS
from hfx.training.params import Data, Evaluate, ParamsError

FIXED = "fixed:"  # in standardize's counts: tags repaired, not rows dropped
DROPPED = "dropped"  # a column `clean_rows` functions return: why a row is left out, or None to keep it
BATCH_ROWS = 1000  # rows in memory at a time while a split is read, cleaned or written


@dataclass
class Evaluation:
    """What evaluate writes for a task: eval.json's scores, the per-class table, a predictions table a person
    can read (with `actual` and `predicted` columns, for the confusion matrix), and files for metrics/plots."""

    metrics: dict
    per_class: dict
    predictions: pd.DataFrame
    files: dict = field(default_factory=dict)  # name -> DataFrame (csv) or list of rows (json)

    @classmethod
    def per_label(cls, scores: dict, curve_summary: dict, predictions: pd.DataFrame, curves: dict) -> "Evaluation":
        """A classifier's evaluation: its scores with the curves' summary, and per_class.csv beside the curves."""
        per_class = pd.DataFrame([{"label": name, **values} for name, values in scores["per_class"].items()])
        return cls(
            metrics={**{k: v for k, v in scores.items() if k != "per_class"}, **curve_summary},
            per_class=scores["per_class"],
            predictions=predictions,
            files={**curves, "per_class.csv": per_class},
        )


class TaskDefaults:
    """What most tasks share and a few change: the adapter interface's defaults (docs/design.md)."""

    name: str  # the task's name, as hfx/tasks.py lists it

    @property
    def pipeline_tag(self) -> str:
        """The task as transformers' pipeline() and the Hub name it (hfx/tasks.py)."""
        return TASKS[self.name].pipeline_tag

    @property
    def problem_type(self) -> str | None:
        """config.json's problem_type for the head (hfx/tasks.py): None is transformers' default."""
        return TASKS[self.name].problem_type

    def has_head(self, config) -> bool:
        """Whether a pretrained checkpoint already carries this task's head (a fine-tuned model of the task)."""
        return any(name.endswith(TASKS[self.name].head) for name in config.architectures or ())

    group_column = None  # a column whose rows carved splits keep together (an article's questions)
    fixed_outputs = None  # a head whose outputs are positions, not labels: finetune.epochs: 0 keeps them as they are
    outputs = ("logits",)  # the model outputs export writes to ONNX and the serving half reads
    pipeline_kwargs = {}  # how the model card calls transformers' pipeline(); None: it has no pipeline for the task

    def served_settings(self, settings: Evaluate, train: Dataset, folder: str) -> dict:
        """What evaluate hands predict and serve besides what it fits (calibration.json), from its params, the
        train split and the fine-tuned folder: nothing here."""
        return {}

    def gold_ids(self, raw_split: Dataset, names: list[str]) -> list[np.ndarray]:
        """Each row's gold label ids: asked only of a task with a `calibration` to fit."""
        raise NotImplementedError(f"{self.name} has no calibration, so evaluate never asks for gold label ids")

    def card_examples(self, predictions_csv: str) -> list[dict]:
        """Answered test rows the model card shows: none here (its figures show the test split)."""
        return []

    def columns_read(self, data: Data) -> dict[str, str]:
        """Each standard column and the source column it is read from (the manifest and the model card)."""
        return dict(zip(self.columns, (self.input_column(data), data.label_column)))


def sorted_labels(names) -> list[str]:
    """A stable label order: numeric labels by value, others alphabetically."""
    names = set(names)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def label_text(value, names: list[str] | None) -> str | None:
    """A label as text: a ClassLabel id through its names (-1, unlabeled, is None), numbers without '.0'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if names is not None:  # a ClassLabel: -1 marks an unlabeled row (e.g. GLUE test splits)
        return names[value] if 0 <= value < len(names) else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def read_label(value, names: list[str] | None, data: Data) -> str | None:
    """A source label as the text the pipeline uses: through a ClassLabel's names, then `data.label_names`."""
    label = label_text(value, names)
    if label is None or data.label_names is None:
        return label
    if label not in data.label_names:
        raise ParamsError(
            f"data.label_names: no name for label '{label}'; it names {', '.join(sorted_labels(data.label_names))}"
        )
    return data.label_names[label]


def excluded(label: str, data: Data) -> bool:
    """`data.exclude_labels` may give a label by its name or by its value in the source."""
    source = {name: value for value, name in (data.label_names or {}).items()}
    return label in data.exclude_labels or source.get(label) in data.exclude_labels


def score_curves(labels: np.ndarray, logits: np.ndarray, names: list[str]) -> tuple[dict, dict]:
    """ROC and precision-recall on the test split: of the second class for two classes, else micro-averaged
    one-vs-rest. Returns (summary metrics, {plot file name: rows})."""
    probabilities = softmax(logits.astype(np.float64), axis=-1)
    if len(names) == 2:
        truth, scores = (labels == 1).astype(int), probabilities[:, 1]
    else:
        truth = label_binarize(labels, classes=list(range(len(names)))).ravel()
        scores = probabilities.ravel()
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)
    summary = {
        "roc_auc": float(roc_auc_score(truth, scores)),
        "average_precision": float(average_precision_score(truth, scores)),
    }
    return summary, {
        "roc.json": [{"fpr": round(float(f), 5), "tpr": round(float(t), 5)} for f, t in zip(fpr, tpr)],
        "precision_recall.json": [
            {"recall": round(float(r), 5), "precision": round(float(p), 5)} for r, p in zip(recall, precision)
        ],
    }


def scored(decided: list[np.ndarray], gold: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(n, classes) logits and their gold ids, from each input's decision logits (one row per label its answer
    gives: one for classification, one per word for entities) and its gold ids; rows the model did not see
    (NaN: words past the max input length) are left out."""
    pairs = [(d[: len(g)], g[: len(d)]) for d, g in zip(decided, gold)]
    logits = np.concatenate([d for d, _ in pairs]).astype(np.float64)
    labels = np.concatenate([g for _, g in pairs]).astype(np.int64)
    seen = ~np.isnan(logits).any(-1)
    return logits[seen], labels[seen]


def confident_mistakes(predictions: pd.DataFrame, count: int) -> pd.DataFrame:
    """The wrong answers the model gave with the most confidence (its `score`)."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]]
    return wrong.sort_values("score", ascending=False, kind="stable").head(count)


def require_columns(split, data: Data, split_name: str, input_key: str = "text_column") -> None:
    """The columns `data.<input_key>` and `data.label_column` name, or one line listing the split's columns."""
    for key, column in ((f"data.{input_key}", getattr(data, input_key)), ("data.label_column", data.label_column)):
        if column not in split.column_names:
            raise ParamsError(
                f"{key}: column '{column}' not in the {split_name} split; columns: {', '.join(split.column_names)}"
            )


# A split is read as Arrow batches (memory-mapped on disk), never whole: memory stays bounded by the batch.


def column_batches(split: Dataset, column: str, rows: int = 10 * BATCH_ROWS):
    """A column, one Arrow array of at most `rows` values at a time (selections and filters applied)."""
    for batch in split.select_columns([column]).with_format("arrow").iter(batch_size=rows):
        yield batch.column(column)


def value_counts(split: Dataset, column: str) -> Counter:
    counts = Counter()
    for values in column_batches(split, column):
        counts.update({item["values"]: item["counts"] for item in pc.value_counts(values).to_pylist()})
    return counts


def column_sum(split: Dataset, column: str) -> int:
    return int(sum(pc.sum(values).as_py() or 0 for values in column_batches(split, column)))


def label_codes(split: Dataset, column: str) -> np.ndarray:
    """Each row's label as an index into the sorted labels: what stratified sampling needs, at 4 bytes a row."""
    labels = pa.array(sorted(value_counts(split, column)))
    codes = [
        pc.index_in(values, value_set=labels).to_numpy(zero_copy_only=False) for values in column_batches(split, column)
    ]
    return np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32)


def clean_rows(
    split: Dataset, function, features, notes: list | None = None, **kwargs
) -> tuple[Dataset, Counter, str | None]:
    """`function(batch, indices, **kwargs)` turns a batch of source rows into the task's columns plus `dropped`
    (why each row is left out, or None) and optionally `error` (what went wrong with a row): a batched map, so a
    split of any size is read a batch at a time.
    Returns the kept rows, how many were dropped by reason, and the first error (`notes`: gets every error)."""
    cleaned = split.map(
        function,
        batched=True,
        batch_size=BATCH_ROWS,
        with_indices=True,
        fn_kwargs=kwargs,
        remove_columns=split.column_names,
        features=features,
        desc="read",
    )
    dropped = value_counts(cleaned, DROPPED)
    dropped.pop(None, None)
    first_error = None
    if "error" in cleaned.column_names:
        errors = [pc.drop_null(values).to_pylist() for values in column_batches(cleaned, "error")]
        found = [error for batch in errors for error in batch]
        first_error = found[0] if found else None
        if notes is not None:
            notes.extend(found)
        cleaned = cleaned.remove_columns("error")
    kept = cleaned.filter(
        lambda reasons: [reason is None for reason in reasons],
        batched=True,
        batch_size=BATCH_ROWS,
        input_columns=DROPPED,
        desc="keep",
    )
    return kept.remove_columns(DROPPED), dropped, first_error
