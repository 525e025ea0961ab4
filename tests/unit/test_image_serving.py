"""The image handler without torch: pixels as transformers' processor makes them, and processors it refuses
(tests/pipeline/test_image_serving.py serves a real export)."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage


def test_served_pixels_equal_the_image_processor_without_torch():
    """hfx resizes and normalises with Pillow and numpy as the folder's processor does with transformers."""
    from types import SimpleNamespace

    from transformers import AutoImageProcessor

    from hfx.tasks import TASKS

    Handler = TASKS["image-classification"].handler_class()
    from tests.project import ROOT

    folder = ROOT / "presets/resnet-small"
    handler = Handler(SimpleNamespace(folder=folder, labels=["a", "b"], temperature=1.0))
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    for mode, size in (("L", (28, 28)), ("RGBA", (50, 37)), ("RGB", (17, 90))):
        image = PILImage.fromarray(
            np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        ).convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        expected = processor(image.convert("RGB"), return_tensors="np")["pixel_values"][0]
        assert np.allclose(handler.read_bytes(buffer.getvalue(), "x"), expected, atol=1e-5), mode


def test_a_center_cropping_processor_is_refused_in_one_line_when_the_model_loads(tmp_path):
    import json

    from hfx.serving.folder import ModelError
    from hfx.serving.loaded_model import LoadedModel

    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["ConvNextForImageClassification"], "id2label": {"0": "a", "1": "b"}})
    )
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875}
        )
    )
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(
        ModelError, match=r"ConvNextImageProcessor with size \{'shortest_edge': 224\} is not served yet"
    ):
        LoadedModel(tmp_path, "fp32")
