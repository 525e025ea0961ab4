"""The image-classification adapter and pipeline: images from every source form, RGB conversion, bad images,
label names, augmentation, a pretrained model with a new head, and `dvc repro` end to end (predict and serve:
tests/test_image_serving.py)."""

import io

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from hfx.tasks import TASKS
from hfx.training.params import Data, ParamsError

ImageClassificationAdapter = TASKS["image-classification"].adapter_class()

ADAPTER = ImageClassificationAdapter()


def png(mode: str, size=(8, 6), value=128) -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, size, value if mode != "RGBA" else (value, value, value, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def data(**overrides) -> Data:
    return Data(**{"source": "x", "text_column": "text", "label_column": "label", **overrides})


def test_images_as_features_bytes_or_paths_become_rgb_png(tmp_path):
    (tmp_path / "a.png").write_bytes(png("L"))
    split = Dataset.from_dict({"image": [png("L"), png("RGBA"), png("RGB")], "label": ["x", "y", "x"]})
    rows, dropped = ADAPTER.standardize(split, data(), "train")
    assert not dropped and rows["label"] == ["x", "y", "x"]
    assert {image.mode for image in rows["image"]} == {"RGB"}
    paths = Dataset.from_dict({"image": ["a.png", str(tmp_path / "a.png")], "label": ["x", "y"]})
    rows, dropped = ADAPTER.standardize(paths, data(source=str(tmp_path / "labels.csv")), "train")
    assert not dropped and [image.size for image in rows["image"]] == [(8, 6), (8, 6)]
    featured = Dataset.from_dict(
        {"image": [{"bytes": png("L"), "path": None}], "label": [1]},
        features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}),
    )
    rows, _ = ADAPTER.standardize(featured, data(), "train")
    assert rows["label"] == ["b"] and rows["image"][0].mode == "RGB"


def test_an_image_folder_and_a_table_of_relative_paths_are_sources(tmp_path):
    from hfx.training.sources import load_source

    for split, label, i in [(s, c, i) for s in ("train", "test") for c in ("boot", "coat") for i in range(3)]:
        (tmp_path / "folder" / split / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / split / label / f"{i}.png").write_bytes(png("L", value=40 * i))
    loaded, read = load_source(data(source=str(tmp_path / "folder")))
    assert sorted(loaded) == ["test", "train"] and len(loaded["train"]) == 6 and "train" in read["files"]
    rows, dropped = ADAPTER.standardize(loaded["train"], data(source=str(tmp_path / "folder")), "train")
    assert sorted(rows["label"]) == ["boot"] * 3 + ["coat"] * 3 and not dropped  # labels from the subfolders
    (tmp_path / "labels.csv").write_text("file,kind\nfolder/train/boot/0.png,boot\nfolder/test/coat/2.png,coat\n")
    table = data(source=str(tmp_path / "labels.csv"), image_column="file", label_column="kind")
    loaded, _ = load_source(table)
    rows, dropped = ADAPTER.standardize(loaded["train"], table, "train")  # paths relative to the table
    assert rows["label"] == ["boot", "coat"] and not dropped


def test_unreadable_images_are_counted_and_all_bad_is_one_line():
    split = Dataset.from_dict({"image": [png("L"), b"", png("L")[:20], b"not an image"], "label": ["x"] * 4})
    rows, dropped = ADAPTER.standardize(split, data(), "train")
    assert len(rows) == 1 and dropped["unreadable_image"] == 3
    with pytest.raises(ParamsError, match=r"no image in the test split could be read \(row 1"):
        ADAPTER.standardize(split.select([1, 2]), data(), "test")
    with pytest.raises(ParamsError, match="data.image_column: column 'pixels' not in the train split"):
        ADAPTER.standardize(split, data(image_column="pixels"), "train")


def test_label_names_rename_source_labels_and_fix_their_order():
    split = Dataset.from_dict({"image": [png("L")] * 4, "label": [0, 1, 2, 1]})
    named = data(label_names=["trouser", "bag", "coat"], exclude_labels=["2"])  # excluded by source value
    rows, dropped = ADAPTER.standardize(split, named, "train")
    assert rows["label"] == ["trouser", "bag", "bag"] and dropped == {"excluded_label:coat": 1}
    assert ADAPTER.label_names(rows, named) == ["trouser", "bag"]  # as listed, not alphabetical
    assert ADAPTER.label_names(rows, data()) == ["bag", "trouser"]
    with pytest.raises(ParamsError, match="data.label_names: no name for label '2'; it names 0, 1"):
        ADAPTER.standardize(split, data(label_names={0: "trouser", 1: "bag"}), "train")


def test_the_pixel_baseline_learns_bright_from_dark():
    rng = np.random.default_rng(0)

    def split(n):
        labels = rng.integers(0, 2, n)
        return Dataset.from_dict(
            {
                "image": [png("L", value=int(40 + 160 * y + rng.integers(0, 30))) for y in labels],
                "label": ["bright" if y else "dark" for y in labels],
            },
            features=Features({"image": Image(), "label": Value("string")}),
        )

    result = ADAPTER.baseline(split(40), split(20))
    assert result["accuracy"] == 1.0 and result["model"] == "logreg-pixels-16x16"


def test_stored_uint8_pixels_normalise_to_what_the_processor_gives():
    from transformers import AutoImageProcessor

    from tests.conftest import ROOT

    processor = AutoImageProcessor.from_pretrained(ROOT / "presets/resnet-small", backend="pil")
    images = [PILImage.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)) for i in range(3)]
    stored = ADAPTER.tokenize({"image": images, "label": ["a", "b", "a"]}, processor, None, {"a": 0, "b": 1})
    assert stored["pixel_values"].dtype == np.uint8 and stored["labels"] == [0, 1, 0]
    batch = ADAPTER.collator(processor)(
        [{"pixel_values": p, "labels": y} for p, y in zip(stored["pixel_values"], stored["labels"])]
    )
    expected = processor(images, return_tensors="np")["pixel_values"]
    assert np.allclose(batch["pixel_values"].numpy(), expected, atol=1e-6)


def test_augmentation_keeps_shape_and_content_and_varies_by_draw():
    pixels = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    augment = ADAPTER.augmentation(pad=2, flip=True, seed=0)
    outs = [augment({"pixel_values": [pixels], "labels": [0]})["pixel_values"][0] for _ in range(20)]
    assert all(out.shape == pixels.shape and out.dtype == np.uint8 for out in outs)
    assert len({out.tobytes() for out in outs}) > 5, "crops and flips differ from draw to draw"
    assert any(np.array_equal(out, pixels) or np.array_equal(out, pixels[:, :, ::-1]) for out in outs)
    again = ADAPTER.augmentation(pad=2, flip=True, seed=0)
    again.at_batch = 7  # a run resumed after 7 batches draws what the uninterrupted one drew for the 8th
    assert np.array_equal(again({"pixel_values": [pixels], "labels": [0]})["pixel_values"][0], outs[7])


@pytest.mark.slow  # a pipeline of its own
def test_an_interrupted_image_run_with_augmentation_resumes_to_the_same_weights(tmp_path):
    """Killed after a checkpoint and resumed, a run with random crops and flips ends with the weights of one
    never interrupted: the augmentation's draws follow the batch, not how many batches this process has read."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import ROOT, commit_all, make_repo, run, set_params, stage_env
    from tests.test_images import write_idx

    def image_run(path):
        repo = make_repo(path)
        (repo / "inputs").mkdir()
        rng = np.random.default_rng(0)
        for prefix, n in (("train", 240), ("t10k", 60)):
            labels = np.arange(n) % 3
            images = rng.integers(0, 60, (n, 28, 28))
            images[labels == 1] += 150
            images[labels == 2, :, ::4] = 255
            write_idx(repo / f"inputs/{prefix}-images-idx3-ubyte.gz", images)
            write_idx(repo / f"inputs/{prefix}-labels-idx1-ubyte.gz", labels)
        set_params(
            repo,
            task="image-classification",
            data__source="inputs",
            data__image_column="image",
            data__label_column="label",
            data__exclude_labels=[],
            model__name=str(ROOT / "presets/resnet-small"),
            model__init="random",
            preprocess__augment=True,
            finetune__min_steps=0,
            finetune__epochs=3,
            finetune__learning_rate=3e-3,
            finetune__batch_size=32,
            finetune__eval_steps=4,
            finetune__early_stopping_patience=None,
        )
        commit_all(repo, "image run")
        run(["dvc", "repro", "preprocess"], repo)
        return repo

    reference = image_run(tmp_path / "reference")
    run(["dvc", "repro", "finetune"], reference)
    repo = image_run(tmp_path / "resumed")
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


def test_a_pretrained_image_classifier_keeps_its_weights_and_gets_a_new_head(image_repo, tmp_path):
    """The Hub path (a local folder loads as a Hub id does): a 5-label classifier's weights, a new 3-label head."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    from tests.conftest import ROOT, commit_all, make_repo, run, set_params

    source, _ = image_repo
    pretrained = tmp_path / "pretrained"
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(ROOT / "presets/resnet-small", num_labels=5)
    AutoModelForImageClassification.from_config(config).save_pretrained(pretrained)
    AutoImageProcessor.from_pretrained(ROOT / "presets/resnet-small", backend="pil").save_pretrained(pretrained)
    repo = make_repo(tmp_path / "repo")
    shutil.copytree(source / "inputs", repo / "inputs")
    set_params(
        repo,
        task="image-classification",
        data__source="inputs",
        data__label_column="label",
        data__exclude_labels=[],
        model__name=str(pretrained),
        finetune__min_steps=0,
        finetune__epochs=1,
        finetune__learning_rate=1e-12,
        finetune__batch_size=32,
    )
    commit_all(repo)
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
