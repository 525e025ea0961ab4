"""The numbers both halves must compute alike, defined once: scores from logits and a temperature, and image
pixels normalised as a processor's config says. Training reads them so that what evaluate measures and what
finetune feeds the model are what predict and serve compute. numpy only."""

import numpy as np


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) over the last axis: the scores predict and serve answer with."""
    scaled = logits / np.asarray(temperature, dtype=logits.dtype)
    exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Each label's own score, 1 / (1 + exp(-logit)) (multi-label), in float64 so that a score compared with its
    threshold decides alike in every format."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))  # no overflow for large negative logits


def pixel_normalisation(config: dict) -> tuple[np.float32, np.ndarray, np.ndarray]:
    """(scale, mean, std) from an image processor's config (preprocessor_config.json, or the processor's
    to_dict()): a channel's value becomes (pixel * scale - mean) / std, as transformers' processors compute it."""
    scale = np.float32(config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else 1.0)
    normalize = config.get("do_normalize", True)
    mean = np.asarray(config.get("image_mean", 0.5) if normalize else 0.0, dtype=np.float32)
    std = np.asarray(config.get("image_std", 0.5) if normalize else 1.0, dtype=np.float32)
    return scale, mean, std


def normalise(pixels: np.ndarray, scale: np.float32, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Pixels (channels last: ..., height, width, channels) rescaled and normalised per channel, as float32."""
    return (pixels.astype(np.float32) * scale - mean) / std
