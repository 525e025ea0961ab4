"""Stage 3: fine-tune the pretrained model with the HF Trainer, write models/finetuned/.

Reads `task`, `model.*`, `finetune.*`. Dynamic padding and length-grouped batches, validation every epoch,
the best checkpoint kept by a validation metric, early stopping, a fixed seed. Training curves go through
dvclive into metrics/train/ for `dvc plots show`.
"""

import shutil

import torch
from datasets import load_from_disk
from dvclive import Live
from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer, TrainingArguments, set_seed
from transformers.integrations import DVCLiveCallback

from stages.artifacts import atomic_dir, read_json
from stages.params import Finetune, ParamsError, load_params, run_stage
from stages.sources import from_pretrained
from stages.tasks import get_task


def precision_flags(precision: str) -> dict:
    """auto: bf16 (or fp16 on older GPUs) on CUDA, fp32 on a CPU."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision == "fp16" and not cuda:
        raise ParamsError("finetune.precision: fp16 needs a CUDA GPU; on a CPU use auto, fp32 or bf16")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": not cuda}


def training_arguments(ft: Finetune, output_dir: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=ft.epochs,
        learning_rate=ft.learning_rate,
        per_device_train_batch_size=ft.batch_size,
        per_device_eval_batch_size=ft.batch_size * 2,
        weight_decay=ft.weight_decay,
        warmup_steps=ft.warmup_ratio,  # a float below 1 is a fraction of all steps
        seed=ft.seed,
        data_seed=ft.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=ft.metric_for_best_model,
        greater_is_better=ft.metric_for_best_model != "loss",
        train_sampling_strategy="group_by_length",  # rows of similar length share a batch: less padding
        length_column_name="length",
        logging_steps=ft.logging_steps,
        report_to="none",  # the dvclive callback below is added explicitly, with our settings
        **precision_flags(ft.precision),
    )


def main() -> None:
    params = load_params()
    task, paths, ft = get_task(params.task), params.paths, params.finetune
    args = training_arguments(ft, paths.checkpoints)  # checks precision before any loading
    labels = read_json(f"{paths.processed}/labels.json")
    splits = load_from_disk(paths.processed)

    set_seed(ft.seed)  # before the model: the new classification head is initialised from it
    tokenizer = from_pretrained(AutoTokenizer, params.model)
    model = from_pretrained(task.auto_model, params.model, num_labels=len(labels["label2id"]),
                            id2label={int(i): name for i, name in labels["id2label"].items()},
                            label2id=labels["label2id"])

    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    live = Live(paths.train_logs, dvcyaml=False, save_dvc_exp=False)
    callbacks = [DVCLiveCallback(live=live)]
    if ft.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=ft.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer),
        compute_metrics=task.trainer_metrics(list(labels["label2id"])),
        callbacks=callbacks,
    )
    trainer.train()

    with atomic_dir(paths.finetuned) as out:
        trainer.save_model(str(out))
    best = trainer.state.best_metric
    print(f"finetune: best validation {ft.metric_for_best_model} {best:.4f} -> {paths.finetuned}")


if __name__ == "__main__":
    run_stage(main)
