"""Image data (`task: image-classification` is being built): MNIST-style IDX files read as images and labels."""

import gzip

import numpy as np
import pytest

from hfx.training.idx_images import is_idx_folder, read_idx
from hfx.training.params import ParamsError
from tests.corpora import write_idx


def idx_folder(folder, sizes=(("train", 12), ("t10k", 5)), compress=True):
    sizes = dict(sizes)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in sizes.items():
        images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 3, n)
        labels[:3] = [0, 1, 2]
        suffix = ".gz" if compress else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        arrays[prefix] = images, labels
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_are_read_as_images_and_labels(tmp_path, compress):
    arrays = idx_folder(tmp_path, compress=compress)
    assert is_idx_folder(tmp_path)
    loaded = read_idx(tmp_path)
    assert sorted(loaded) == ["test", "train"] and len(loaded["train"]) == 12 and len(loaded["test"]) == 5
    first = loaded["test"][0]
    assert np.array_equal(np.asarray(first["image"]), arrays["t10k"][0][0]), "pixels survive the PNG round trip"
    assert loaded["train"]["label"] == arrays["train"][1].tolist()
    assert loaded["train"].features["label"].names == ["0", "1", "2"]


def test_bad_idx_files_are_one_line(tmp_path):
    idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ParamsError, match="t10k-images-idx3-ubyte.gz has no t10k-labels-idx1-ubyte"):
        read_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not idx"))
    with pytest.raises(ParamsError, match="not an IDX file"):
        read_idx(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParamsError, match="no <split>-images-idx3-ubyte"):
        read_idx(empty)


def test_the_preset_builds_a_model_without_weights_and_processes_greyscale_images():
    from PIL import Image
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    from tests.project import ROOT

    preset = ROOT / "presets/resnet-small"
    assert not list(preset.glob("*.safetensors")), "a preset is a config: the model is trained from scratch"
    processor = AutoImageProcessor.from_pretrained(preset, backend="pil")
    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(preset, num_labels=10))
    inputs = processor([Image.fromarray(np.zeros((28, 28), np.uint8))] * 2, return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (2, 3, 32, 32)
    assert tuple(model(**inputs).logits.shape) == (2, 10)
