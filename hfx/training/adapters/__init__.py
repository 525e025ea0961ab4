"""Task adapters: everything the stages need to know about one task, behind one interface (docs/design.md).

A new task is a new adapter here and a new handler in hfx/serving/handlers.py; the stages stay as they are.
"""

from hfx.training.adapters.common import Evaluation, sorted_labels
from hfx.training.adapters.image_classification import ImageClassificationAdapter
from hfx.training.adapters.multi_label import MultiLabelClassificationAdapter
from hfx.training.adapters.question_answering import QuestionAnsweringAdapter
from hfx.training.adapters.text_classification import TextClassificationAdapter
from hfx.training.adapters.text_regression import TextRegressionAdapter
from hfx.training.adapters.token_classification import TokenClassificationAdapter

TASKS = {
    adapter.name: adapter
    for adapter in (
        TextClassificationAdapter(),
        MultiLabelClassificationAdapter(),
        TextRegressionAdapter(),
        TokenClassificationAdapter(),
        ImageClassificationAdapter(),
        QuestionAnsweringAdapter(),
    )
}


def get_task(name: str):
    return TASKS[name]


__all__ = [
    "TASKS",
    "Evaluation",
    "ImageClassificationAdapter",
    "MultiLabelClassificationAdapter",
    "QuestionAnsweringAdapter",
    "TextClassificationAdapter",
    "TextRegressionAdapter",
    "TokenClassificationAdapter",
    "get_task",
    "sorted_labels",
]
