"""Shared fixtures: small generated data, a tiny BERT built from a config, and a throw-away copy of the repo.

Nothing here needs the network or ../shared.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Tests that use one of these run a pipeline of their own beyond the tiny one (`tiny_run`): `make test-fast`
# leaves them out, with the modules marked `pytestmark = pytest.mark.slow`.
SLOW_FIXTURES = {
    "pipeline_repo",
    "ner_repo",
    "image_repo",
    "good_repo",
    "pair_repo",
    "regression_run",
    "multi_label_run",
    "chunk_run",
    "qa_run",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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

POSITIVE = ["great", "wonderful", "moving", "brilliant", "funny", "charming", "superb", "delightful"]
NEGATIVE = ["awful", "boring", "dull", "clumsy", "tedious", "bland", "messy", "terrible"]
FILLER = ["the", "film", "story", "cast", "was", "a", "really", "plot", "and", "ending", "quite", "this", "movie"]


def review(rng: random.Random, label: str) -> str:
    words = rng.choices(FILLER, k=rng.randint(3, 12))
    cue = POSITIVE if label == "pos" else NEGATIVE
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
    return " ".join(words)


def make_reviews(n: int, seed: int = 0) -> pd.DataFrame:
    """A learnable two-class corpus: the label is carried by a cue word among filler words."""
    rng = random.Random(seed)
    labels = [rng.choice(["pos", "neg"]) for _ in range(n)]
    return pd.DataFrame({"review": [review(rng, label) for label in labels], "sentiment": labels})


PEOPLE = [["john", "smith"], ["mary", "jones"], ["ali"], ["chen", "wei"], ["ana", "lopez"], ["otto"]]
PLACES = [["paris"], ["new", "york"], ["lagos"], ["rio", "de", "janeiro"], ["oslo"]]
COMPANIES = [["acme", "corp"], ["globex"], ["initech", "group"], ["umbrella"]]
TEMPLATES = [
    ["{PER}", "visited", "{LOC}", "last", "week"],
    ["{ORG}", "hired", "{PER}", "in", "{LOC}"],
    ["the", "team", "from", "{ORG}", "met", "{PER}"],
    ["{PER}", "moved", "to", "{LOC}"],
    ["shares", "of", "{ORG}", "fell", "in", "{LOC}", "today"],
    ["nothing", "happened", "here"],
]


def make_sentences(n: int, seed: int = 0) -> pd.DataFrame:
    """A learnable named-entity corpus: people, places and companies in a few templates, tagged in IOB2.
    Columns `text` and `label`: words and tags joined by spaces, as ../shared/data/conll2003's csv files."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words, tags = [], []
        for slot in rng.choice(TEMPLATES):
            kind = slot.strip("{}") if slot.startswith("{") else None
            entity = rng.choice({"PER": PEOPLE, "LOC": PLACES, "ORG": COMPANIES}[kind]) if kind else [slot]
            words += entity
            tags += [f"{'B' if i == 0 else 'I'}-{kind}" if kind else "O" for i in range(len(entity))]
        rows.append({"text": " ".join(words), "label": " ".join(tags)})
    return pd.DataFrame(rows)


def make_tiny_model(folder: Path, corpus: list[str]) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer trained on `corpus`, saved like a Hub checkpoint."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)  # the same tiny model in every session
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    corpus = make_reviews(400, seed=1)["review"].tolist()
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), corpus)


@pytest.fixture(scope="session")
def tiny_ner_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-ner-model"), make_sentences(300, seed=1)["text"].tolist())


def write_splits(folder: Path, sizes: dict[str, int], seed: int = 0, make=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(sizes.items()):
        (make or make_reviews)(n, seed=seed + i).to_csv(folder / f"{split}.csv", index=False)
    return folder


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


def make_repo(dest: Path) -> Path:
    """A copy of the project's pipeline files as a fresh git + DVC repo with one commit."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    run(["git", "init", "-q", "-b", "main"], dest)
    return dest


def tiny_ner_repo(dest: Path, tiny_ner_model: Path, sizes: dict[str, int], **overrides) -> Path:
    """A committed repo whose pipeline tags generated sentences (csv: words and tags as text) with the tiny BERT."""
    repo = make_repo(dest)
    write_splits(repo / "inputs", sizes, make=make_sentences)
    set_params(
        repo,
        **{
            "task": "token-classification",
            "data__source": "inputs",
            "data__text_column": "text",
            "data__label_column": "label",
            "data__exclude_labels": [],
            "model__name": str(tiny_ner_model),
            "finetune__min_steps": 0,
            **overrides,
        },
    )
    commit_all(repo, "tiny ner pipeline")
    return repo


def tiny_pipeline_repo(dest: Path, tiny_model: Path, sizes: dict[str, int], **overrides) -> Path:
    """A committed repo whose pipeline reads generated reviews from inputs/ with the tiny BERT."""
    repo = make_repo(dest)
    write_splits(repo / "inputs", sizes)
    # One pass per epoch unless a test asks for more: min_steps would multiply the epochs of this tiny data.
    set_params(
        repo,
        data__source="inputs",
        data__text_column="review",
        data__label_column="sentiment",
        data__exclude_labels=[],
        model__name=str(tiny_model),
        **{"finetune__min_steps": 0, **overrides},
    )
    commit_all(repo, "tiny pipeline")
    return repo


def frames_repo(
    dest: Path, tiny_model: Path, frames: dict[str, pd.DataFrame], file_format: str = "csv", **overrides
) -> Path:
    """A committed repo whose pipeline reads the given splits (written to inputs/<split>.csv, or .jsonl for nested
    columns) with the tiny BERT; `overrides` name the columns and anything else the test needs."""
    repo = make_repo(dest)
    (repo / "inputs").mkdir()
    for split, frame in frames.items():
        if file_format == "jsonl":
            frame.to_json(repo / "inputs" / f"{split}.jsonl", orient="records", lines=True)
        else:
            frame.to_csv(repo / "inputs" / f"{split}.csv", index=False)
    set_params(
        repo,
        data__source="inputs",
        data__exclude_labels=[],
        model__name=str(tiny_model),
        **{"finetune__min_steps": 0, **overrides},
    )
    commit_all(repo, "tiny pipeline")
    return repo


def commit_all(repo: Path, message: str = "snapshot") -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def pipeline_as_served(task: str, folder: Path, **kwargs):
    """`transformers.pipeline` on an exported folder with its logits divided by the folder's temperature
    (calibration.json), as hfx.predict and hfx.serve score them: the classifier's last linear layer is scaled."""
    import torch
    from transformers import pipeline

    served = pipeline(task, model=str(folder), **kwargs)
    calibration = Path(folder) / "calibration.json"
    temperature = json.loads(calibration.read_text())["temperature"] if calibration.is_file() else 1.0
    head = [module for module in served.model.classifier.modules() if isinstance(module, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight /= temperature
        head.bias /= temperature
    return served


def readme_recovery_command() -> str:
    """The documented command that brings back the last committed outputs after a failed stage."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "docs/troubleshooting.md").read_text(), re.DOTALL)
    return next(block.strip() for block in blocks if "dvc checkout" in block)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> tuple[Path, subprocess.CompletedProcess]:
    """The tiny pipeline after one `dvc repro` (train and test CSVs, no validation split, string labels), and
    that run's output. The model learns to tell the cue words apart. Tests only read this repo: one that
    changes a repo changes `copy_of` it, which costs a second instead of a run."""
    repo = tiny_pipeline_repo(
        tmp_path_factory.mktemp("tiny-run") / "repo",
        tiny_model,
        {"train": 240, "test": 60},
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


def copy_of(repo: Path, dest: Path) -> Path:
    """A repo copied whole (git, the DVC cache, the outputs): a project cloned and pulled, as a teammate has it."""
    return Path(shutil.copytree(repo, dest, symlinks=True))


@pytest.fixture(scope="session")
def image_repo(tmp_path_factory):
    """The whole pipeline on generated 28x28 images (IDX files, as Fashion-MNIST ships) and the ResNet preset,
    trained from scratch."""
    import numpy as np

    from tests.test_images import write_idx

    repo = make_repo(tmp_path_factory.mktemp("images") / "repo")
    (repo / "inputs").mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 240), ("t10k", 60)):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, 28, 28))
        images[labels == 1] += 150  # bright
        images[labels == 2, :, ::4] = 255  # stripes
        write_idx(repo / f"inputs/{prefix}-images-idx3-ubyte.gz", images)
        write_idx(repo / f"inputs/{prefix}-labels-idx1-ubyte.gz", labels)
    set_params(
        repo,
        task="image-classification",
        data__source="inputs",
        data__image_column="image",
        data__label_column="label",
        data__label_names=["dark", "bright", "striped"],
        data__exclude_labels=[],
        model__name=str(ROOT / "presets/resnet-small"),
        model__init="random",
        finetune__min_steps=0,
        finetune__epochs=3,
        finetune__learning_rate=3e-3,
        finetune__batch_size=32,
        export__latency_queries=5,
    )
    commit_all(repo, "tiny image pipeline")
    return repo, run(["dvc", "repro"], repo, check=False)
