"""The peer: the fine-tuning script a user would write from transformers' `run_glue.py`.

Its defaults, not ours: every example padded to `max_seq_length=128` at tokenization time, the default data
collator, random (not length-grouped) batches, no evaluation until training ends. Same model, data, seed and
hyper-parameters as the project's run, passed on the command line. Prints one JSON line.

    python benchmarks/peer_run_glue.py --data DIR --model PATH --out DIR --learning-rate 1e-4 ...
"""

import argparse
import json

import numpy as np
from datasets import load_dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="folder with train.csv and validation.csv (text,label)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=float, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--warmup-ratio", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-seq-length", type=int, default=128)  # run_glue.py's default
    args = parser.parse_args()

    set_seed(args.seed)
    raw = load_dataset("csv", data_files={s: f"{args.data}/{s}.csv" for s in ("train", "validation")})
    labels = sorted(set(raw["train"]["label"]))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))

    def preprocess(batch):
        # run_glue.py: pad_to_max_length defaults to True
        encoded = tokenizer(batch["text"], padding="max_length", max_length=args.max_seq_length, truncation=True)
        encoded["label"] = [labels.index(label) for label in batch["label"]]
        return encoded

    data = raw.map(preprocess, batched=True, remove_columns=["text"])
    training_args = TrainingArguments(
        output_dir=args.out,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,
        seed=args.seed,
        report_to="none",
        use_cpu=True,
    )

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=default_data_collator,
        compute_metrics=accuracy,
        processing_class=tokenizer,
    )
    train = trainer.train().metrics
    evaluation = trainer.evaluate()
    print(
        json.dumps(
            {
                "train_runtime": train["train_runtime"],
                "train_samples_per_second": train["train_samples_per_second"],
                "validation_accuracy": evaluation["eval_accuracy"],
            }
        )
    )


if __name__ == "__main__":
    main()
