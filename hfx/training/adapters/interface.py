"""What the stages ask of a task, in one place: the adapter interface every task's adapter implements.

A stage holds a `TaskAdapter` (from `get_adapter(params.task)`) and never branches on the task's name. The
members are grouped by the stage that uses them; `TaskDefaults` (common.py), `TextInputsAdapter` and
`SingleLabelAdapter` give the defaults most tasks share.
"""

from collections import Counter
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from datasets import Dataset

from hfx.training.adapters.common import Evaluation
from hfx.training.params import Data, Evaluate, Model, Params, Preprocess


@runtime_checkable
class TaskAdapter(Protocol):
    # What the task is
    name: ClassVar[str]  # the `task:` value (hfx/tasks.py)
    auto_model: ClassVar[str]  # the transformers AutoModelFor... class of the task's head, by name
    problem_type: str | None  # config.json's problem_type for the head (hfx/tasks.py)
    pipeline_tag: str  # the task as transformers' pipeline() and the Hub name it (hfx/tasks.py)

    # download: the source split as the task's rows
    columns: ClassVar[tuple[str, ...]]  # the standard columns of a split, such as ("text", "label")
    stratify_column: ClassVar[str | None]  # what carving and capping stratify on; None samples plainly
    group_column: ClassVar[str | None]  # rows carved splits keep together (an article's questions)

    def columns_read(self, data: Data) -> dict[str, str]:
        """Each standard column and the source column it is read from (the manifest and the model card)."""

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """The source split as the task's columns, and a Counter of the rows dropped or repaired, and why."""

    def label_counts(self, split: Dataset) -> dict:
        """What the manifest and the data card list per split: rows per label (or entities per type)."""

    def input_summary(self, split: Dataset) -> dict:
        """What the data card says of a split's inputs beside its labels (images: their sizes)."""

    def check_labels(self, splits: dict[str, Dataset]) -> None:
        """A ParamsError unless train has two labels and validation and test none that train lacks."""

    # preprocess: rows as model inputs
    truncated_unit: ClassVar[str]  # what stats.json counts as cut off by max_length (rows, words, questions)

    def check_settings(self, model: Model, settings: Preprocess) -> None:
        """A ParamsError for preprocess settings the model cannot take, before any work."""

    def load_processor(self, model: Model) -> Any:
        """What turns raw inputs into model inputs: the tokenizer or the image processor of `model`."""

    def label_names(self, train: Dataset, data: Data) -> list[str]:
        """The label order, the model's output order: as data.label_names lists them, else a stable order."""

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        """A batch of rows as model inputs with `labels`, `length`, `truncated` (and `units`)."""

    # finetune
    fixed_outputs: ClassVar[int | None]  # a head whose outputs are positions, not labels (kept by epochs: 0)
    group_by_length: ClassVar[bool]  # whether rows carry a `length` that batches are grouped by
    best_metric: ClassVar[str]  # what finetune.metric_for_best_model: auto keeps the checkpoint by
    validation_metrics: ClassVar[tuple[str, ...]]  # what each validation reports

    def has_head(self, config) -> bool:
        """Whether a pretrained checkpoint already carries this task's head."""

    def train_transform(self, settings: Preprocess, seed: int = 0):
        """What changes training rows as they are read (images: augmentation), or None."""

    def collator(self, processor):
        """What pads a batch of rows to its own longest."""

    def trainer_metrics(self, names: list[str]):
        """The compute_metrics function the Trainer calls at each validation."""

    def prepare_saved(self, model, processor, params: Params) -> None:
        """Settle the config and processor saved with the model, which evaluate, export and serving read."""

    def saved_processor(self, folder):
        """The processor saved beside a model in `folder`."""

    # evaluate: the test split as served
    calibration: ClassVar[Any]  # how scores become answers, fitted on validation (a temperature, thresholds)
    margin_keys: ClassVar[tuple[str, ...]]  # the scores compared with the baseline

    def served_inputs(self, raw_test: Dataset) -> list:
        """The split's raw inputs as a user hands them to predict."""

    def served_settings(self, settings: Evaluate, train: Dataset, folder: str) -> dict:
        """What predict and serve take from evaluate's params or the train split (calibration.json)."""

    def gold_ids(self, raw_split: Dataset, names: list[str]) -> list[np.ndarray]:
        """Each row's gold label ids, in the shape of the handler's decision logits (what `calibration` fits)."""

    def served_pairs(self, results: list, raw_test: Dataset, names: list[str]) -> list[tuple]:
        """(gold, answer) per test row, from predict's answers."""

    def metrics(self, pairs: list[tuple], names: list[str]) -> dict:
        """The task's scores from (gold, answer) pairs."""

    def evaluation(self, raw_test: Dataset, results: list, decided: list[np.ndarray], names: list[str]) -> Evaluation:
        """The served answers' scores, per class, the predictions table a person reads and plot files."""

    def worst_errors(self, predictions: pd.DataFrame, count: int) -> pd.DataFrame:
        """The worst mistakes of the predictions table (errors.csv)."""

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """A classical model's scores on the same splits, the bar the transformer must clear."""

    # export: formats, scores per format, the model card
    headline: ClassVar[str]  # the score export prints per format
    card_metrics: ClassVar[tuple[str, ...]]  # the model card's test scores (each per format in export.json)
    test_figure: ClassVar[str | None]  # the card's figure of the test split
    pipeline_kwargs: ClassVar[dict | None]  # how the card calls pipeline(); None: transformers has none
    logits_axes: ClassVar[dict]  # the ONNX outputs' dynamic axes
    outputs: ClassVar[tuple[str, ...]]  # the model outputs written to ONNX, by name
    quantize_op_types: ClassVar[list[str] | None]  # the ops int8 quantizes; None: all it can
    static_int8: ClassVar[bool]  # whether activations are quantized too, with ranges from validation rows

    def input_names(self, processor) -> list[str]:
        """The model's input names, in the order the ONNX graph takes them."""

    def sample_inputs(self, processor) -> tuple[dict, dict]:
        """Inputs to trace the ONNX graph with, and their dynamic axes."""

    def card_figures(self, out, test: Dataset, predictions_csv: str) -> list[tuple[str, str]]:
        """The task's own model-card figures (file, caption), written under `out`."""

    def card_examples(self, predictions_csv: str) -> list[dict]:
        """Answered test rows the model card shows."""
