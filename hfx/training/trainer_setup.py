"""How the finetune stage sets up the Trainer: the model it starts from, precision, how many epochs, which
validation score keeps the best checkpoint, the TrainingArguments for one process or many, and the splits as it
reads them."""

import math

import numpy as np
import torch
import transformers
from transformers import AutoConfig, TrainerCallback, TrainingArguments

from hfx.training.adapters.interface import TaskAdapter
from hfx.training.class_weights import start_at_base_rates
from hfx.training.distributed import backend, per_process_batch, world_size
from hfx.training.params import Finetune, Params, ParamsError
from hfx.training.sources import from_pretrained


def starting_model(task: TaskAdapter, params: Params, labels: dict, announce: bool, train=None):
    """model.name's weights with a new head sized to the data's labels, or its architecture alone
    (model.init: random). `labels`: data/processed/labels.json; `announce`: say when a head is replaced; `train`:
    the processed train split, whose label shares a new multi-label head starts from."""
    head = {
        **({"problem_type": task.problem_type} if task.problem_type else {}),
        "num_labels": len(labels["label2id"]),
        "label2id": labels["label2id"],
        "id2label": {int(i): name for i, name in labels["id2label"].items()},
    }
    if params.model.init == "random":  # the architecture alone, trained from scratch
        model = getattr(transformers, task.auto_model).from_config(from_pretrained(AutoConfig, params.model, **head))
        new_head = True
    else:
        pretrained = from_pretrained(AutoConfig, params.model)
        if announce and task.has_head(pretrained) and pretrained.num_labels != len(labels["label2id"]):
            print(
                f"finetune: '{params.model.name}' comes with a {pretrained.num_labels}-label head; a new"
                f" {len(labels['label2id'])}-label head is trained in its place"
            )
        auto_model = getattr(transformers, task.auto_model)
        model = from_pretrained(auto_model, params.model, ignore_mismatched_sizes=True, **head)
        new_head = not (task.has_head(pretrained) and pretrained.num_labels == len(labels["label2id"]))
    if new_head and train is not None:
        start_at_base_rates(model, params.finetune.class_weights, train, task.problem_type)
    if params.finetune.freeze_token_embeddings:
        # The token-embedding matrix is half of a small model's weights: its dense gradient and optimizer update
        # cost about a fifth of a CPU step. Off by default: on the default data it cost accuracy (README).
        model.get_input_embeddings().requires_grad_(False)
    return model


def by_length(split):
    """Rows sorted by length, so each evaluation batch pads only to rows of its own size (kept in memory:
    an index file written beside the data would change the DVC out)."""
    return split.select(np.argsort(split["length"], kind="stable"), keep_in_memory=True)


def augmented(split, transform):
    """The train split with the task's training-time transform applied as rows are read (none for text)."""
    if transform is not None:
        split.set_transform(transform, output_all_columns=True)
    return split


def precision_flags(precision: str) -> dict:
    """auto: bf16 (or fp16 on older GPUs) on CUDA, fp32 on a CPU."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise ParamsError("finetune.precision: fp16 needs a CUDA GPU; on a CPU use auto, fp32 or bf16")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": not cuda}


def epochs_to_run(ft: Finetune, train_rows: int) -> float:
    """finetune.epochs, raised to whole epochs until the run has finetune.min_steps optimizer steps: one epoch
    of a small dataset is too few steps to learn from."""
    steps_per_epoch = math.ceil(train_rows / ft.batch_size)
    return max(ft.epochs, math.ceil(ft.min_steps / steps_per_epoch))


def best_metric(ft: Finetune, task: TaskAdapter) -> str:
    """finetune.metric_for_best_model, with `auto` the task's own (text: macro F1; entities: entity F1; several
    labels: average precision)."""
    metric = task.best_metric if ft.metric_for_best_model == "auto" else ft.metric_for_best_model
    if metric not in (*task.validation_metrics, "loss"):
        raise ParamsError(
            f"finetune.metric_for_best_model: {task.name} validates with"
            f" {', '.join(task.validation_metrics)} and loss, not {metric}"
        )
    return metric


def training_arguments(
    ft: Finetune, output_dir: str, epochs: float, metric: str, group_by_length: bool = True
) -> TrainingArguments:
    every = {"strategy": "steps", "steps": ft.eval_steps} if ft.eval_steps else {"strategy": "epoch", "steps": None}
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        learning_rate=ft.learning_rate,
        per_device_train_batch_size=per_process_batch(ft),
        per_device_eval_batch_size=per_process_batch(ft) * 2,
        weight_decay=ft.weight_decay,
        optim=ft.optim,
        warmup_steps=ft.warmup_ratio,  # a float below 1 is a fraction of all steps
        seed=ft.seed,
        data_seed=ft.seed,
        eval_strategy=every["strategy"],
        eval_steps=every["steps"],
        save_strategy=every["strategy"],  # a checkpoint at every evaluation: what resume restarts from
        save_steps=every["steps"],
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=metric != "loss",
        # Rows of similar length share a batch: less padding. Not under DDP: there transformers' length-grouped
        # sampler stalled training in tests/pipeline/test_distributed.py (the loss stayed at 0.69 while one
        # process learnt).
        train_sampling_strategy="group_by_length" if group_by_length and world_size(ft) == 1 else "random",
        length_column_name="length",
        logging_steps=ft.logging_steps,
        report_to="none",  # the dvclive callback below is added explicitly, with our settings
        full_determinism=ft.deterministic,
        ddp_backend=backend() if world_size(ft) > 1 else None,
        ddp_find_unused_parameters=False,  # every parameter trains: skip DDP's extra pass over the graph
        # The classification heads average their own loss: the Trainer's token averaging across processes would
        # multiply it by the process count (a doubled learning rate on 2 processes).
        average_tokens_across_devices=False,
        ddp_timeout=ft.process_timeout_s,  # a process that stops answering fails the others after this long
        **precision_flags(ft.precision),
    )


class TransformAtResume(TrainerCallback):
    """Tells a training-time transform whose random state follows the batch count (an image adapter's
    augmentation) where that count stands when training starts: 0, or the batches a resumed checkpoint has
    seen, which the Trainer skips without reading."""

    def __init__(self, transform):
        self.transform = transform

    def on_train_begin(self, args, state, control, **kwargs):
        self.transform.at_batch = state.global_step * args.gradient_accumulation_steps
