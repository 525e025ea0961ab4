"""Bad params and bad data: one clear line on stderr and a non-zero exit, before any work. A stage that fails
while writing keeps its previous outputs; one that fails under `dvc repro` is recovered with `dvc checkout`."""

import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.project import commit_all, copy_of, readme_recovery_command, run, set_params

OUTS = ("data/raw", "data/processed", "models/finetuned", "models/export", "metrics")


def snapshot(repo: Path) -> dict[str, str]:
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for out in OUTS
        for p in sorted((repo / out).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def good_repo(tmp_path_factory, tiny_run):
    """A copy of the tiny run: a project whose pipeline has run, which these tests break and restore."""
    return copy_of(tiny_run[0], tmp_path_factory.mktemp("bad-inputs") / "repo")


def params_edit(**changes):
    def apply(repo: Path):
        set_params(repo, **changes)

    return apply


def params_delete(section, key):
    def apply(repo: Path):
        params = yaml.safe_load((repo / "params.yaml").read_text())
        del params[section][key]
        (repo / "params.yaml").write_text(yaml.safe_dump(params))

    return apply


def params_text(text):
    def apply(repo: Path):
        (repo / "params.yaml").write_text(text)

    return apply


def source_file(name: str, content: bytes | str, **changes):
    """Point data.source at a new file in bad/ with the given content."""

    def apply(repo: Path):
        path = repo / "bad" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        set_params(repo, data__source=f"bad/{name}", **changes)

    return apply


def source_splits(files: dict[str, str], **changes):
    def apply(repo: Path):
        folder = repo / "bad" / "splits"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        set_params(repo, data__source="bad/splits", **changes)

    return apply


def remote_code_model(tiny_model: Path):
    """The tiny model, but its config asks for a model class from a file in its own folder."""

    def apply(repo: Path):
        folder = repo / "bad" / "remote-code-model"
        shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
        config = json.loads((folder / "config.json").read_text())
        config.update(
            model_type="custom-bert",
            auto_map={
                "AutoConfig": "configuration.CustomConfig",
                "AutoModelForSequenceClassification": "modeling.CustomModel",
            },
        )
        (folder / "config.json").write_text(json.dumps(config))
        set_params(repo, model__name="bad/remote-code-model")

    return apply


def model_folder(files: dict[str, str]):
    def apply(repo: Path):
        folder = repo / "bad" / "model"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        set_params(repo, model__name="bad/model")

    return apply


ROWS = "review,sentiment\n" + "".join(f"text number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40))


CASES = [
    # params: each stage checks the whole params.yaml before it does anything
    (
        "typo",
        "download",
        params_edit(finetune__learning_rat=1e-4),
        "unknown key 'finetune.learning_rat' in params.yaml; did you mean 'finetune.learning_rate'?",
    ),
    ("unknown section", "download", params_edit(fintune={}), "did you mean 'finetune'?"),
    (
        "negative lr",
        "download",
        params_edit(finetune__learning_rate=-1e-5),
        "'finetune.learning_rate': -1e-05: Input should be greater than 0",
    ),
    (
        "negative epochs",
        "download",
        params_edit(finetune__epochs=-1),
        "'finetune.epochs': -1: Input should be greater than or equal to 0",
    ),
    ("as is without a head", "finetune", params_edit(finetune__epochs=0), "has no classification head"),
    (
        "string batch size",
        "download",
        params_edit(finetune__batch_size="big"),
        "'finetune.batch_size': 'big': Input should be a valid integer",
    ),
    (
        "bad precision",
        "download",
        params_edit(finetune__precision="fp8"),
        "'finetune.precision': 'fp8': Input should be 'auto', 'fp32', 'bf16' or 'fp16'",
    ),
    (
        "zero patience",
        "download",
        params_edit(finetune__early_stopping_patience=0),
        "'finetune.early_stopping_patience': 0",
    ),
    ("test_size 1", "download", params_edit(data__test_size=1.0), "'data.test_size': 1.0: Input should be less than 1"),
    (
        "sizes sum to 1",
        "download",
        params_edit(data__validation_size=0.5, data__test_size=0.5),
        "data.validation_size + data.test_size must be below 1",
    ),
    (
        "unknown task",
        "download",
        params_edit(task="translation"),
        "'task': 'translation': Input should be 'text-classification'",
    ),
    (
        "ftp source",
        "download",
        params_edit(data__source="ftp://host/data.csv"),
        "'data.source': 'ftp://host/data.csv': unknown scheme",
    ),
    (
        "empty hf id",
        "download",
        params_edit(data__source="hf:"),
        "'data.source': 'hf:': names nothing after the scheme",
    ),
    ("max_length 0", "download", params_edit(preprocess__max_length=0), "'preprocess.max_length': 0"),
    ("negative max_samples", "download", params_edit(data__max_samples=-5), "'data.max_samples': -5"),
    ("quantize without onnx", "download", params_edit(export__onnx=False), "export.quantize needs export.onnx: true"),
    ("zero parity tolerance", "download", params_edit(export__parity_tolerance=0), "'export.parity_tolerance': 0"),
    ("negative min_steps", "download", params_edit(finetune__min_steps=-1), "'finetune.min_steps': -1"),
    (
        "checkpoints around the model",
        "download",
        params_edit(paths__checkpoints="models"),
        "paths.finetuned (models/finetuned) and paths.checkpoints (models) overlap",
    ),
    (
        "same path twice",
        "download",
        params_edit(paths__predictions="metrics/eval.json"),
        "paths.eval_metrics (metrics/eval.json) and paths.predictions (metrics/eval.json) overlap",
    ),
    (
        "absolute path",
        "download",
        params_edit(paths__export="/tmp/export"),
        "'paths.export': '/tmp/export': must be relative to the project root",
    ),
    (
        "path outside the project",
        "download",
        params_edit(paths__raw="../raw"),
        "'paths.raw': '../raw': must name a folder or file inside the project",
    ),
    (
        "path in .git",
        "download",
        params_edit(paths__raw=".git/raw"),
        "'paths.raw': '.git/raw': must not be or lie inside .git",
    ),
    (
        "path is the code",
        "download",
        params_edit(paths__export="stages"),
        "'paths.export': 'stages': must not be or lie inside stages",
    ),
    ("splits without train", "download", params_edit(data__splits={"validation": "dev"}), "'data.splits'"),
    (
        "split not in source",
        "download",
        params_edit(data__splits={"train": "train", "validation": "dev"}),
        "data.splits: validation: dev not in the source; its splits: train, test",
    ),
    ("missing key", "download", params_delete("data", "text_column"), "missing key 'data.text_column' in params.yaml"),
    ("invalid yaml", "download", params_text("data: [unclosed\n"), "params.yaml is not valid YAML"),
    ("not a mapping", "download", params_text("- just\n- a list\n"), "params.yaml must be a mapping of sections"),
    # data
    (
        "missing file",
        "download",
        params_edit(data__source="bad/nope.csv"),
        "data.source: 'bad/nope.csv' does not exist",
    ),
    (
        "missing folder",
        "download",
        params_edit(data__source="bad/no_such_folder"),
        "data.source: 'bad/no_such_folder' does not exist",
    ),
    (
        "unknown format",
        "download",
        source_file("data.xlsx", "x"),
        "cannot tell the format of 'data.xlsx'; valid: .csv, .tsv, .json, .jsonl, .parquet",
    ),
    (
        "corrupt parquet",
        "download",
        source_file("data.parquet", b"PAR1 this is not parquet"),
        "data.source: cannot load 'bad/data.parquet'",
    ),
    (
        "corrupt bz2",
        "download",
        source_file("data.csv.bz2", b"BZh9 garbage"),
        "data.source: cannot load 'bad/data.csv.bz2'",
    ),
    (
        "unparseable json",
        "download",
        source_file("data.jsonl", '{"review": "a", "sentiment": \n'),
        "data.source: cannot load 'bad/data.jsonl'",
    ),
    (
        "non utf-8",
        "download",
        source_file("data.csv", "review,sentiment\nna\xefve film,pos\n".encode("latin-1") + ROWS[17:].encode()),
        "save the file as UTF-8",
    ),
    (
        "text column missing",
        "download",
        source_file("data.csv", ROWS, data__text_column="body"),
        "data.text_column: column 'body' not in the train split; columns: review, sentiment",
    ),
    (
        "label column missing",
        "download",
        source_file("data.csv", ROWS, data__label_column="stars"),
        "data.label_column: column 'stars' not in the train split; columns: review, sentiment",
    ),
    (
        "everything excluded",
        "download",
        source_file("data.csv", ROWS, data__exclude_labels=["pos", "neg"]),
        "data: no rows left in train after dropping",
    ),
    (
        "single label",
        "download",
        source_file("data.csv", ROWS.replace(",neg", ",pos")),
        "data: train has a single label ['pos']",
    ),
    (
        "unseen test label",
        "download",
        source_splits({"train.csv": ROWS, "test.csv": "review,sentiment\nodd one,meh\n"}),
        "data: labels ['meh'] in test never appear in train",
    ),
    ("too small to carve", "download", source_file("data.csv", ROWS.split("text number 4")[0]), "too few to take"),
    (
        "package not installed",
        "download",
        params_edit(data__source="pkg:no_such_package_xyz/data.csv"),
        "package 'no_such_package_xyz' is not installed",
    ),
    # model
    (
        "not a model folder",
        "preprocess",
        model_folder({"notes.txt": "hello"}),
        "model.name: 'bad/model' is not a model folder (no config.json",
    ),
    (
        "no weights",
        "preprocess",
        model_folder({"config.json": '{"model_type": "bert"}', "pytorch_model.bin": ""}),
        "model.name: 'bad/model' has no .safetensors weights",
    ),
    (
        "max_length past the model",
        "preprocess",
        params_edit(preprocess__max_length=4096),
        "preprocess.max_length: 4096 is more tokens than",
    ),
    (
        "no tokenizer",
        "preprocess",
        model_folder({"config.json": '{"model_type": "bert"}', "model.safetensors": ""}),
        "model.name: 'bad/model' has no tokenizer",
    ),
    ("fp16 on a cpu", "finetune", params_edit(finetune__precision="fp16"), "finetune.precision: fp16 needs a CUDA GPU"),
    (
        # on two processes: the line comes from the launcher, before torchrun starts any worker
        "best metric the task lacks",
        "finetune",
        params_edit(finetune__metric_for_best_model="average_precision_micro", finetune__processes=2),
        "finetune.metric_for_best_model: text-classification validates with accuracy",
    ),
]


GPU_ONLY_FAILURES = {"fp16 on a cpu"}  # these train fine where there is a GPU


@pytest.mark.parametrize(
    "stage, mutate, message",
    [
        pytest.param(
            *case[1:],
            id=case[0],
            marks=[
                pytest.mark.skipif(
                    case[0] in GPU_ONLY_FAILURES and torch.cuda.is_available(), reason="not a failure on a GPU"
                )
            ],
        )
        for case in CASES
    ],
)
def test_bad_input_fails_with_one_line_before_any_work(good_repo, monkeypatch, capsys, stage, mutate, message):
    params = (good_repo / "params.yaml").read_text()
    monkeypatch.chdir(good_repo)
    try:
        mutate(good_repo)
        module = importlib.import_module(f"stages.{stage}")
        with pytest.raises(SystemExit) as exit_info:
            module.run_stage(module.main)
        error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    finally:
        (good_repo / "params.yaml").write_text(params)
    assert exit_info.value.code == 1
    assert len(error_lines) == 1, error_lines
    assert message in error_lines[0]


def test_model_with_its_own_code_names_the_param(good_repo, tiny_model):
    params = (good_repo / "params.yaml").read_text()
    remote_code_model(tiny_model)(good_repo)
    try:
        result = run(["python", "-m", "stages.finetune"], good_repo, check=False)
    finally:
        (good_repo / "params.yaml").write_text(params)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: model.name: 'bad/remote-code-model' runs custom code from its repository; read it,"
        " then set model.trust_remote_code: true if you trust it"
    ]


def partial_leftovers(repo: Path) -> list[Path]:
    return [p for out in OUTS for p in (repo / out).parent.glob("*.partial")]


def test_export_failing_its_parity_check_keeps_the_previous_export(good_repo):
    """The check runs after the ONNX files are written into models/export.partial: the previous export stays."""
    before = snapshot(good_repo)
    params = (good_repo / "params.yaml").read_text()
    set_params(good_repo, export__parity_tolerance=1e-12)
    try:
        result = run(["python", "-m", "stages.export"], good_repo, check=False)
    finally:
        (good_repo / "params.yaml").write_text(params)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "export: model.onnx differs from PyTorch by up to" in errors[0], result.stderr[-2000:]
    assert "over export.parity_tolerance=1e-12" in errors[0]
    assert snapshot(good_repo) == before
    assert partial_leftovers(good_repo) == []


def test_stage_failing_under_dvc_repro_is_recovered_byte_for_byte_with_dvc_checkout(good_repo):
    """`dvc repro` deletes a stage's outputs before it runs the stage; after a failure, the documented recovery
    (docs/troubleshooting.md: `git checkout` of params.yaml, dvc.lock and metrics/, then `dvc checkout`), run as
    written there, brings back the last committed ones."""
    commit_all(good_repo, "a good run")
    before = snapshot(good_repo)
    set_params(good_repo, export__parity_tolerance=1e-12)
    failed = run(["dvc", "repro"], good_repo, check=False)
    assert failed.returncode != 0 and "export.parity_tolerance" in failed.stderr
    assert not (good_repo / "models/export").exists() and not (good_repo / "metrics/export.json").exists(), (
        "dvc repro deletes the outputs of the stage it runs: the docs must not promise otherwise"
    )

    run(["bash", "-c", readme_recovery_command()], good_repo)
    assert snapshot(good_repo) == before
    assert json.loads(run(["dvc", "status", "--json"], good_repo).stdout) == {}


def test_offline_hub_ids_say_so(good_repo):
    """A Hub dataset or model while offline: one line that says to use a local folder or pkg:."""
    env_offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for stage, change, message in (
        ("download", {"data__source": "hf:stanfordnlp/imdb"}, "cannot load 'hf:stanfordnlp/imdb'"),
        ("preprocess", {"model__name": "google-bert/bert-base-uncased"}, "cannot load 'google-bert/bert-base-uncased'"),
    ):
        params = (good_repo / "params.yaml").read_text()
        set_params(good_repo, **change)
        try:
            result = run(["python", "-m", f"stages.{stage}"], good_repo, check=False, env=env_offline)
        finally:
            (good_repo / "params.yaml").write_text(params)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0] and "pkg:" in errors[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_typo_makes_dvc_repro_fail_even_when_no_stage_declares_the_key(good_repo):
    before = snapshot(good_repo)
    params = (good_repo / "params.yaml").read_text()
    set_params(good_repo, fintune={"learning_rate": 1e-4})
    try:
        result = run(["dvc", "repro"], good_repo, check=False)
    finally:
        (good_repo / "params.yaml").write_text(params)
    assert result.returncode != 0
    assert "unknown key 'fintune' in params.yaml; did you mean 'finetune'?" in result.stderr
    assert snapshot(good_repo) == before
    assert json.loads(run(["dvc", "status", "--json"], good_repo).stdout) == {}
