"""The image-classification adapter: images from every source form, RGB conversion, bad images, label names,
the pixel baseline, normalisation and augmentation (tests/pipeline/test_image_classification.py runs the
pipeline; tests/pipeline/test_image_serving.py predicts and serves)."""

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from hfx.tasks import TASKS
from hfx.training.params import Data, ParamsError
from tests.corpora import png

ImageClassificationAdapter = TASKS["image-classification"].adapter_class()


ADAPTER = ImageClassificationAdapter()


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

    from tests.project import ROOT

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
