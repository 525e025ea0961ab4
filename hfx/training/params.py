"""The typed schema of params.yaml, checked before any stage does expensive work.

`python -m stages.check_params` (the pipeline's first stage) checks params.yaml on its own and prints one line per
problem.
"""

import difflib
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hfx.tasks import DEFAULT_WINDOWS, TASKS
from hfx.training.tune.settings import Tune, check_space

PARAMS_FILE = "params.yaml"
TASK_NAMES = tuple(TASKS)
SOURCE_SCHEMES = ("hf:", "pkg:", "http://", "https://", "s3://", "gs://", "gcs://")


class StageError(Exception):
    """A failure the user can act on: shown as one line, no traceback."""


class ParamsError(StageError):
    """A bad params.yaml, data source or model."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Data(Section):
    source: str = Field(min_length=1)
    config: str | None = None
    revision: str | None = None
    data_files: dict[Literal["train", "validation", "test"], str | list[str]] | None = None
    splits: dict[Literal["train", "validation", "test"], str] | None = None
    format: Literal["conll"] | None = None  # conll: `word ... tag` lines; also read from a .conll suffix
    text_column: str = Field(min_length=1)
    text_pair_column: str | None = Field(None, min_length=1)  # a second text per row: pair classification
    image_column: str = Field("image", min_length=1)  # image classification: images, their bytes or paths
    label_column: str = Field(min_length=1)
    question_column: str = Field("question", min_length=1)  # question answering: the question
    context_column: str = Field("context", min_length=1)  # question answering: the text that holds the answer
    answers_column: str = Field("answers", min_length=1)  # question answering: {text: [...], answer_start: [...]}
    label_separator: str = Field(",", min_length=1)  # multi-label: what separates the labels in a string cell
    label_names: dict[str, str] | None = None  # classification: display names for the source's labels
    exclude_labels: list[str] = []
    validation_size: float = Field(0.1, gt=0, lt=1)
    test_size: float = Field(0.1, gt=0, lt=1)
    max_samples: int | None = Field(None, gt=0)
    seed: int = 42

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if ":" in value.split("/")[0] and not value.startswith(SOURCE_SCHEMES):
            raise ValueError(f"unknown scheme; use a local path or one of {', '.join(SOURCE_SCHEMES)}")
        if value.startswith(("hf:", "pkg:")) and len(value.split(":", 1)[1].strip("/")) == 0:
            raise ValueError("names nothing after the scheme")
        return value

    @field_validator("exclude_labels", mode="before")
    @classmethod
    def _labels_as_strings(cls, value):
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("label_names", mode="before")
    @classmethod
    def _names_by_label(cls, value):
        """A list names labels 0, 1, 2...; a mapping names them by their value in the source."""
        if isinstance(value, list):
            value = dict(enumerate(value))
        if isinstance(value, dict):
            value = {str(k): str(v) for k, v in value.items()}
            if len(set(value.values())) < len(value):
                raise ValueError("gives two labels the same name")
        return value

    @field_validator("splits")
    @classmethod
    def _train_named(cls, value):
        if value is not None and "train" not in value:
            raise ValueError("must name the source's train split, e.g. {train: train, validation: dev}")
        return value

    @model_validator(mode="after")
    def _room_for_train(self):
        if self.validation_size + self.test_size >= 1:
            raise ValueError("data.validation_size + data.test_size must be below 1 to leave rows for train")
        return self


class Model(Section):
    name: str = Field(min_length=1)
    revision: str | None = None
    trust_remote_code: bool = False
    init: Literal["pretrained", "random"] = "pretrained"  # random: the architecture of name's config, untrained


class Preprocess(Section):
    max_length: int = Field(128, ge=8, le=8192)
    label_all_subtokens: bool = False  # token classification: tag every sub-token, not only a word's first
    augment: bool = True  # image classification: random pad-crop and flip of training images, as they are read
    num_proc: int = Field(1, ge=1, le=512)  # processes that tokenize; the output is the same for any count
    long_texts: Literal["truncate", "chunk"] = "truncate"  # chunk: overlapping windows of max_length tokens
    stride: int = Field(32, ge=0)  # chunk: tokens each window repeats from the one before
    swap_pairs: bool = False  # pairs: train on each pair in both orders too (symmetric tasks: similarity, paraphrase)

    @model_validator(mode="after")
    def _stride_within_window(self):
        if self.long_texts == "chunk" and self.stride >= self.max_length // 2:
            raise ValueError(
                f"preprocess.stride: {self.stride} tokens of overlap leaves windows of max_length {self.max_length}"
                f" too little new text; set it below {self.max_length // 2}"
            )
        return self


class Finetune(Section):
    epochs: float = Field(ge=0)  # 0: no training, the model scored as it is (hfx/training/as_is.py)
    min_steps: int = Field(0, ge=0)
    learning_rate: float = Field(gt=0, lt=1)
    batch_size: int = Field(gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    seed: int = 42
    early_stopping_patience: int | None = Field(None, ge=1)
    eval_steps: int | None = Field(None, gt=0)
    deterministic: bool = True
    metric_for_best_model: Literal[
        "auto", "accuracy", "f1", "f1_macro", "f1_micro", "average_precision_micro", "loss"
    ] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    optim: Literal["adamw_torch_fused", "adamw_torch", "adafactor", "sgd"] = "adamw_torch_fused"
    logging_steps: int = Field(20, gt=0)
    freeze_token_embeddings: bool = False
    class_weights: Literal["balanced"] | None = None  # balanced: rare classes weigh more in the loss
    processes: int = Field(1, ge=1)  # training processes per machine (torchrun, DDP)
    nodes: int = Field(1, ge=1)  # machines
    process_timeout_s: int = Field(600, gt=0)  # many processes: how long one waits for a silent other


class Evaluate(Section):
    batch_size: int = Field(64, gt=0)
    calibrate: bool = True
    top_errors: int = Field(50, ge=0)
    # question answering: the longest answer, in tokens; auto: what 99% of train answers fit in
    max_answer_length: int | Literal["auto"] = "auto"

    @field_validator("max_answer_length", mode="before")
    @classmethod
    def _tokens_or_auto(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return value
        raise ValueError("expected auto or a number of tokens, 1 or more")


class Export(Section):
    onnx: bool = True
    quantize: bool = True
    batch_size: int = Field(32, gt=0)
    latency_queries: int = Field(100, gt=0)
    calibration_rows: int = Field(512, gt=0)  # static int8 (images): validation rows that set activation ranges
    parity_tolerance: float = Field(1e-3, gt=0)

    @model_validator(mode="after")
    def _quantize_needs_onnx(self):
        if self.quantize and not self.onnx:
            raise ValueError("export.quantize needs export.onnx: true (it quantizes the ONNX model)")
        return self


# What a stage output must never be or contain: stages delete their outputs before writing them.
PROTECTED = (".git", ".dvc", "stages", "hfx", "tests", "params.yaml", "dvc.yaml", "dvc.lock")


class Paths(Section):
    raw: str
    data_card: str
    data_plots: str
    processed: str
    finetuned: str
    checkpoints: str
    export: str
    train_logs: str
    eval_metrics: str
    predictions: str
    errors: str
    calibration: str
    eval_plots: str
    export_metrics: str

    @field_validator("*")
    @classmethod
    def _inside_the_project(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or PureWindowsPath(value).drive:
            raise ValueError("must be relative to the project root, e.g. models/export")
        parts = [part for part in path.parts if part != "."]
        if not parts or ".." in parts:
            raise ValueError("must name a folder or file inside the project, without '..'")
        if parts[0] in PROTECTED:
            raise ValueError(f"must not be or lie inside {parts[0]}; stages replace their outputs whole")
        return "/".join(parts)

    @model_validator(mode="after")
    def _apart(self):
        items = list(self.model_dump().items())
        for i, (key, path) in enumerate(items):
            for other, other_path in items[i + 1 :]:
                if _within(path, other_path) or _within(other_path, path):
                    raise ValueError(
                        f"paths.{key} ({path}) and paths.{other} ({other_path}) overlap; each stage"
                        " replaces its outputs whole, so one would delete the other"
                    )
        return self


def _within(path: str, folder: str) -> bool:
    return PurePosixPath(path).parts[: len(PurePosixPath(folder).parts)] == PurePosixPath(folder).parts


class Params(Section):
    task: Literal[TASK_NAMES]
    data: Data
    model: Model
    preprocess: Preprocess
    finetune: Finetune
    evaluate: Evaluate
    export: Export
    paths: Paths
    tune: Tune | None = None  # `hfx tune`'s search; no stage reads it

    @model_validator(mode="before")
    @classmethod
    def _task_windows(cls, raw):
        """`auto` (or no key) in preprocess.max_length and preprocess.stride: the task's usual windows."""
        if not isinstance(raw, dict) or not isinstance(raw.get("preprocess"), dict):
            return raw
        task = raw.get("task")
        windows = TASKS[task].windows if isinstance(task, str) and task in TASKS else DEFAULT_WINDOWS
        preprocess = dict(raw["preprocess"])
        for key, value in windows.items():
            if preprocess.get(key, "auto") == "auto":
                preprocess[key] = value
        return {**raw, "preprocess": preprocess}

    @model_validator(mode="after")
    def _names_for_whole_rows(self):
        if self.data.label_names is not None and not TASKS[self.task].labels_rows:
            raise ValueError(
                "data.label_names names whole-row labels (text or image classification);"
                f" {self.task} reads its tags as written"
            )
        return self

    @model_validator(mode="after")
    def _pairs_for_text_classification(self):
        if self.data.text_pair_column is not None and not TASKS[self.task].takes_pairs:
            pair_tasks = ", ".join(name for name, task in TASKS.items() if task.takes_pairs)
            raise ValueError(
                f"data.text_pair_column gives {pair_tasks} a second text per row; {self.task} takes"
                " one input per row: set it to null"
            )
        return self

    @model_validator(mode="after")
    def _swaps_of_pairs(self):
        if self.preprocess.swap_pairs and self.data.text_pair_column is None:
            raise ValueError(
                "preprocess.swap_pairs trains on each pair of texts in both orders; there is no second text:"
                " set data.text_pair_column, or swap_pairs to false"
            )
        return self

    @model_validator(mode="after")
    def _chunks_of_single_texts(self):
        if self.preprocess.long_texts == "chunk" and self.data.text_pair_column is not None:
            raise ValueError(
                "preprocess.long_texts: chunk splits single texts into windows; a pair of texts is read whole,"
                " its longer side cut first: set it to truncate, or data.text_pair_column to null"
            )
        return self

    @model_validator(mode="after")
    def _windows_of_contexts(self):
        # A windowed task (question answering) always reads its input in windows of max_length sharing `stride`.
        if TASKS[self.task].windowed and self.preprocess.stride >= self.preprocess.max_length // 2:
            raise ValueError(
                f"preprocess.stride: {self.preprocess.stride} tokens of overlap leaves windows of max_length"
                f" {self.preprocess.max_length} too little new context; set it below {self.preprocess.max_length // 2}"
            )
        return self

    @model_validator(mode="after")
    def _searched_keys_exist(self):
        if self.tune is not None:
            check_space(self.tune, {name: getattr(self, name) for name in type(self).model_fields})
        return self

    @model_validator(mode="after")
    def _weights_for_classes(self):
        if self.finetune.class_weights is not None and not TASKS[self.task].has_classes:
            raise ValueError(f"finetune.class_weights weighs classes; {self.task} has none: set it to null")
        return self


def printable(text: str) -> str:
    """Control characters escaped, so an error stays on one line whatever the key."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _key(loc: tuple) -> str:
    return printable(".".join(str(part) for part in loc if not str(part).startswith("function-")))


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def describe(error: dict) -> str:
    """One readable line for one pydantic error."""
    key, value = _key(error["loc"]), error.get("input")
    if error["type"] == "extra_forbidden":
        known = _known_keys(Params, error["loc"])
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = (
            f"did you mean '{_key(error['loc'][:-1] + (close[0],))}'?" if close else f"valid keys: {', '.join(known)}"
        )
        return f"unknown key '{key}' in {PARAMS_FILE}; {hint}"
    if error["type"] == "missing":
        return f"missing key '{key}' in {PARAMS_FILE}"
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(value, dict) and "." not in key:  # a check across a section's keys: the message names them
        return f"bad {f'{key!r} section' if key else PARAMS_FILE}: {message}"
    where = f"'{key}'" if key else PARAMS_FILE
    return f"bad value for {where}: {value!r}: {message}"


def validate(raw: object) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"{PARAMS_FILE} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError("; ".join(describe(e) for e in exc.errors())) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found; run from the project root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return validate(raw)


def run_stage(main) -> None:
    """Entry point for every stage: known errors become one line on stderr and exit code 1."""
    try:
        main()
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
