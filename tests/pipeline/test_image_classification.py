"""The image-classification adapter and pipeline: images from every source form, RGB conversion, bad images,
label names, augmentation, a pretrained model with a new head, and `dvc repro` end to end (predict and serve:
tests/pipeline/test_image_serving.py)."""

import numpy as np
from datasets import Dataset


def test_an_interrupted_image_run_with_augmentation_resumes_to_the_same_weights(image_repo, tmp_path):
    """Killed after a checkpoint and resumed, a run with random crops and flips ends with the weights of one
    never interrupted (the image run): the augmentation's draws follow the batch, not how many batches this
    process has read."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    from tests.project import IMAGE_RUN, ROOT, run, stage_env, tiny_repo

    reference, _ = image_repo
    inputs = lambda folder: shutil.copytree(reference / "inputs", folder, dirs_exist_ok=True)  # noqa: E731
    repo = tiny_repo(tmp_path / "repo", ROOT / "presets/resnet-small", inputs, **IMAGE_RUN)
    run(["dvc", "repro", "preprocess"], repo)
    checkpoints = lambda: list((repo / "models/checkpoints").glob("checkpoint-*/trainer_state.json"))  # noqa: E731
    proc = subprocess.Popen(
        ["dvc", "repro", "finetune"],
        cwd=repo,
        env=stage_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not checkpoints() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoints() and not (repo / "models/finetuned").exists(), "killed after a checkpoint, before the end"
    resumed = run(["dvc", "repro", "finetune"], repo)
    assert "finetune: resuming from models/checkpoints/checkpoint-" in resumed.stdout
    weights = "models/finetuned/model.safetensors"
    assert (repo / weights).read_bytes() == (reference / weights).read_bytes()
    # The kept checkpoint may predate the kill: the curves after it show the batches trained on after resuming.
    for curve in ("loss", "grad_norm", "eval/loss"):
        tsv = f"metrics/train/plots/metrics/{curve}.tsv"
        assert (repo / tsv).read_text() == (reference / tsv).read_text(), curve


def test_a_pretrained_image_classifier_keeps_its_weights_and_gets_a_new_head(image_repo, tmp_path):
    """The Hub path (a local folder loads as a Hub id does): a 5-label classifier's weights, a new 3-label head."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    from tests.project import ROOT, run, tiny_repo

    source, _ = image_repo
    pretrained = tmp_path / "pretrained"
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(ROOT / "presets/resnet-small", num_labels=5)
    AutoModelForImageClassification.from_config(config).save_pretrained(pretrained)
    AutoImageProcessor.from_pretrained(ROOT / "presets/resnet-small", backend="pil").save_pretrained(pretrained)
    repo = tiny_repo(
        tmp_path / "repo",
        pretrained,
        lambda folder: shutil.copytree(source / "inputs", folder, dirs_exist_ok=True),
        task="image-classification",
        data__label_column="label",
        finetune__epochs=1,
        finetune__learning_rate=1e-12,
        finetune__batch_size=32,
    )
    result = run(["dvc", "repro", "finetune"], repo)
    assert "comes with a 5-label head; a new 3-label head is trained in its place" in result.stdout
    before, after = load_file(pretrained / "model.safetensors"), load_file(repo / "models/finetuned/model.safetensors")
    convolutions = [name for name in before if "convolution" in name]
    assert convolutions and all(torch.allclose(before[n], after[n], atol=1e-6) for n in convolutions)
    assert after["classifier.1.weight"].shape[0] == 3


def test_repro_classifies_images_end_to_end(image_repo):
    import json

    repo, result = image_repo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert metrics["accuracy"] > 0.9 and metrics["baseline"]["model"].startswith("logreg-pixels")
    from datasets import load_from_disk
    from transformers import AutoImageProcessor

    # preprocess.augment is on: the stored training images are the plain resized ones, augmented only as read
    processor = AutoImageProcessor.from_pretrained(repo / "models/export", backend="pil")
    raw = Dataset.from_parquet(str(repo / "data/raw/train.parquet")).select(range(4))
    stored = np.asarray(load_from_disk(str(repo / "data/processed"))["train"].select(range(4))["pixel_values"])
    expected = processor(list(raw["image"]), do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
    assert np.array_equal(stored, expected.astype(np.uint8))
    labels = json.loads((repo / "data/processed/labels.json").read_text())["id2label"]
    assert labels == {"0": "dark", "1": "bright", "2": "striped"}  # data.label_names, in its order
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["fp32_max_abs_logit_diff"] < 1e-4
    assert abs(export["accuracy"]["int8"] - export["accuracy"]["pytorch"]) <= 0.01  # static int8
    assert export["size_mb"]["int8"] < export["size_mb"]["fp32"] / 2
    assert (repo / "models/export/test_images.png").is_file()
    assert "![The first 32 test images" in (repo / "models/export/README.md").read_text()
    card = json.loads((repo / "metrics/data.json").read_text())  # the data card's image sizes, and no text lengths
    assert card["image_sizes"] == {name: {"28x28": rows} for name, rows in card["rows"].items()}
    assert "Image sizes in test: 28x28 (60)" in (repo / "models/export/README.md").read_text()
    assert json.loads((repo / "metrics/data_plots/lengths.json").read_text()) == {}
