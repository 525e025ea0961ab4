"""Task adapters: everything the stages need to know about one task, behind one interface (docs/design.md).

A new task is a new adapter; the stages stay as they are.
"""

from stages.tasks.common import Evaluation, sorted_labels
from stages.tasks.text_classification import TextClassification, score_curves
from stages.tasks.image_classification import ImageClassification
from stages.tasks.token_classification import TokenClassification

TASKS = {adapter.name: adapter for adapter in (TextClassification(), TokenClassification(), ImageClassification())}


def get_task(name: str):
    return TASKS[name]


__all__ = ["TASKS", "Evaluation", "ImageClassification", "TextClassification", "TokenClassification", "get_task", "score_curves",
           "sorted_labels"]
