"""Image classification: images as model rows for predict and serve, decoded, resized and normalised with Pillow
and numpy (no torch), and one label per image."""

import base64
import binascii
import io
import json
from pathlib import Path

import numpy as np

from hfx.serving.handlers.class_scores import ClassScoresHandler
from hfx.serving.input_errors import InputError, TooLarge
from hfx.serving.transforms import normalise, pixel_normalisation


class ImageInputsHandler:
    """Images in (encoded bytes, base64 or files), pixel arrays out, resized and normalised as the folder's
    `preprocessor_config.json` says, with Pillow and numpy (no torch): the fixed height-and-width processors
    (`ViTImageProcessor` and those like it)."""

    options: frozenset = frozenset()  # the request options the task takes
    capped_options: frozenset = frozenset()  # those whose value sets a request's work: the server caps them
    input_field = "image"
    processor_file = "preprocessor_config.json"
    outputs = ("logits",)
    table_columns = ("image_column",)  # predict's option naming a table's column of image paths
    max_pixels = 40_000_000  # an image, or a request's images together, larger are refused (413) before decoding

    def __init__(self, info):
        from PIL import Image

        self.labels, self.temperature = info.labels, info.temperature
        config = json.loads((info.folder / self.processor_file).read_text())
        size = config.get("size") or {}
        if config.get("do_center_crop") or not {"height", "width"} <= set(size):
            raise InputError(
                f"{info.folder}/{self.processor_file}: {config.get('image_processor_type')} with size"
                f" {size} is not served yet; hfx serves processors that resize to a height and width"
            )
        self.size = (int(size["width"]), int(size["height"])) if config.get("do_resize", True) else None
        self.resample = Image.Resampling(config.get("resample", Image.Resampling.BILINEAR))
        self.scale, self.mean, self.std = pixel_normalisation(config)

    @staticmethod
    def cut_at(max_length: int) -> None:
        raise InputError("an image model takes images at its processor's size: there are no tokens to cut")

    def warmup_rows(self) -> list:
        """One mid-grey image at the processor's size, which a server runs before it reports ready."""
        from PIL import Image

        return [self.model_input(Image.new("RGB", self.size or (224, 224), (128, 128, 128)), "warmup")]

    def parse(self, inputs) -> tuple[list[np.ndarray], bool]:
        """(pixel arrays, whether a single image was sent): each input a base64 string, with or without a
        `data:image/...;base64,` prefix."""
        single = isinstance(inputs, str)
        images = [inputs] if single else inputs
        if not isinstance(images, list) or not images:
            raise InputError("inputs must be a base64-encoded image or a non-empty list of them")
        for i, value in enumerate(images):  # every input checked before any is decoded
            if not isinstance(value, str):
                raise InputError(
                    f"{'inputs' if single else f'inputs[{i}]'} must be a base64 string, got {type(value).__name__}"
                )
        rows, pixels = [], 0
        for i, value in enumerate(images):
            where = "inputs" if single else f"inputs[{i}]"
            if value.startswith("data:"):
                _, comma, value = value.partition(",")
                if not comma:
                    raise InputError(f"{where} is a data URL without its comma: expected data:image/png;base64,<data>")
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise InputError(f"{where} is not valid base64") from None
            image = self.open(data, where, self.max_pixels - pixels)
            pixels += image.width * image.height
            rows.append(self.model_input(image, where))
        return rows, single

    def read(self, path) -> np.ndarray:
        """One image file of a folder, a table or the command line (or its encoded bytes)."""
        if isinstance(path, (bytes, bytearray)):
            return self.read_bytes(bytes(path), "image")
        if not isinstance(path, str) or not path.strip():
            raise InputError("empty path" if isinstance(path, str) or path != path else f"not a path ({path!r})")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        return self.read_bytes(data, path)

    @staticmethod
    def fields(path) -> dict:
        """The input as a JSON result shows it: {"image": its path}."""
        return {"image": path}

    def read_bytes(self, data: bytes, where: str) -> np.ndarray:
        """An encoded image as the model's input: RGB, resized, rescaled, normalised, channels first."""
        return self.model_input(self.open(data, where, self.max_pixels), where)

    def open(self, data: bytes, where: str, max_pixels: int):
        """An encoded image, its header read and nothing decoded yet; refused when over `max_pixels` (what is left
        of a request's budget) or the limit for one image."""
        from PIL import Image

        if not data:
            raise InputError(f"{where} is empty")
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise TooLarge(f"{where} is over the limit of {self.max_pixels:,} pixels") from None
        except Exception:  # noqa: BLE001 - Pillow raises several types for what it cannot identify
            raise InputError(f"{where} is not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, TIFF...)") from None
        width, height = image.size
        if width * height > self.max_pixels:
            raise TooLarge(f"{where} is {width}x{height} pixels, over the limit of {self.max_pixels:,}")
        if width * height > max_pixels:
            raise TooLarge(
                f"{where} is {width}x{height} pixels: with the images before it, over the limit of"
                f" {self.max_pixels:,} pixels a request"
            )
        return image

    def model_input(self, image, where: str) -> np.ndarray:
        try:
            image = image.convert("RGB")  # decodes: a cut-short file fails here
        except Exception as exc:  # noqa: BLE001
            raise InputError(
                f"{where} cannot be decoded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
        if self.size:
            image = image.resize(self.size, resample=self.resample)
        return normalise(np.asarray(image), self.scale, self.mean, self.std).transpose(2, 0, 1)

    @staticmethod
    def encode(rows: list) -> list:
        return rows  # parse and read give model rows already

    @staticmethod
    def windows(row) -> list:
        return [row]  # an image is one row

    @staticmethod
    def merge(window_logits: list[np.ndarray], row, item) -> np.ndarray:
        return window_logits[0]

    @staticmethod
    def length(row) -> int:
        return 1  # every image has the processor's size: one group

    @staticmethod
    def cost(row) -> int:
        """An image's share of --max-batch-tokens: its pixels in patches of 16 x 16, as a ViT sees them."""
        return max(1, row.shape[1] * row.shape[2] // 256)

    @staticmethod
    def truncated(row) -> bool:
        return False

    @staticmethod
    def pad(rows: list) -> dict[str, np.ndarray]:
        return {"pixel_values": np.stack(rows).astype(np.float32)}


class ImageClassificationHandler(ImageInputsHandler, ClassScoresHandler):
    auto_model = "AutoModelForImageClassification"
    options = ClassScoresHandler.options
