"""`hfx push` up to the upload: the Hub cannot be reached here, so the upload itself is not exercised. What is:
the file list it sends, the card it requires, and each refusal, made before any network call."""

import shutil
import subprocess
import sys

import pytest

from tests.project import ROOT, stage_env


def push(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hfx.push", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**stage_env(), **(env or {})},
        timeout=120,
    )


@pytest.fixture
def folder(exported_model, tmp_path):
    return shutil.copytree(exported_model, tmp_path / "export")


def listed(result: subprocess.CompletedProcess) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines()[1:]]


def test_a_dry_run_lists_every_file_of_the_folder_and_no_hidden_one(folder):
    (folder / ".README.md.partial").write_text("an interrupted write")
    result = push("--repo", "my-org/sentiment", "--model", str(folder), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("my-org/sentiment (private): ")
    expected = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert listed(result) == expected
    assert {"README.md", "config.json", "model.safetensors", "model.onnx", "model_quantized.onnx"} <= set(expected)
    public = push("--repo", "my-org/sentiment", "--model", str(folder), "--dry-run", "--public")
    assert public.stdout.startswith("my-org/sentiment (public): ")


def test_without_a_token_nothing_is_sent(folder, tmp_path):
    env = {"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")}  # no token in the environment or saved by a login
    result = push("--repo", "my-org/sentiment", "--model", str(folder), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no Hugging Face token: set HF_TOKEN (a write token from https://huggingface.co/settings/tokens)"
    ]


def test_a_folder_without_its_card_a_readable_card_or_weights_is_refused_before_the_token_is_read(folder):
    env = {"HF_TOKEN": "hf_not_a_real_token"}  # were the checks skipped, this would reach for the network
    (folder / "README.md").rename(folder / "CARD.md")
    no_card = push("--repo", "my-org/sentiment", "--model", str(folder), env=env)
    assert no_card.returncode == 1 and "has no model card (README.md)" in no_card.stderr

    (folder / "README.md").write_text("---\nbase_model: [unclosed\n---\n# a card\n")
    broken = push("--repo", "my-org/sentiment", "--model", str(folder), env=env)
    assert broken.returncode == 1 and "has metadata the Hub cannot read" in broken.stderr

    (folder / "CARD.md").rename(folder / "README.md")
    for weights in ("model.safetensors", "model.onnx", "model_quantized.onnx"):
        (folder / weights).unlink()
    no_weights = push("--repo", "my-org/sentiment", "--model", str(folder), env=env)
    assert no_weights.returncode == 1 and "is not a model folder" in no_weights.stderr
    for result in (no_card, broken, no_weights):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("repo", ["sentiment", "my-org/sentiment/extra", "my org/sentiment"])
def test_a_repository_id_that_is_not_owner_slash_name_is_refused(folder, repo):
    result = push("--repo", repo, "--model", str(folder), "--dry-run")
    assert result.returncode == 1 and f"--repo: '{repo}' is not a Hub repository id" in result.stderr


def test_make_hub_push_names_the_missing_repo():
    result = subprocess.run(
        ["make", "--no-print-directory", "hub-push"], cwd=ROOT, capture_output=True, text=True, env=stage_env()
    )
    assert result.returncode == 2 and "REPO is required" in result.stderr
