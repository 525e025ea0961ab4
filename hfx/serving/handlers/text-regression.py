"""Text regression: one number per text (or pair of texts)."""

import numpy as np

from hfx.serving.handlers.texts import TextInputsHandler


class TextRegressionHandler(TextInputsHandler):
    """One number per text (or pair): the model's one output as it is, {"score": value}."""

    auto_model = "AutoModelForSequenceClassification"

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        return logits[None]

    @staticmethod
    def decode(logits: np.ndarray, row, item) -> dict:
        return {"score": float(logits[0])}

    @staticmethod
    def record(result: dict, all_scores: bool) -> dict:
        return result

    @staticmethod
    def column_names(all_scores: bool) -> list[str]:
        return ["score"]

    @staticmethod
    def columns(result: dict, all_scores: bool) -> dict:
        return result
