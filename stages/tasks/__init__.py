"""Task adapters: everything the stages need to know about one task, behind one interface (docs/design.md).

A new task is a new adapter; the stages stay as they are.
"""

from stages.tasks.common import Evaluation, sorted_labels
from stages.tasks.text_classification import TextClassification, score_curves

TASKS = {adapter.name: adapter for adapter in (TextClassification(),)}


def get_task(name: str):
    return TASKS[name]


__all__ = ["TASKS", "Evaluation", "TextClassification", "get_task", "score_curves", "sorted_labels"]
