"""The image-classification adapter (in progress): images from any column form, RGB conversion, bad images."""

import io

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from stages.params import Data, ParamsError
from stages.tasks.image_classification import ImageClassification

ADAPTER = ImageClassification()


def png(mode: str, size=(8, 6), value=128) -> bytes:
    buffer = io.BytesIO()
    PILImage.new(mode, size, value if mode != "RGBA" else (value, value, value, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def data(**overrides) -> Data:
    return Data(**{"source": "x", "text_column": "image", "label_column": "label", **overrides})


def test_images_as_features_bytes_or_paths_become_rgb_png(tmp_path):
    (tmp_path / "a.png").write_bytes(png("L"))
    split = Dataset.from_dict({"image": [png("L"), png("RGBA"), png("RGB")], "label": ["x", "y", "x"]})
    rows, dropped = ADAPTER.standardize(split, data(), "train")
    assert not dropped and rows["label"] == ["x", "y", "x"]
    assert {image.mode for image in rows["image"]} == {"RGB"}
    paths = Dataset.from_dict({"image": ["a.png", str(tmp_path / "a.png")], "label": ["x", "y"]})
    rows, dropped = ADAPTER.standardize(paths, data(), "train", root=tmp_path)
    assert not dropped and [image.size for image in rows["image"]] == [(8, 6), (8, 6)]
    featured = Dataset.from_dict({"image": [{"bytes": png("L"), "path": None}], "label": [1]},
                                 features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}))
    rows, _ = ADAPTER.standardize(featured, data(), "train")
    assert rows["label"] == ["b"] and rows["image"][0].mode == "RGB"


def test_unreadable_images_are_counted_and_all_bad_is_one_line():
    split = Dataset.from_dict({"image": [png("L"), b"", png("L")[:20], b"not an image"], "label": ["x"] * 4})
    rows, dropped = ADAPTER.standardize(split, data(), "train")
    assert len(rows) == 1 and dropped["unreadable_image"] == 3
    with pytest.raises(ParamsError, match=r"no image in the test split could be read \(row 1"):
        ADAPTER.standardize(split.select([1, 2]), data(), "test")
    with pytest.raises(ParamsError, match="data.text_column: column 'pixels' not in the train split"):
        ADAPTER.standardize(split, data(text_column="pixels"), "train")


def test_the_pixel_baseline_learns_bright_from_dark():
    rng = np.random.default_rng(0)
    def split(n):
        labels = rng.integers(0, 2, n)
        return Dataset.from_dict({"image": [png("L", value=int(40 + 160 * y + rng.integers(0, 30))) for y in labels],
                                  "label": ["bright" if y else "dark" for y in labels]},
                                 features=Features({"image": Image(), "label": Value("string")}))
    result = ADAPTER.baseline(split(40), split(20))
    assert result["accuracy"] == 1.0 and result["model"] == "logreg-pixels-16x16"


def test_stored_uint8_pixels_normalise_to_what_the_processor_gives():
    from transformers import AutoImageProcessor

    from tests.conftest import ROOT

    processor = AutoImageProcessor.from_pretrained(ROOT / "presets/resnet-small", backend="pil")
    images = [PILImage.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)) for i in range(3)]
    stored = ADAPTER.tokenize({"image": images, "label": ["a", "b", "a"]}, processor, None, {"a": 0, "b": 1})
    assert stored["pixel_values"].dtype == np.uint8 and stored["labels"] == [0, 1, 0]
    batch = ADAPTER.collator(processor)([{"pixel_values": p, "labels": y}
                                         for p, y in zip(stored["pixel_values"], stored["labels"])])
    expected = processor(images, return_tensors="np")["pixel_values"]
    assert np.allclose(batch["pixel_values"].numpy(), expected, atol=1e-6)


def test_augmentation_keeps_shape_and_content_and_varies_by_draw():
    pixels = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    augment = ADAPTER.augmentation(pad=2, flip=True, seed=0)
    outs = [augment({"pixel_values": [pixels], "labels": [0]})["pixel_values"][0] for _ in range(20)]
    assert all(out.shape == pixels.shape and out.dtype == np.uint8 for out in outs)
    assert len({out.tobytes() for out in outs}) > 5, "crops and flips differ from draw to draw"
    assert any(np.array_equal(out, pixels) or np.array_equal(out, pixels[:, :, ::-1]) for out in outs)


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory):
    """The whole pipeline on generated 28x28 images (IDX files, as Fashion-MNIST ships) and the ResNet preset,
    trained from scratch."""
    from tests.conftest import ROOT, commit_all, make_repo, run, set_params
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
    set_params(repo, task="image-classification", data__source="inputs", data__text_column="image",
               data__label_column="label", data__exclude_labels=[], model__name=str(ROOT / "presets/resnet-small"),
               model__init="random", finetune__min_steps=0, finetune__epochs=3, finetune__learning_rate=3e-3,
               finetune__batch_size=32, export__latency_queries=5)
    commit_all(repo, "tiny image pipeline")
    return repo, run(["dvc", "repro"], repo, check=False)


def test_repro_classifies_images_end_to_end(image_repo):
    import json

    repo, result = image_repo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert metrics["accuracy"] > 0.9 and metrics["baseline"]["model"].startswith("logreg-pixels")
    export = json.loads((repo / "metrics/export.json").read_text())
    assert export["onnx_max_abs_logit_diff"] < 1e-4 and export["accuracy"]["onnx_int8"] > 0.9
