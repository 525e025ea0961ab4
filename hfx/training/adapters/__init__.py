"""Task adapters: everything the stages need to know about one task, behind one interface (docs/design.md).

A new task is a new adapter here and a new handler in hfx/serving/handlers.py; the stages stay as they are.
A stage imports only its own task's adapter: the others pull in what that task alone needs (image processors,
question answering, seqeval), seconds of start-up in every stage of every run.
"""

import importlib
from functools import cache

from hfx.training.adapters.common import Evaluation, sorted_labels

# task name -> the adapter class, as "module:Class" under this package
TASKS = {
    "text-classification": "text_classification:TextClassificationAdapter",
    "multi-label-classification": "multi_label:MultiLabelClassificationAdapter",
    "text-regression": "text_regression:TextRegressionAdapter",
    "token-classification": "token_classification:TokenClassificationAdapter",
    "image-classification": "image_classification:ImageClassificationAdapter",
    "question-answering": "question_answering:QuestionAnsweringAdapter",
}


def adapter_module(name: str) -> str:
    return f"{__name__}.{TASKS[name].split(':')[0]}"


@cache
def get_task(name: str):
    """The adapter of task `name` (one instance per process; adapters hold no state)."""
    class_name = TASKS[name].split(":")[1]
    return getattr(importlib.import_module(adapter_module(name)), class_name)()


__all__ = ["TASKS", "Evaluation", "adapter_module", "get_task", "sorted_labels"]
