"""The tiny runs several test modules read: the pipeline after one `dvc repro`. Tests only read these repos; one
that changes a repo changes `copy_of` it, which costs a second instead of a run."""

import subprocess
from pathlib import Path

import pytest

from tests.corpora import generated_splits, write_images
from tests.project import REVIEWS, ROOT, run, tiny_repo


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> tuple[Path, subprocess.CompletedProcess]:
    """Reviews (train and test CSVs, no validation split, string labels) through every stage, and that run's
    output. The model learns to tell the cue words apart."""
    repo = tiny_repo(
        tmp_path_factory.mktemp("tiny-run") / "repo",
        tiny_model,
        generated_splits({"train": 240, "test": 60}),
        **REVIEWS,
        finetune__epochs=4,
        finetune__warmup_ratio=0.0,
        finetune__learning_rate=3e-3,
        finetune__batch_size=16,
        finetune__logging_steps=5,
        export__latency_queries=3,
    )
    return repo, run(["dvc", "repro"], repo)


@pytest.fixture(scope="session")
def exported_model(tiny_run) -> Path:
    """models/export of the tiny run."""
    return tiny_run[0] / "models/export"


@pytest.fixture(scope="session")
def image_repo(tmp_path_factory):
    """The whole pipeline on generated 28x28 images (IDX files, as Fashion-MNIST ships) and the ResNet preset,
    trained from scratch."""
    repo = tiny_repo(
        tmp_path_factory.mktemp("images") / "repo",
        ROOT / "presets/resnet-small",
        lambda folder: write_images(folder, {"train": 240, "t10k": 60}),
        task="image-classification",
        data__image_column="image",
        data__label_column="label",
        data__label_names=["dark", "bright", "striped"],
        model__init="random",
        finetune__epochs=3,
        finetune__learning_rate=3e-3,
        finetune__batch_size=32,
        export__latency_queries=5,
    )
    return repo, run(["dvc", "repro"], repo, check=False)
