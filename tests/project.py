"""Throw-away copies of this project and the commands run in them: `tiny_repo` builds a committed git + DVC repo
whose pipeline runs any task on given data with a tiny model, in seconds a stage."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]

# What a user's clone holds of the pipeline: the files a tiny repo copies.
REPO_FILES = [
    "dvc.yaml",
    "params.yaml",
    "stages",
    "hfx",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
    ".dvcignore",
    ".gitignore",
]

# How the tiny BERT learns generated data in a few seconds: a high learning rate from the first step, small
# batches, and a few latency queries at export.
TINY_TRAINING = {
    "finetune__warmup_ratio": 0.0,
    "finetune__learning_rate": 3e-3,
    "finetune__batch_size": 16,
    "export__latency_queries": 3,
}

# The columns of tests/corpora.py's reviews.
REVIEWS = {"data__text_column": "review", "data__label_column": "sentiment"}

# The image run (tests/pipeline/conftest.py's image_repo) on 28x28 images in IDX files (tests/corpora.py's
# write_images): the ResNet preset trained from scratch, augmented as preprocess.augment does by default.
IMAGE_RUN = {
    "task": "image-classification",
    "data__image_column": "image",
    "data__label_column": "label",
    "data__label_names": ["dark", "bright", "striped"],
    "model__init": "random",
    "finetune__epochs": 3,
    "finetune__learning_rate": 3e-3,
    "finetune__batch_size": 32,
    "finetune__eval_steps": 4,  # checkpoints inside an epoch too: a resumed run skips batches it has seen
    "finetune__early_stopping_patience": None,
    "export__latency_queries": 5,
}


def tiny_repo(
    dest: Path,
    model: Path | str,
    inputs: dict[str, pd.DataFrame] | Callable[[Path], None],
    *,
    task: str = "text-classification",
    file_format: str = "csv",
    **params,
) -> Path:
    """A committed copy of the project whose pipeline runs `task` on `inputs` with `model`.

    `inputs` is {split: frame}, written to inputs/<split>.csv (or .jsonl, for nested columns), or a function that
    writes the source files into inputs/. `params` override params.yaml keys given as `section__key=value`. By
    default nothing is excluded and an epoch is one pass (`min_steps` would multiply the epochs of tiny data)."""
    repo = copy_of_project(dest)
    folder = repo / "inputs"
    folder.mkdir()
    if callable(inputs):
        inputs(folder)
    else:
        for split, frame in inputs.items():
            if file_format == "jsonl":
                frame.to_json(folder / f"{split}.jsonl", orient="records", lines=True)
            else:
                frame.to_csv(folder / f"{split}.csv", index=False)
    defaults = {"data__source": "inputs", "data__exclude_labels": [], "model__name": str(model)}
    set_params(repo, task=task, **defaults, **{"finetune__min_steps": 0, **params})
    commit_all(repo, f"tiny {task} pipeline")
    return repo


def copy_of_project(dest: Path) -> Path:
    """The project's pipeline files as a fresh git repo, nothing committed yet."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        src, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    run(["git", "init", "-q", "-b", "main"], dest)
    return dest


def copy_of(repo: Path, dest: Path) -> Path:
    """A repo copied whole (git, the DVC cache, the outputs): a project cloned and pulled, as a teammate has it."""
    return Path(shutil.copytree(repo, dest, symlinks=True))


def set_params(repo: Path, **overrides) -> None:
    """Override params.yaml keys given as `section__key=value`."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split("__")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def commit_all(repo: Path, message: str = "snapshot") -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cmd, cwd=cwd, env={**stage_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def hfx(*args: str) -> subprocess.CompletedProcess:
    """The installed `hfx` command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "hfx.cli", *args], cwd=ROOT, capture_output=True, text=True, env=stage_env(), timeout=120
    )


def stage_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` in dvc.yaml = this venv
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        DVC_NO_ANALYTICS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


def readme_recovery_command() -> str:
    """The documented command that brings back the last committed outputs after a failed stage."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs/troubleshooting.md").read_text(), re.DOTALL)
    return next(block.strip() for block in blocks if "dvc checkout" in block)
