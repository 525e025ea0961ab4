"""Image classification: one label per image.

Images are decoded and converted to RGB once (download), resized to the processor's size and stored as uint8
(preprocess: small on disk, fast to read). Normalisation runs per batch in the collator, and training-time
augmentation as training rows are read (`train_transform`, through `set_transform`): neither is stored.
"""

import io
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, Value
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from transformers import AutoImageProcessor

from hfx.serving.transforms import normalise, pixel_normalisation
from hfx.training.adapters.common import DROPPED, clean_rows, column_batches, excluded, read_label, require_columns
from hfx.training.adapters.single_label import SingleLabelAdapter
from hfx.training.params import Data, Model, Params, ParamsError, Preprocess
from hfx.training.sources import model_path


def open_image(value, root: Path | None = None):
    """A PIL image in RGB from what a dataset holds: a decoded image, {bytes, path}, raw bytes or a path."""
    from PIL import Image as PILImage

    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        image = PILImage.open(io.BytesIO(value))
    elif isinstance(value, str):
        path = Path(value)
        image = PILImage.open(path if path.is_absolute() or root is None else root / path)
    elif hasattr(value, "convert"):
        image = value
    else:
        raise ValueError(f"not an image: {type(value).__name__}")
    image.load()  # decode now: a truncated file fails here, not in the middle of training
    return image if image.mode == "RGB" else image.convert("RGB")


class ImageClassificationAdapter(SingleLabelAdapter):
    name = "image-classification"
    auto_model = "AutoModelForImageClassification"
    columns = ("image", "label")
    input_key = "image_column"  # the data.* key naming the input column

    def input_column(self, data: Data) -> str:
        return data.image_column

    item_column = "row"  # predictions.csv: the test row of each image
    truncated_unit = None  # nothing is cut
    group_by_length = False  # every image has the processor's size
    quantize_op_types = None  # every op static int8 can take (Conv, Gemm, MatMul, Add...)
    static_int8 = True  # activations too, with ranges from validation images (formats.quantize)

    def served_inputs(self, raw_test: Dataset) -> list:
        """The test split's inputs as a user hands them to predict and serve: encoded image files (PNG)."""
        return [image["bytes"] for image in raw_test.cast_column("image", Image(decode=False))["image"]]

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {image (PNG, RGB), label}; unreadable images and missing labels are dropped and counted,
        and a split where no image can be read is an error naming the first bad one. Relative image paths are
        read from the source's folder (a table's own folder)."""
        source = Path(data.source)
        require_columns(split, data, split_name, self.input_key)
        feature = split.features[data.label_column]
        names = feature.names if isinstance(feature, ClassLabel) else None
        images = (
            split.cast_column(data.image_column, Image(decode=False))
            if isinstance(split.features[data.image_column], Image)
            else split
        )
        features = Features(
            {"image": Image(), "label": Value("string"), "error": Value("string"), DROPPED: Value("string")}
        )
        kept, dropped, first_error = clean_rows(
            images, self._clean, features, data=data, names=names, root=source if source.is_dir() else source.parent
        )
        if len(kept) == 0 and dropped["unreadable_image"]:
            raise ParamsError(f"data.image_column: no image in the {split_name} split could be read ({first_error})")
        return kept, dropped

    def _clean(self, batch: dict, indices: list[int], data: Data, names: list[str] | None, root: Path) -> dict:
        rows = {"image": [], "label": [], "error": [], DROPPED: []}
        for index, value, raw_label in zip(indices, batch[data.image_column], batch[data.label_column]):
            label, image, reason, error = read_label(raw_label, names, data), None, None, None
            if label is None:
                reason = "missing_label"
            elif excluded(label, data):
                reason = f"excluded_label:{label}"
            else:
                try:
                    buffer = io.BytesIO()
                    open_image(value, root).save(buffer, format="PNG")
                    image = {"bytes": buffer.getvalue(), "path": None}
                except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file
                    reason = "unreadable_image"
                    error = f"row {index + 1}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            rows["image"].append(image), rows["label"].append(label if reason is None else None)
            rows["error"].append(error), rows[DROPPED].append(reason)
        return rows

    def tokenize(self, batch: dict, processor, settings, label2id: dict) -> dict:
        """Images resized (as the processor does) and stored as uint8: a quarter of float32's bytes, and
        normalisation is one multiply-add per batch in the collator."""
        images = [open_image(value) for value in batch["image"]]
        pixels = processor(images, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
        return {
            "pixel_values": pixels.astype(np.uint8),
            "labels": [label2id[label] for label in batch["label"]],
            "truncated": [0] * len(images),
            "units": [1] * len(images),
        }

    def collator(self, processor):
        return NormalizeImages(processor)

    def train_transform(self, settings: Preprocess, seed: int = 0):
        return self.augmentation(seed=seed) if settings.augment else None

    def augmentation(self, pad: int = 4, flip: bool = True, seed: int = 0):
        return Augmentation(pad, flip, seed)

    def check_settings(self, model: Model, settings: Preprocess) -> None:
        """Nothing to check: images are resized to the processor's size."""

    def load_processor(self, model: Model):
        # The PIL backend: torchvision, the default one, does not import beside the pinned torch.
        return AutoImageProcessor.from_pretrained(model_path(model), revision=model.revision, backend="pil")

    def saved_processor(self, folder):
        return AutoImageProcessor.from_pretrained(folder, backend="pil")

    def input_names(self, processor) -> list[str]:
        return ["pixel_values"]

    def sample_inputs(self, processor) -> tuple[dict, dict]:
        from PIL import Image as PILImage

        images = [PILImage.new("RGB", (40, 30)), PILImage.new("RGB", (30, 40))]
        pixels = processor(images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels}, {"pixel_values": {0: "batch"}}

    def prepare_saved(self, model, processor, params: Params) -> None:
        pass

    def input_summary(self, split: Dataset, shown: int = 10) -> dict:
        """The data card's image sizes: how many images of each width x height, the most frequent `shown`."""
        from PIL import Image as PILImage

        sizes = Counter()
        for batch in column_batches(split.cast_column("image", Image(decode=False)), "image"):
            sizes.update("{}x{}".format(*PILImage.open(io.BytesIO(image["bytes"])).size) for image in batch.to_pylist())
        return {"image_sizes": dict(sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:shown])}

    def card_figures(self, out: Path, test: Dataset, predictions_csv: str, count: int = 32) -> list[tuple[str, str]]:
        """The first `count` test images as the model sees them (processed), with predicted and true labels."""
        import pandas as pd

        test = test.select(range(min(count, len(test))))
        predictions = pd.read_csv(predictions_csv, dtype=str).head(len(test))
        images = [np.asarray(pixels, dtype=np.uint8).transpose(1, 2, 0) for pixels in test["pixel_values"]]
        image_grid(out / "test_images.png", images, list(predictions["actual"]), list(predictions["predicted"]))
        return [
            ("test_images.png", f"The first {len(test)} test images: predicted label (true label in red where wrong)")
        ]

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None, side: int = 16) -> dict:
        """Logistic regression on greyscale pixels downscaled to side x side: the bar a network must clear."""

        def pixels(split):
            return np.stack(
                [
                    np.asarray(open_image(v).convert("L").resize((side, side))).ravel() / 255.0
                    for v in split.cast_column("image", Image(decode=False))["image"]
                ]
            )

        classifier = LogisticRegression(max_iter=1000, C=1.0)
        classifier.fit(pixels(train), list(train["label"]))
        predictions = classifier.predict(pixels(test))
        truth = list(test["label"])
        _, _, f1, _ = precision_recall_fscore_support(truth, predictions, average="macro", zero_division=0)
        return {
            "model": f"logreg-pixels-{side}x{side}",
            "accuracy": float(accuracy_score(truth, predictions)),
            "f1_macro": float(f1),
        }


def image_grid(path: Path, images: list, actual: list[str], predicted: list[str], columns: int = 8) -> None:
    """Images with their predicted label above them, and the true one in red where the model is wrong."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, truth, guess in zip(axes.ravel(), images, actual, predicted):
        ax.imshow(image)
        right = truth == guess
        ax.set_title(guess if right else f"{guess}\n(true: {truth})", fontsize=8, color="black" if right else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class Augmentation:
    """Training-time augmentation, applied as rows are read (`set_transform`) and never stored: a random crop of
    the image padded by `pad` pixels (edges repeated) and, with `flip`, a random horizontal flip.

    Its random state is derived from the seed and the number of the batch it is called for, so a run resumed from
    a checkpoint draws for each batch what an uninterrupted run draws: the Trainer skips the batches a checkpoint
    has seen without reading them, and `at_batch` (set when training starts, from the checkpoint's step) says
    where the count stands."""

    def __init__(self, pad: int, flip: bool, seed: int):
        self.pad, self.flip, self.seed = pad, flip, seed
        self.at_batch = 0

    def __call__(self, batch: dict) -> dict:
        rng = np.random.default_rng([self.seed, self.at_batch])
        self.at_batch += 1
        out, pad = [], self.pad
        for pixels in batch["pixel_values"]:
            pixels = np.asarray(pixels, dtype=np.uint8)
            height, width = pixels.shape[-2:]
            padded = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
            top, left = rng.integers(0, 2 * pad + 1, size=2)
            pixels = padded[:, top : top + height, left : left + width]
            out.append(pixels[:, :, ::-1] if self.flip and rng.random() < 0.5 else pixels)
        return {**batch, "pixel_values": out}


class NormalizeImages:
    """Batches uint8 images into the float tensor the model takes: rescaled and normalised as the processor
    would (its rescale factor, mean and std)."""

    def __init__(self, processor):
        self.scale, self.mean, self.std = pixel_normalisation(processor.to_dict())

    def __call__(self, features: list[dict]) -> dict:
        import torch

        pixels = np.stack([np.asarray(f["pixel_values"], dtype=np.uint8) for f in features])  # channels first
        normalised = normalise(pixels.transpose(0, 2, 3, 1), self.scale, self.mean, self.std).transpose(0, 3, 1, 2)
        batch = {"pixel_values": torch.from_numpy(np.ascontiguousarray(normalised))}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch
