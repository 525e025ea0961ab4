"""Multi-label classification: any number of labels per text (or pair of texts)."""

import numpy as np

from hfx.serving.handlers.texts import TextInputsHandler
from hfx.serving.transforms import sigmoid


class MultiLabelHandler(TextInputsHandler):
    """Any number of labels per text (or pair): each label's sigmoid score, and the labels whose score reaches
    their threshold (calibration.json; 0.5 without one)."""

    auto_model = "AutoModelForSequenceClassification"
    options = frozenset({"top_k", "raw_scores"})

    def __init__(self, info):
        super().__init__(info)
        self.thresholds = np.asarray(info.thresholds or [0.5] * len(self.labels), dtype=np.float64)

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        return logits[None]

    def decode(self, logits: np.ndarray, row, item, top_k: int | None = None, raw_scores: bool = False) -> dict:
        """{labels: those at or over their threshold, best first; scores: [{label, score}] of every label (the
        top_k best), sigmoid probabilities, or the logits with raw_scores}."""
        probabilities = sigmoid(logits)
        order = np.argsort(-probabilities, kind="stable")
        scores = logits.astype(np.float64) if raw_scores else probabilities
        return {
            "labels": [self.labels[j] for j in order if probabilities[j] >= self.thresholds[j]],
            "scores": [{"label": self.labels[j], "score": float(scores[j])} for j in order[:top_k]],
        }

    @staticmethod
    def record(result: dict, all_scores: bool) -> dict:
        scores = {"scores": {e["label"]: e["score"] for e in result["scores"]}} if all_scores else {}
        return {"labels": result["labels"], **scores}

    def column_names(self, all_scores: bool) -> list[str]:
        return ["labels"] + ([f"score_{label}" for label in self.labels] if all_scores else [])

    @staticmethod
    def columns(result: dict, all_scores: bool) -> dict:
        """The labels joined by commas (as `data.label_separator` reads them back), and each label's score."""
        scores = {f"score_{e['label']}": e["score"] for e in result["scores"]} if all_scores else {}
        return {"labels": ",".join(result["labels"]), **scores}
