"""The tiny runs several test modules read: the pipeline after one `dvc repro`, built once per test session and
shared by the workers. Tests only read these repos; one that changes a repo changes `copy_of` it, which costs a
second instead of a run."""

import subprocess
from pathlib import Path

import pytest

from tests.corpora import generated_splits, write_images
from tests.project import IMAGE_RUN, REVIEWS, ROOT, run, tiny_repo
from tests.session_builds import built_once


def reproduced(repo: Path, check: bool = True) -> dict:
    """`dvc repro` in `repo`, as JSON that the other workers read back with `completed`."""
    result = run(["dvc", "repro"], repo, check=check)
    return {"args": result.args, "returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def completed(result: dict) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(**result)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id, tiny_model) -> tuple[Path, subprocess.CompletedProcess]:
    """Reviews (train and test CSVs, no validation split, string labels) through every stage, and that run's
    output. The model learns to tell the cue words apart."""

    def build(folder: Path) -> dict:
        repo = tiny_repo(
            folder / "repo",
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
        return reproduced(repo)

    folder, result = built_once(tmp_path_factory, worker_id, "tiny-run", build)
    return folder / "repo", completed(result)


@pytest.fixture(scope="session")
def exported_model(tiny_run) -> Path:
    """models/export of the tiny run."""
    return tiny_run[0] / "models/export"


@pytest.fixture(scope="session")
def image_repo(tmp_path_factory, worker_id) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole pipeline on generated 28x28 images (IDX files, as Fashion-MNIST ships): tests/project.py's
    IMAGE_RUN."""

    def build(folder: Path) -> dict:
        inputs = lambda folder: write_images(folder, {"train": 240, "t10k": 60})  # noqa: E731
        repo = tiny_repo(folder / "repo", ROOT / "presets/resnet-small", inputs, **IMAGE_RUN)
        return reproduced(repo, check=False)

    folder, result = built_once(tmp_path_factory, worker_id, "images", build)
    return folder / "repo", completed(result)
