"""The exported model folder, the contract for everything downstream: what it holds and how to run it.

A folder is what `dvc repro` writes to models/export (or `dvc get`/`dvc import` of it): config.json,
tokenizer.json (text) or preprocessor_config.json (images), model_quantized.onnx / model.onnx /
model.safetensors, a model card, and calibration.json (the temperature the logits are divided by). Nothing
here imports torch: ONNX Runtime, the `tokenizers` library and Pillow run the ONNX formats; only `pytorch`
needs torch.
"""

import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hfx.tasks import HANDLERS, InputError

FORMATS = {"int8": "model_quantized.onnx", "fp32": "model.onnx", "pytorch": "model.safetensors"}
CALIBRATION_FILE = "calibration.json"  # {"temperature": T}: scores are softmax(logits / T); none: T = 1


class ModelError(Exception):
    """A folder that cannot be served as it is: one line saying what is missing."""


@dataclass
class ModelInfo:
    folder: Path
    name: str
    task: str
    labels: list[str]
    max_length: int | None  # tokens (text tasks)
    formats: list[str]
    test_metrics: dict = field(default_factory=dict)
    temperature: float = 1.0  # what the logits are divided by before the softmax (calibration.json)


def _card_front_matter(folder: Path) -> dict:
    card = folder / "README.md"
    text = card.read_text() if card.is_file() else ""
    return (yaml.safe_load(text.split("---")[1]) or {}) if text.startswith("---") else {}


def read_folder(folder: str | Path) -> ModelInfo:
    """What an exported folder holds, or a ModelError naming what is missing."""
    folder = Path(folder)
    hint = "(an exported model: `dvc repro` writes models/export, `dvc pull models/export` fetches it)"
    if not folder.is_dir():
        raise ModelError(f"model folder '{folder}' does not exist {hint}")
    if not (folder / "config.json").is_file():
        raise ModelError(f"'{folder}' is not an exported model folder: no config.json {hint}")
    formats = [fmt for fmt, file in FORMATS.items() if (folder / file).is_file()]
    if not formats:
        raise ModelError(f"'{folder}' has no model weights: none of {', '.join(FORMATS.values())} {hint}")
    config = json.loads((folder / "config.json").read_text())
    card = _card_front_matter(folder)
    task = card.get("pipeline_tag") or _task_from_architectures(config.get("architectures") or [])
    processor_file = HANDLERS[task].processor_file if task in HANDLERS else "tokenizer.json"
    if not (folder / processor_file).is_file():
        raise ModelError(f"'{folder}' is not an exported model folder: no {processor_file} {hint}")
    if "id2label" not in config:
        raise ModelError(f"'{folder}/config.json' has no id2label: not a fine-tuned classifier")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text()) \
        if (folder / "tokenizer_config.json").is_file() else {}
    max_length = min(tokenizer_config.get("model_max_length", 512), config.get("max_position_embeddings", 512)) \
        if processor_file == "tokenizer.json" else None
    results = (card.get("model-index") or [{}])[0].get("results") or [{}]
    metrics = {m.get("name", m["type"]): m["value"] for m in results[0].get("metrics", []) if "value" in m}
    return ModelInfo(folder=folder, name=card.get("base_model", folder.name), task=task, labels=labels,
                     max_length=max_length, formats=formats, test_metrics=metrics, temperature=_temperature(folder))


def _temperature(folder: Path) -> float:
    """The temperature export stored from evaluate's calibration, or 1.0 (scores as the model gives them)."""
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return 1.0
    try:
        value = json.loads(path.read_text())["temperature"]
    except (ValueError, KeyError, TypeError):
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ModelError(f"'{path}' has no valid temperature: expected {{\"temperature\": <a positive number>}};"
                         " delete the file to serve uncalibrated scores")
    return float(value)


ARCHITECTURE_TASKS = {"ForSequenceClassification": "text-classification",
                      "ForTokenClassification": "token-classification",
                      "ForImageClassification": "image-classification"}


def _task_from_architectures(architectures: list[str]) -> str:
    for suffix, task in ARCHITECTURE_TASKS.items():
        if any(name.endswith(suffix) for name in architectures):
            return task
    raise ModelError(f"cannot tell the task of a model with architectures {architectures}; its model card"
                     " (README.md) has no pipeline_tag")


class OnnxRunner:
    """An ONNX Runtime session: numpy inputs by name, logits out."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict) -> np.ndarray:
        return self.session.run(["logits"], {name: inputs[name] for name in self.input_names})[0]


class TorchRunner:
    """The safetensors weights through transformers and torch (imported only for this format)."""

    def __init__(self, folder: Path, threads: int, auto_model: str):
        import torch
        import transformers

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = getattr(transformers, auto_model).from_pretrained(folder, use_safetensors=True).eval()
        self.input_names = set(inspect.signature(self.model.forward).parameters)

    def __call__(self, inputs: dict) -> np.ndarray:
        with self.torch.inference_mode():
            tensors = {k: self.torch.as_tensor(v) for k, v in inputs.items() if k in self.input_names}
            return self.model(**tensors).logits.float().numpy()


class LoadedModel:
    """An exported folder ready to run: the task's handler (texts in, results out) and one format's runner."""

    def __init__(self, folder: str | Path, fmt: str = "int8", threads: int | None = None):
        self.info = read_folder(folder)
        if fmt not in FORMATS:
            raise ModelError(f"unknown format '{fmt}'; valid: {', '.join(FORMATS)}")
        if fmt not in self.info.formats:
            raise ModelError(f"'{self.info.folder}' has no {FORMATS[fmt]} for format {fmt}; formats here:"
                             f" {', '.join(self.info.formats)}")
        if self.info.task not in HANDLERS:
            raise ModelError(f"task '{self.info.task}' of '{self.info.folder}' is not served yet; served:"
                             f" {', '.join(HANDLERS)}")
        self.format = fmt
        threads = threads or len(os.sched_getaffinity(0))
        path = self.info.folder / FORMATS[fmt]
        try:
            self.handler = HANDLERS[self.info.task](self.info)
        except InputError as exc:  # a processor the handler cannot run
            raise ModelError(str(exc)) from None
        self.runner = TorchRunner(self.info.folder, threads, self.handler.auto_model) if fmt == "pytorch" \
            else OnnxRunner(path, threads)

    def __call__(self, rows: list) -> list[np.ndarray]:
        """Each row's logits (per token: cut to the row's own length), in one call per group of rows of similar
        length (`length_groups`)."""
        lengths = [self.handler.length(row) for row in rows]
        logits = [None] * len(rows)
        for group in length_groups(lengths):
            for i, row_logits in zip(group, self.runner(self.handler.pad([rows[i] for i in group]))):
                logits[i] = row_logits[:lengths[i]] if row_logits.ndim == 2 else row_logits
        return logits


def length_groups(lengths: list[int], max_padding: float = 0.25) -> list[list[int]]:
    """Row indices in groups of similar length, shortest first, so padding adds at most `max_padding` to a
    group's real tokens. On a CPU a batch costs about its padded tokens: padding a 10-token row to 60 costs
    more than batching saves (int8 MiniLM: 1.8 ms for 1 x 16 tokens, 1.1 ms per row for 32 x 16)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups, tokens = [], 0
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[i] <= (1 + max_padding) * (tokens + lengths[i]):
            groups[-1].append(i)
            tokens += lengths[i]
        else:
            groups.append([i])
            tokens = lengths[i]
    return groups
