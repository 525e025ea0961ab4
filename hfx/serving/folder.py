"""The exported model folder: the one contract between the training half (export writes it) and the serving
half (predict and serve read it). Every name in it is defined here and nowhere else.

A folder is what `dvc repro` writes to models/export (or `dvc get`/`dvc import` of it): config.json (the labels,
id2label, in the model's output order), tokenizer.json and tokenizer_config.json (text; model_max_length is the
max input length) or preprocessor_config.json (images), one file per format (FORMATS), a model card whose
`pipeline_tag` is the task, and calibration.json (the temperature the logits are divided by, a multi-label
model's per-label thresholds, or a question answering model's longest answer). A text model trained on pairs
of texts says so in config.json (TEXT_PAIRS); a multi-label one has `problem_type: multi_label_classification`,
as transformers and the Hub name it.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hfx.tasks import TASKS, task_of_model

# Format name -> file, in the order export writes and reports them.
FORMATS = {"pytorch": "model.safetensors", "fp32": "model.onnx", "int8": "model_quantized.onnx"}
# {"temperature": T}: scores are softmax(logits / T); none: T = 1. Multi-label: {"thresholds": {label: t}}, a
# label is given when its sigmoid score reaches t; none: 0.5.
# Question answering: {"max_answer_length": N}, the longest answer in tokens (evaluate.max_answer_length).
CALIBRATION_FILE = "calibration.json"
CALIBRATION_KEYS = ("temperature", "thresholds", "max_answer_length")  # what predict and serve apply from it
MAX_ANSWER_LENGTH = 30  # tokens, without calibration.json's (run_qa.py's default)
CARD_FILE = "README.md"  # the model card; its front matter's pipeline_tag names the task
# An int8 file's metadata: "fixed" (static: ranges measured on validation rows at export) or "per_call"
# (dynamic: measured on each call's input, so it runs one row per call). A file without it counts as per_call.
ACTIVATION_RANGES = "hfx.activation_ranges"
TEXT_PAIRS = "hfx_text_pairs"  # config.json: true when each input is a pair of texts (`data.text_pair_column`)
# config.json: {"windows": "chunk", "stride": N} when a text longer than the max length is read in overlapping
# windows of it, N tokens shared (`preprocess.long_texts: chunk`); absent: it is cut at the max length.
LONG_TEXTS = "hfx_long_texts"


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
    text_pairs: bool = False  # each input is [text, pair]
    thresholds: list[float] | None = None  # multi-label: each label's, in label order (calibration.json)
    chunk_stride: int | None = None  # long texts read in windows sharing this many tokens; None: cut
    max_answer_length: int = MAX_ANSWER_LENGTH  # question answering: the longest answer, in tokens


def _card_front_matter(folder: Path) -> dict:
    card = folder / CARD_FILE
    text = card.read_text() if card.is_file() else ""
    return (yaml.safe_load(text.split("---")[1]) or {}) if text.startswith("---") else {}


def read_folder(folder: str | Path, calibration: dict | None = None) -> ModelInfo:
    """What an exported folder holds, or a ModelError naming what is missing. `calibration` stands for the
    folder's calibration.json (evaluate scores a folder with what export will write there)."""
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
    task = folder_task(folder, card.get("pipeline_tag"), config)
    processor_file = TASKS[task].handler_class().processor_file if task in TASKS else "tokenizer.json"
    if not (folder / processor_file).is_file():
        raise ModelError(f"'{folder}' is not an exported model folder: no {processor_file} {hint}")
    if "id2label" not in config:
        raise ModelError(f"'{folder}/config.json' has no id2label: not a fine-tuned classifier")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    tokenizer_config = (
        json.loads((folder / "tokenizer_config.json").read_text())
        if (folder / "tokenizer_config.json").is_file()
        else {}
    )
    max_length = (
        min(tokenizer_config.get("model_max_length", 512), config.get("max_position_embeddings", 512))
        if processor_file == "tokenizer.json"
        else None
    )
    results = (card.get("model-index") or [{}])[0].get("results") or [{}]
    metrics = {m.get("name", m["type"]): m["value"] for m in results[0].get("metrics", []) if "value" in m}
    return ModelInfo(
        folder=folder,
        name=card.get("base_model", folder.name),
        task=task,
        labels=labels,
        max_length=max_length,
        formats=formats,
        test_metrics=metrics,
        text_pairs=config.get(TEXT_PAIRS) is True,
        chunk_stride=_chunk_stride(folder, config.get(LONG_TEXTS), max_length),
        **_calibration(folder, labels, calibration),
    )


def _chunk_stride(folder: Path, long_texts, max_length: int | None) -> int | None:
    if long_texts is None:
        return None
    stride = long_texts.get("stride") if isinstance(long_texts, dict) else None
    if (
        not isinstance(long_texts, dict)
        or long_texts.get("windows") != "chunk"
        or not isinstance(stride, int)
        or not 0 <= stride < (max_length or 0) // 2
    ):
        raise ModelError(
            f"'{folder}/config.json' has an invalid {LONG_TEXTS} ({long_texts!r}): expected"
            f' {{"windows": "chunk", "stride": <tokens, under half the max length {max_length}>}}'
        )
    return stride


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _calibration(folder: Path, labels: list[str], given: dict | None) -> dict:
    """The temperature and thresholds export stored from evaluate (calibration.json), or `given` in its place:
    a temperature of 1.0 and no thresholds (0.5) where it has none."""
    path = folder / CALIBRATION_FILE
    content = given
    if content is None and path.is_file():
        try:
            content = json.loads(path.read_text())
        except ValueError:
            content = None
        if not isinstance(content, dict) or not set(CALIBRATION_KEYS) & set(content):
            raise ModelError(
                f"'{path}' has neither a temperature nor thresholds: expected {{\"temperature\": <a positive number>}}"
                ' or {"thresholds": {<label>: <a score above 0 and below 1>}}; delete the file to serve uncalibrated'
                ' scores (question answering: {"max_answer_length": <tokens>})'
            )
    content = content or {}
    temperature = content.get("temperature", 1.0)
    if not _number(temperature) or not 0 < temperature < float("inf"):
        raise ModelError(
            f"'{path}' has no valid temperature ({temperature!r}): expected a positive number;"
            " delete the file to serve uncalibrated scores"
        )
    thresholds = content.get("thresholds")
    if thresholds is not None:
        # 0 would give the label to every input and 1 or more to none: a threshold lies strictly between.
        valid = isinstance(thresholds, dict) and all(_number(t) and 0 < t < 1 for t in thresholds.values())
        unknown = sorted(set(thresholds) - set(labels)) if isinstance(thresholds, dict) else []
        if not valid or unknown:
            raise ModelError(
                f"'{path}' has invalid thresholds: expected {{<label>: <a score above 0 and below 1>}} for labels of"
                f" config.json ({', '.join(labels)})" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        thresholds = [float(thresholds.get(label, 0.5)) for label in labels]
    longest = content.get("max_answer_length", MAX_ANSWER_LENGTH)
    if not isinstance(longest, int) or isinstance(longest, bool) or longest < 1:
        raise ModelError(f"'{path}' has no valid max_answer_length ({longest!r}): expected a number of tokens, 1 up")
    return {"temperature": float(temperature), "thresholds": thresholds, "max_answer_length": longest}


def folder_task(folder: Path, pipeline_tag, config: dict) -> str:
    """The task of a folder's model: its card's pipeline_tag (one no task here has is kept, to be refused with
    the served ones named), or the task its config.json's head and problem_type say."""
    if isinstance(pipeline_tag, str) and pipeline_tag not in TASKS:
        return pipeline_tag
    architectures = config.get("architectures") or []
    task = task_of_model(pipeline_tag, architectures, config.get("problem_type"))
    if task is None:
        raise ModelError(
            f"cannot tell the task of the model in '{folder}' with architectures {architectures}; its model card"
            " (README.md) has no pipeline_tag"
        )
    return task.name
