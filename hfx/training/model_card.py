"""The exported model's README.md: a Hugging Face model card (templates/model_card.md.jinja, rendered with Jinja2)
with data, params and metrics, and its figures."""

import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from huggingface_hub import EvalResult, ModelCard, ModelCardData  # noqa: E402
from jinja2 import Environment, FileSystemLoader, StrictUndefined  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from hfx.serving.folder import CALIBRATION_FILE, FORMATS
from hfx.training.adapters.interface import TaskAdapter
from hfx.training.hub_ids import base_license, base_model_id, dataset_id
from hfx.training.params import Params


def write_figures(
    out: Path, predictions_csv: str, train_logs: str, names: list[str], task: TaskAdapter, eval_plots: str
) -> None:
    """Static PNGs for people who look at the model folder rather than at DVC: the test split's confusion
    matrix (classes), each label's F1 (multi-label) or predicted against actual values (regression), and the
    training curves."""
    per_class_csv = Path(eval_plots) / "per_class.csv"
    figure = f"{task.test_figure}.png"
    if task.test_figure is None:  # answers are spans (question answering): the card shows examples instead
        fig = None
    elif task.test_figure == "predictions":  # numbers (regression)
        predictions = pd.read_csv(predictions_csv)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(predictions["actual"], predictions["predicted"], s=6, alpha=0.4)
        low, high = predictions["actual"].min(), predictions["actual"].max()
        ax.plot([low, high], [low, high], color="grey", linewidth=1)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("Predicted against actual (test split)")
    elif task.test_figure == "per_label":  # a set of labels per input (multi-label): each label's F1
        table = pd.read_csv(per_class_csv).iloc[::-1]
        fig, ax = plt.subplots(figsize=(6, 0.28 * len(table) + 1.5))
        ax.barh([f"{row.label} ({row.support})" for row in table.itertuples()], table["f1"])
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1 on test")
        ax.set_title("Each label's F1 (test rows with it)")
    else:
        predictions = pd.read_csv(predictions_csv, dtype=str)
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.2 * len(names) + 2.5))
        ConfusionMatrixDisplay.from_predictions(
            predictions["actual"], predictions["predicted"], labels=names, ax=ax, colorbar=False, xticks_rotation=45
        )
        ax.set_title("Confusion matrix (test split)")
    if fig is not None:
        fig.tight_layout()
        fig.savefig(out / figure, dpi=100)

    curves = Path(train_logs) / "plots" / "metrics"
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for tsv, label, ax in (
        ("loss.tsv", "train loss", loss_ax),
        ("eval/loss.tsv", "validation loss", loss_ax),
        *((f"eval/{metric}.tsv", f"validation {metric}", score_ax) for metric in task.validation_metrics[:2]),
    ):
        if (curves / tsv).is_file():
            frame = pd.read_csv(curves / tsv, sep="\t")
            ax.plot(frame["step"], frame.iloc[:, -1], marker="o" if len(frame) < 20 else None, label=label)
    for ax, title in ((loss_ax, "Loss"), (score_ax, "Validation scores")):
        ax.set_xlabel("optimizer step")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=100)
    plt.close("all")


TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.jinja"


def card_data(params: Params, task: TaskAdapter, scores: dict, manifest: dict) -> ModelCardData:
    """The card's Hub metadata: base model, dataset and license as Hub ids, and the test scores as `model-index`."""
    dataset = dataset_id(params.data)
    test = {"dataset_type": dataset or params.data.source, "dataset_name": dataset or Path(params.data.source).name}
    if dataset:  # the commit download read, unless it could not be resolved (sources.py says so then)
        commit = manifest["read"].get("hub_commit", "")
        revision = commit if re.fullmatch(r"[0-9a-f]{40}", commit) else params.data.revision
        test |= {"dataset_config": params.data.config, "dataset_revision": revision}
    return ModelCardData(
        base_model=base_model_id(params.model),
        datasets=[dataset] if dataset else None,
        license=base_license(params.model),
        library_name="transformers",
        pipeline_tag=task.pipeline_tag,
        tags=["hfx", "dvc"],
        model_name=Path(params.paths.export).name,
        eval_results=[
            EvalResult(
                task_type=task.pipeline_tag,
                dataset_split="test",
                metric_type=key,
                metric_value=round(scores[key], 4),
                **{k: v for k, v in test.items() if v is not None},
            )
            for key in task.card_metrics
            if key in scores
        ],
    )


@dataclass(frozen=True)
class CardFacts:
    """What the card shows beside the params, each from a file an earlier stage wrote."""

    manifest: dict  # data/raw/manifest.json: the source, its columns and splits
    scores: dict  # test scores of the exported PyTorch model (metrics/eval.json has the full evaluation)
    export_metrics: dict  # each format's headline score and size
    figures: list[tuple[str, str]] = ()  # the task's own (file, caption) pairs in the folder
    data_card: dict | None = None  # duplicates and leakage (metrics/data.json)
    calibration: dict | None = None  # the calibration error and the temperature (metrics/calibration.json)
    lengths: dict | None = None  # the texts' length in tokens (metrics/data_plots/lengths.json)
    predictions_csv: str | None = None  # where the task's answered examples come from (metrics/predictions.csv)


def render_model_card(params: Params, task: TaskAdapter, facts: CardFacts) -> ModelCard:
    """The card of a run with these params, showing `facts`."""
    data = card_data(params, task, facts.scores, facts.manifest)
    as_is = params.finetune.epochs == 0  # hfx/training/as_is.py
    named = data.base_model or params.model.name
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE.parent),
        undefined=StrictUndefined,  # a name the template uses and the code forgot fails the export
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    text = environment.get_template(TEMPLATE.name).render(
        card_data=data.to_yaml(),
        title=f"{named} for {params.task}, as it is (not fine-tuned here: finetune.epochs 0)"
        if as_is
        else f"Fine-tuned {named} for {params.task}",
        as_is=as_is,
        base_model=data.base_model,
        license=data.license,
        source=params.data.source,
        dataset=dataset_id(params.data),
        columns=facts.manifest["columns"],
        pair_column=params.data.text_pair_column,
        splits=facts.manifest["splits"],
        data_card=facts.data_card,
        lengths=facts.lengths,
        max_length=params.preprocess.max_length,
        stride=params.preprocess.stride if params.preprocess.long_texts == "chunk" else None,
        image_sizes=(facts.data_card or {}).get("image_sizes") or {},
        training={**params.finetune.model_dump(), "max_length": params.preprocess.max_length},
        headline={key: facts.scores[key] for key in task.card_metrics if key in facts.scores},
        per_class=facts.scores.get("per_class") or {},
        calibration=facts.calibration,
        calibration_file=CALIBRATION_FILE,
        headline_metric=task.headline,
        formats=[
            {
                "name": name,
                "file": FORMATS[name],
                "score": facts.export_metrics[task.headline][name],
                "size_mb": facts.export_metrics["size_mb"][name],
            }
            for name in facts.export_metrics["formats"]
        ],
        figures=facts.figures,
        examples=task.card_examples(facts.predictions_csv) if facts.predictions_csv else [],
        test_figure=task.test_figure,
        pipeline_task=task.pipeline_tag,
        pipeline_kwargs=task.pipeline_kwargs,
    )
    return ModelCard(text)  # parses the metadata as the Hub does: a card it cannot read fails here, not there
