"""What predict, serve, evaluate and export ask of a task's serving half: the handler interface every task's
handler implements. numpy only, like the rest of the serving half.

An input's way through it: `parse` (a request's `inputs`) or `read` (one item of a file or the command line)
gives items; `encode` tokenizes or decodes them; `windows` gives the rows the model runs for each (one, or a
long text's windows), `pad` batches rows; the model's logits per row come back to `merge` (an item's logits
from its windows'), `decode` (its result) and `record` or `columns` (JSON fields or table columns).
"""

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Handler(Protocol):
    # What the folder's model is
    auto_model: ClassVar[str]  # the transformers AutoModelFor... class the `pytorch` format loads
    outputs: ClassVar[tuple[str, ...]]  # the model outputs an answer is decided from, by name
    processor_file: ClassVar[str]  # the folder's file that turns inputs into model inputs (tokenizer.json)

    # What a request or a file gives it
    options: frozenset  # the request options the task takes (top_k, raw_scores...)
    capped_options: frozenset  # those whose value sets a request's work: the server caps them
    input_field: ClassVar[str]  # the input's name in a JSON result (text, image, question)
    table_columns: tuple[str, ...]  # predict's options naming the columns of a table that make one item

    def parse(self, inputs) -> tuple[list, bool]:
        """A request's `inputs` as items, and whether a single one was sent; an InputError names a bad one."""

    def read(self, item) -> Any:
        """One item of a file or the command line, or an InputError saying why it cannot be answered."""

    def fields(self, item) -> dict:
        """The item as a JSON result shows it ({"text": ...})."""

    def cut_at(self, max_length: int) -> None:
        """Cut inputs at `max_length` tokens from now on (predict --max-length)."""

    # Model rows
    def encode(self, items: list) -> list:
        """Each item encoded for the model, up to its max input length."""

    def windows(self, encoded) -> list:
        """The rows the model runs for one encoded item: itself, or its windows."""

    def length(self, row) -> int:
        """A row's length, what rows are grouped by for batching."""

    def cost(self, row) -> int:
        """What a row costs a model call, in tokens (the server's --max-batch-tokens counts these)."""

    def truncated(self, encoded) -> bool:
        """Whether part of the item was cut off."""

    def pad(self, rows: list) -> dict[str, np.ndarray]:
        """Rows as the model's named inputs, padded to the longest."""

    def warmup_rows(self) -> list:
        """Rows of a few sizes, which a server runs before it reports ready."""

    # Answers
    def merge(self, window_logits: list[np.ndarray], encoded, item):
        """An item's logits from its windows' logits."""

    def decision_logits(self, logits, encoded, item) -> np.ndarray:
        """The logits the answer is decided from, one row per label it gives (what evaluate calibrates)."""

    def decode(self, logits, encoded, item, **options):
        """The item's result (labels with scores, entity spans, an answer) from its merged logits."""

    def record(self, result, all_scores: bool) -> dict:
        """A result as JSON fields."""

    def column_names(self, all_scores: bool) -> list[str]:
        """The columns `columns` fills, in a fixed order."""

    def columns(self, result, all_scores: bool) -> dict:
        """A result as table columns."""
