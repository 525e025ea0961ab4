"""`finetune.epochs: 0`: a classifier someone already fine-tuned, scored as it is. Its output rows are matched
to the data's labels by name (exactly, else ignoring case) and put in the data's label order; rows for labels
the data lacks are left out, so the model picks among the data's labels. A regression model's one output is
kept whatever its name. No weight changes value."""

import torch
import transformers
from transformers import AutoConfig

from hfx.training.adapters.interface import TaskAdapter
from hfx.training.params import Model, ParamsError
from hfx.training.sources import from_pretrained


def matched_rows(model_labels: list[str], data_labels: list[str], model_name: str) -> list[int]:
    """For each data label, in order, the model's output row of that name; a ParamsError lists those it lacks."""
    exact = {name: i for i, name in enumerate(model_labels)}
    folded = {name.casefold(): i for i, name in reversed(list(enumerate(model_labels)))}
    rows = [exact.get(name, folded.get(name.casefold())) for name in data_labels]
    missing = [name for name, row in zip(data_labels, rows) if row is None]
    if missing:
        raise ParamsError(
            f"finetune.epochs: 0 scores '{model_name}' as it is, but it has no label {missing} that"
            f" the data has (its labels: {model_labels}); rename the data's with data.label_names,"
            " or train a new head (finetune.epochs > 0)"
        )
    return rows


def output_layer(model: torch.nn.Module, num_labels: int) -> torch.nn.Linear:
    """The classifier's last linear layer: the one that gives one logit per label."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if not layers:
        raise ParamsError(f"finetune.epochs: 0: no output layer with {num_labels} outputs in {type(model).__name__}")
    return layers[-1]


def model_as_is(task: TaskAdapter, model: Model, label2id: dict[str, int]):
    """The pretrained classifier with its labels in the data's order, or a ParamsError before any weight loads."""
    config = from_pretrained(AutoConfig, model)
    if model.init == "random" or not task.has_head(config):
        why = (
            "is set to start from random weights (model.init)"
            if model.init == "random"
            else "has no classification head"
        )
        raise ParamsError(
            f"finetune.epochs: 0 scores a ready-made {task.name} model as it is, but '{model.name}' {why};"
            " name a fine-tuned one in model.name, or train (finetune.epochs > 0)"
        )
    names = list(label2id)
    if task.fixed_outputs:  # outputs by position, whatever their names (a cross-encoder's LABEL_0; start, end)
        if config.num_labels != task.fixed_outputs:
            raise ParamsError(
                f"finetune.epochs: 0 scores '{model.name}' as a {task.name} model, but it has"
                f" {config.num_labels} outputs; {task.name} takes a model with {task.fixed_outputs}"
            )
        rows = list(range(task.fixed_outputs))
    else:
        rows = matched_rows([config.id2label[i] for i in range(config.num_labels)], names, model.name)
    classifier = from_pretrained(getattr(transformers, task.auto_model), model)
    if task.problem_type:
        classifier.config.problem_type = task.problem_type
    layer = output_layer(classifier, config.num_labels)
    with torch.no_grad():
        layer.weight = torch.nn.Parameter(layer.weight[rows].clone())
        if layer.bias is not None:
            layer.bias = torch.nn.Parameter(layer.bias[rows].clone())
    layer.out_features = len(rows)
    classifier.config.id2label = dict(enumerate(names))
    classifier.config.label2id = {name: i for i, name in enumerate(names)}
    classifier.num_labels = len(rows)
    return classifier
