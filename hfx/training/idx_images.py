"""Image sources for `task: image-classification`: MNIST-style IDX files as an image dataset.

`sources.load_source` reads a folder of IDX files with `read_idx`, such as Debian's Fashion-MNIST
(`/usr/share/datasets/fashion-mnist`).
"""

import gzip
import io
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from hfx.training.params import ParamsError

IDX_SPLITS = {"train": "train", "t10k": "test", "test": "test"}  # MNIST's file prefixes


def is_idx_folder(folder: Path) -> bool:
    return any(folder.glob("*-images-idx3-ubyte*"))


def read_idx_array(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): two zero bytes, a type byte, the rank, big-endian sizes, the data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ParamsError(f"data.source: {path.name} is not an IDX file of unsigned bytes")
    rank = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise ParamsError(f"data.source: {path.name} holds {data.size} bytes for a {shape} array; is it cut short?")
    return data.reshape(shape)


def read_idx(folder: Path) -> DatasetDict:
    """`<split>-images-idx3-ubyte[.gz]` beside `<split>-labels-idx1-ubyte[.gz]` (`t10k` is test): PNG images in
    an `image` column, integer classes in `label`."""
    from PIL import Image as PILImage

    splits = {}
    for images_file in sorted(folder.glob("*-images-idx3-ubyte*")):
        prefix = images_file.name.split("-images-")[0]
        labels_file = next(iter(sorted(folder.glob(f"{prefix}-labels-idx1-ubyte*"))), None)
        if labels_file is None:
            raise ParamsError(f"data.source: {images_file.name} has no {prefix}-labels-idx1-ubyte file beside it")
        images, labels = read_idx_array(images_file), read_idx_array(labels_file)
        if len(images) != len(labels):
            raise ParamsError(
                f"data.source: {images_file.name} has {len(images)} images and {labels_file.name} {len(labels)} labels"
            )
        encoded = []
        for pixels in images:
            buffer = io.BytesIO()
            PILImage.fromarray(pixels).save(buffer, format="PNG")
            encoded.append({"bytes": buffer.getvalue(), "path": None})
        classes = ClassLabel(names=[str(i) for i in range(int(labels.max()) + 1)])
        splits[IDX_SPLITS.get(prefix, prefix)] = Dataset.from_dict(
            {"image": encoded, "label": labels.tolist()}, features=Features({"image": Image(), "label": classes})
        )
    if not splits:
        raise ParamsError(f"data.source: no <split>-images-idx3-ubyte[.gz] files in {folder}")
    return DatasetDict(splits)
