"""Same params, same numbers: two runs agree to the last digit, and a killed run resumes to the same result."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run, stage_env, tiny_pipeline_repo

RESULTS = ("metrics/eval.json", "models/finetuned/model.safetensors")


def training_repo(path: Path, tiny_model: Path) -> Path:
    return tiny_pipeline_repo(path, tiny_model, {"train": 480, "test": 60}, finetune__epochs=5,
                              finetune__learning_rate=3e-3, finetune__warmup_ratio=0.0, finetune__batch_size=16,
                              finetune__early_stopping_patience=None, finetune__eval_steps=10)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model) -> Path:
    repo = training_repo(tmp_path_factory.mktemp("reference") / "repo", tiny_model)
    run(["dvc", "repro", "evaluate"], repo)
    return repo


def test_two_runs_give_identical_metrics_and_weights(reference, tmp_path, tiny_model):
    again = training_repo(tmp_path / "repo", tiny_model)
    run(["dvc", "repro", "evaluate"], again)
    for name in RESULTS:
        assert (again / name).read_bytes() == (reference / name).read_bytes(), name


def test_train_metrics_report_the_kept_checkpoint_not_the_last_evaluation(reference):
    def curve(name: str) -> pd.Series:
        return pd.read_csv(reference / f"metrics/train/plots/metrics/eval/{name}.tsv", sep="\t").set_index("step")[name]

    f1 = curve("f1_macro")
    kept_step = f1.idxmax()  # the first best: the Trainer keeps a checkpoint only when the metric improves
    assert kept_step != f1.index[-1], "this run must not keep its last evaluation, or the test could not tell"
    reported = json.loads((reference / "metrics/train/metrics.json").read_text())["eval"]
    for name in ("f1_macro", "accuracy", "loss"):
        assert reported[name] == pytest.approx(curve(name)[kept_step], abs=1e-12), name
    assert reported["loss"] != pytest.approx(curve("loss").iloc[-1], abs=1e-12)


def complete_checkpoints(repo: Path) -> list[Path]:
    return [p.parent for p in (repo / "models/checkpoints").glob("checkpoint-*/trainer_state.json")]


def test_killed_finetune_resumes_from_its_checkpoint_to_the_same_result(reference, tmp_path, tiny_model):
    repo = training_repo(tmp_path / "repo", tiny_model)
    run(["dvc", "repro", "preprocess"], repo)
    proc = subprocess.Popen(["dvc", "repro", "evaluate"], cwd=repo, env=stage_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not complete_checkpoints(repo) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage with it, as a lost machine would
    proc.wait()
    assert complete_checkpoints(repo), "finetune never wrote a checkpoint"
    assert not (repo / "models/finetuned").exists(), "a killed finetune must leave no model behind"

    resumed = run(["dvc", "repro", "evaluate"], repo)
    assert "finetune: resuming from models/checkpoints/checkpoint-" in resumed.stdout
    for name in RESULTS:
        assert (repo / name).read_bytes() == (reference / name).read_bytes(), name
    assert not complete_checkpoints(repo), "checkpoints are removed once the model is saved"
