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
    featured = Dataset.from_dict({"image": [{"bytes": png("L"), "path": None}], "label": [1]},
                                 features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}))
    rows, _ = ADAPTER.standardize(featured, data(), "train")
    assert rows["label"] == ["b"] and rows["image"][0].mode == "RGB"


def test_an_image_folder_and_a_table_of_relative_paths_are_sources(tmp_path):
    from stages.sources import load_source

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
    set_params(repo, task="image-classification", data__source="inputs", data__image_column="image",
               data__label_column="label", data__label_names=["dark", "bright", "striped"], data__exclude_labels=[], model__name=str(ROOT / "presets/resnet-small"),
               model__init="random", finetune__min_steps=0, finetune__epochs=3, finetune__learning_rate=3e-3,
               finetune__batch_size=32, export__latency_queries=5)
    commit_all(repo, "tiny image pipeline")
    return repo, run(["dvc", "repro"], repo, check=False)


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
    set_params(repo, task="image-classification", data__source="inputs", data__label_column="label",
               data__exclude_labels=[], model__name=str(pretrained), finetune__min_steps=0, finetune__epochs=1,
               finetune__learning_rate=1e-12, finetune__batch_size=32)
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
    assert export["onnx_max_abs_logit_diff"] < 1e-4
    assert abs(export["accuracy"]["onnx_int8"] - export["accuracy"]["pytorch"]) <= 0.01  # static int8
    assert export["size_mb"]["onnx_int8"] < export["size_mb"]["onnx"] / 2
    assert (repo / "models/export/test_images.png").is_file()
    assert "![The first 32 test images" in (repo / "models/export/README.md").read_text()


def test_served_pixels_equal_the_image_processor_without_torch():
    """hfx resizes and normalises with Pillow and numpy as the folder's processor does with transformers."""
    from types import SimpleNamespace

    from transformers import AutoImageProcessor

    from hfx.tasks import ImageClassification as Handler
    from tests.conftest import ROOT

    folder = ROOT / "presets/resnet-small"
    handler = Handler(SimpleNamespace(folder=folder, labels=["a", "b"]))
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    for mode, size in (("L", (28, 28)), ("RGBA", (50, 37)), ("RGB", (17, 90))):
        image = PILImage.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        expected = processor(image.convert("RGB"), return_tensors="np")["pixel_values"][0]
        assert np.allclose(handler.read_bytes(buffer.getvalue(), "x"), expected, atol=1e-5), mode


def write_images(folder, rng, labels):
    """PNGs drawn as the training images were: dark, bright or striped."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(labels):
        pixels = rng.integers(0, 60, (28, 28)).astype(np.uint8)
        if label == 1:
            pixels += 150
        elif label == 2:
            pixels[:, ::4] = 255
        paths.append(folder / f"{i}-{label}.png")
        PILImage.fromarray(pixels).save(paths[-1])
    return paths


def test_predict_labels_files_a_folder_and_a_csv_of_paths_as_the_pipeline_does(image_repo, tmp_path):
    import json
    import subprocess
    import sys

    import pandas as pd
    from transformers import pipeline

    from tests.conftest import ROOT, stage_env

    repo, result = image_repo
    export = repo / "models/export"
    paths = write_images(tmp_path / "images", np.random.default_rng(5), [0, 1, 2, 1])
    (tmp_path / "images" / "broken.png").write_bytes(png("L")[:30])

    def predict(*args):
        out = subprocess.run([sys.executable, str(ROOT / "tests/no_torch.py"), "-m", "hfx.predict", *map(str, args),
                              "--model", export, "--format", "fp32"], cwd=ROOT, env=stage_env(), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return [json.loads(line) for line in out.stdout.splitlines()], out.stderr

    expected = pipeline("image-classification", model=str(export))([str(p) for p in paths])
    files, _ = predict(*paths)
    assert [row["image"] for row in files] == [str(p) for p in paths]
    assert [row["label"] for row in files] == [e[0]["label"] for e in expected] == ["dark", "bright", "striped", "bright"]
    assert all(abs(row["score"] - e[0]["score"]) < 1e-4 for row, e in zip(files, expected))
    folder, warnings = predict(tmp_path / "images")  # sorted paths; the cut-short file is reported and skipped
    assert [row["label"] for row in folder] == ["dark", "bright", "striped", "bright"]
    assert "broken.png cannot be decoded" in warnings or "broken.png is not an image" in warnings
    table = tmp_path / "images.csv"
    pd.DataFrame({"id": [1, 2], "file": ["images/0-0.png", "images/2-2.png"]}).to_csv(table, index=False)
    rows, _ = predict(table, "--image-column", "file", "--output", tmp_path / "labelled.csv")
    assert pd.read_csv(tmp_path / "labelled.csv")[["id", "label"]].values.tolist() == [[1, "dark"], [2, "striped"]]


def test_serve_takes_raw_and_base64_images_and_answers_bad_ones_with_a_4xx(image_repo, tmp_path):
    import base64
    import json

    from tests.test_serve import Server

    repo, result = image_repo
    dark, bright = (path.read_bytes() for path in write_images(tmp_path, np.random.default_rng(6), [0, 1]))
    server = Server(repo / "models/export")
    try:
        status, body = server.request("POST", "/predict", dark, headers={"Content-Type": "image/png"})
        assert status == 200 and json.loads(body)[0]["label"] == "dark"
        status, batch = server.predict({"inputs": [base64.b64encode(bright).decode(),
                                                   "data:image/png;base64," + base64.b64encode(dark).decode()],
                                        "top_k": 1})
        assert status == 200 and [r[0]["label"] for r in batch] == ["bright", "dark"]
        huge = io.BytesIO()
        PILImage.new("L", (8000, 6000)).save(huge, format="PNG")  # 48M pixels, a few kB of PNG
        for payload, headers, expected in (
                (b"not an image", {"Content-Type": "image/png"}, 422),
                (b"", {"Content-Type": "image/jpeg"}, 422),
                (dark[:40], {"Content-Type": "image/png"}, 422),
                (huge.getvalue(), {"Content-Type": "image/png"}, 413),
                (json.dumps({"inputs": "%%% not base64"}).encode(), {}, 422),
                (json.dumps({"inputs": [base64.b64encode(b"text").decode()]}).encode(), {}, 422),
                (json.dumps({"inputs": 3}).encode(), {}, 422)):
            status, answer = server.request("POST", "/predict", payload, headers=headers)
            assert status == expected, (payload[:20], answer)
            assert "\n" not in json.loads(answer)["error"]
        info = json.loads(server.get("/info")[1])
        assert info["task"] == "image-classification" and info["labels"] == ["dark", "bright", "striped"]
        assert server.get("/health")[0] == 200
    finally:
        assert server.stop() == 0


def test_a_center_cropping_processor_is_refused_in_one_line_when_the_model_loads(tmp_path):
    import json

    from hfx.model import LoadedModel, ModelError

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["ConvNextForImageClassification"],
                                                      "id2label": {"0": "a", "1": "b"}}))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875}))
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match=r"ConvNextImageProcessor with size \{'shortest_edge': 224\} is not served yet"):
        LoadedModel(tmp_path, "fp32")
