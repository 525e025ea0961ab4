"""The tasks hfx fine-tunes and serves: the one list of task names, and what each task is.

Both halves read it and it imports neither: params.yaml is checked against it (hfx/training/params.py), an
exported folder's task is recognised by it (hfx/serving/folder.py), and a stage or a server imports only its
own task's adapter or handler, by the module this registry names. A new task is an entry here, an adapter
(training) and a handler (serving); no other code names it.
"""

import importlib
from dataclasses import dataclass, field

# preprocess.max_length and preprocess.stride under `auto`: texts to classify or tag are cut at 128 tokens
# (windows sharing 32 with preprocess.long_texts: chunk).
DEFAULT_WINDOWS = {"max_length": 128, "stride": 32}


@dataclass(frozen=True)
class Task:
    name: str  # params.yaml's `task`, the model card's pipeline_tag
    adapter: str  # the training adapter, "module:Class"
    handler: str  # the serving handler, "module:Class"
    head: str  # the transformers head a model of the task has, by its class name's ending
    problem_type: str | None = None  # config.json's problem_type, which tells apart tasks sharing a head
    takes_pairs: bool = False  # data.text_pair_column: a second text per row
    labels_rows: bool = True  # a label per row (data.label_names names them), not a tag per word
    has_classes: bool = True  # finetune.class_weights weighs them
    windowed: bool = False  # its input is always read in windows of preprocess.max_length
    windows: dict = field(default_factory=lambda: dict(DEFAULT_WINDOWS))  # preprocess's `auto`
    hub_name: str | None = None  # the model card's pipeline_tag where the Hub and transformers call it otherwise

    @property
    def pipeline_tag(self) -> str:
        """The task as transformers' pipeline() and the Hub name it."""
        return self.hub_name or self.name

    def adapter_class(self) -> type:
        """The training adapter's class (imports torch and transformers)."""
        return load(self.adapter)

    def adapter_module(self):
        """The training adapter's module: what the task's tests read of it."""
        return importlib.import_module(self.adapter.partition(":")[0])

    def handler_class(self) -> type:
        """The serving handler's class (numpy, tokenizers, Pillow; never torch)."""
        return load(self.handler)

    def handler_module(self):
        """The serving handler's module: what the task's training half takes from it (question answering's
        windows)."""
        return importlib.import_module(self.handler.partition(":")[0])


def load(spec: str):
    """The object "module:name" names, its module imported on demand."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


TASKS = {
    task.name: task
    for task in (
        Task(
            "text-classification",
            adapter="hfx.training.adapters.text-classification:TextClassificationAdapter",
            handler="hfx.serving.handlers.text-classification:TextClassificationHandler",
            head="ForSequenceClassification",
            takes_pairs=True,
        ),
        Task(
            "multi-label-classification",
            adapter="hfx.training.adapters.multi-label-classification:MultiLabelClassificationAdapter",
            handler="hfx.serving.handlers.multi-label-classification:MultiLabelHandler",
            head="ForSequenceClassification",
            problem_type="multi_label_classification",
            takes_pairs=True,
            hub_name="text-classification",  # the problem_type says the rest
        ),
        Task(
            "text-regression",
            adapter="hfx.training.adapters.text-regression:TextRegressionAdapter",
            handler="hfx.serving.handlers.text-regression:TextRegressionHandler",
            head="ForSequenceClassification",
            problem_type="regression",
            takes_pairs=True,
            has_classes=False,
            hub_name="text-classification",  # one output, no softmax
        ),
        Task(
            "token-classification",
            adapter="hfx.training.adapters.token-classification:TokenClassificationAdapter",
            handler="hfx.serving.handlers.token-classification:TokenClassificationHandler",
            head="ForTokenClassification",
            labels_rows=False,
        ),
        Task(
            "image-classification",
            adapter="hfx.training.adapters.image-classification:ImageClassificationAdapter",
            handler="hfx.serving.handlers.image-classification:ImageClassificationHandler",
            head="ForImageClassification",
        ),
        Task(
            "question-answering",
            adapter="hfx.training.adapters.question-answering:QuestionAnsweringAdapter",
            handler="hfx.serving.handlers.question-answering:QuestionAnsweringHandler",
            head="ForQuestionAnswering",
            has_classes=False,
            windowed=True,
            # a context is read in windows of 384 tokens sharing 128, as transformers' run_qa.py reads SQuAD
            windows={"max_length": 384, "stride": 128},
        ),
    )
}


def task_of_model(pipeline_tag: str | None, architectures: list[str], problem_type: str | None) -> Task | None:
    """The task of a model, from its card's pipeline_tag and its config.json (`architectures`, `problem_type`),
    or None. transformers and the Hub call several tasks text-classification; the problem_type tells them apart
    (multi_label_classification, regression)."""
    named = TASKS.get(pipeline_tag)
    heads = (
        {named.head} if named else {t.head for t in TASKS.values() if any(a.endswith(t.head) for a in architectures)}
    )
    candidates = [task for task in TASKS.values() if task.head in heads]
    exact = [task for task in candidates if task.problem_type == problem_type]
    if named:
        return exact[0] if exact else named
    return (exact or candidates or [None])[0]
