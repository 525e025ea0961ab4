"""Stage 3: fine-tune the pretrained model with the HF Trainer, write models/finetuned/.

Reads `task`, `model.*`, `finetune.*`. Dynamic padding and length-grouped batches, whole epochs until
`finetune.min_steps`, validation and a checkpoint every epoch (or every `eval_steps`), the best checkpoint
kept by a validation metric, early stopping, a fixed seed, and with `finetune.class_weights` a loss weighted
for imbalanced labels (hfx/training/class_weights.py). An interrupted run resumes from its last
checkpoint. Training curves go through dvclive into metrics/train/ for `dvc plots show`. With
`finetune.processes` or `finetune.nodes` above 1 the stage starts itself again under torchrun (DDP;
hfx/training/distributed.py) and rank 0 alone writes. With `finetune.epochs: 0` nothing trains: a classifier someone
already fine-tuned is written as it is, its labels matched to the data's (hfx/training/as_is.py). A run that
`hfx tune` started reports its validation scores to its trial, and stops without writing when the study prunes
it (hfx/training/tune/reporting.py).
"""

import shutil
from pathlib import Path

from datasets import load_from_disk
from dvclive import Live
from transformers import EarlyStoppingCallback, Trainer, set_seed

from hfx.training.adapters import get_adapter
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.artifacts import atomic_dir, read_json, write_json
from hfx.training.as_is import model_as_is
from hfx.training.checkpoints import resumable_checkpoint, run_fingerprint
from hfx.training.class_weights import class_weighted_loss
from hfx.training.distributed import (
    RotateOnEveryMachine,
    backend,
    checkpoint_to_resume,
    is_main_process,
    per_process_batch,
    ran_under_torchrun,
    world_size,
)
from hfx.training.params import Params, StageError, load_params, run_stage
from hfx.training.trainer_setup import (
    TransformAtResume,
    augmented,
    best_metric,
    by_length,
    epochs_to_run,
    precision_flags,
    starting_model,
    training_arguments,
)
from hfx.training.training_log import CuratedDVCLiveCallback, LogAtCheckpoints
from hfx.training.tune.reporting import trial_of_this_run


def keep_as_is(params: Params, task: TaskAdapter, label2id: dict) -> None:
    """finetune.epochs: 0: the model, unchanged but for its label order, where a fine-tuned one would go."""
    paths = params.paths
    model, processor = model_as_is(task, params.model, label2id), task.load_processor(params.model)
    resumable_checkpoint(Path(paths.checkpoints), run_fingerprint(params, paths.processed))  # drops stale ones
    with atomic_dir(paths.train_logs) as logs:  # no curves: an earlier run's would describe another model
        write_json(logs / "metrics.json", {"epochs": 0, "trained": False})
    task.prepare_saved(model, processor, params)
    with atomic_dir(paths.finetuned) as out:
        model.save_pretrained(out)
        processor.save_pretrained(out)
    print(
        f"finetune: '{params.model.name}' kept as it is (finetune.epochs: 0), labels {list(label2id)}"
        f" -> {paths.finetuned}"
    )


def trainer_for(
    params: Params, task: TaskAdapter, labels: dict, splits, epochs: int, metric: str, trial=None
) -> Trainer:
    """The HF Trainer for this run: the starting model, its processor, the callbacks (curves through dvclive,
    early stopping, checkpoints on every machine, `hfx tune`'s trial) and the loss (weighted by class with
    finetune.class_weights)."""
    paths, ft, main_process = params.paths, params.finetune, is_main_process()
    args = training_arguments(ft, paths.checkpoints, epochs, metric, task.group_by_length)
    set_seed(ft.seed)  # before the model: the new classification head is initialised from it
    processor = task.load_processor(params.model)
    model = starting_model(task, params, labels, announce=main_process, train=splits["train"])
    transform = task.train_transform(params.preprocess, ft.seed)
    callbacks = [LogAtCheckpoints(), RotateOnEveryMachine()]
    if transform is not None:
        callbacks.append(TransformAtResume(transform))
    if main_process:  # the other ranks write nothing
        live = Live(paths.train_logs, dvcyaml=False, save_dvc_exp=False)  # a resumed run logs its rows again
        callbacks.append(CuratedDVCLiveCallback(live, {"model": params.model.name, **ft.model_dump()}))
    if ft.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=ft.early_stopping_patience))
    if trial is not None:
        callbacks.append(trial)
    names = list(labels["label2id"])
    loss, weights_line = class_weighted_loss(ft.class_weights, splits["train"], names, task.problem_type)
    if weights_line and main_process:
        print(weights_line)
    return Trainer(
        model=model,
        args=args,
        train_dataset=augmented(splits["train"], transform),
        eval_dataset=by_length(splits["validation"]) if task.group_by_length else splits["validation"],
        processing_class=processor,
        data_collator=task.collator(processor),
        compute_metrics=task.trainer_metrics(names),
        compute_loss_func=loss,
        callbacks=callbacks,
    )


def save_finetuned(params: Params, task: TaskAdapter, trainer: Trainer, metric: str) -> None:
    """The best model, as evaluate, export and serving read it; the checkpoints, dead weight once it is saved,
    go."""
    paths = params.paths
    task.prepare_saved(trainer.model, trainer.processing_class, params)
    with atomic_dir(paths.finetuned) as out:
        trainer.save_model(str(out))
    for checkpoint in Path(paths.checkpoints).glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    ft = params.finetune
    processes = f" on {world_size(ft)} processes ({backend()})" if world_size(ft) > 1 else ""
    best = f"{trainer.state.best_metric:.4f}"
    print(f"finetune: best validation {metric} {best}{processes} -> {paths.finetuned}")


def main() -> None:
    params = load_params()
    task, paths, ft = get_adapter(params.task), params.paths, params.finetune
    labels = read_json(f"{paths.processed}/labels.json")
    if ft.epochs == 0:
        return keep_as_is(params, task, labels["label2id"])
    splits = load_from_disk(paths.processed)
    epochs = epochs_to_run(ft, len(splits["train"]))
    metric = best_metric(ft, task)  # a metric the task does not report fails here, before any process starts
    # Fails on a CPU asked for fp16, or on a batch that does not split over the processes, before any work.
    precision_flags(ft.precision), per_process_batch(ft)
    if ran_under_torchrun(params, "stages.finetune"):  # the workers it started trained and wrote
        return
    if is_main_process() and epochs != ft.epochs:
        print(f"finetune: {epochs} epochs of {len(splits['train'])} rows, to reach finetune.min_steps={ft.min_steps}")
    trial = trial_of_this_run()  # when `hfx tune` started this run: reports to the study, which may stop it
    trainer = trainer_for(params, task, labels, splits, epochs, metric, trial)
    trainer.train(resume_from_checkpoint=checkpoint_to_resume(params, trainer.args))
    if trial is not None and trial.pruned_at is not None:
        raise StageError(trial.pruned_line())
    if is_main_process():  # the other ranks write nothing
        save_finetuned(params, task, trainer, metric)


if __name__ == "__main__":
    run_stage(main)
