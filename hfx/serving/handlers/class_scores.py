"""What the handlers of tasks that give one label per input share: every label's score, best first."""

import numpy as np

from hfx.serving.transforms import probabilities


class ClassScoresHandler:
    """One label per input: every label's score, best first."""

    options = frozenset({"top_k", "raw_scores"})

    @staticmethod
    def decision_logits(logits: np.ndarray, row, item) -> np.ndarray:
        """The logits the answer is decided from: the input's own, as one row."""
        return logits[None]

    def decode(self, logits: np.ndarray, row, item, top_k: int | None = None, raw_scores: bool = False) -> list[dict]:
        """[{label, score}] sorted by score: probabilities (calibrated by the folder's temperature), or the logits
        with raw_scores."""
        logits = logits.astype(np.float64)
        scores = logits if raw_scores else probabilities(logits, self.temperature)
        return [
            {"label": self.labels[j], "score": float(scores[j])} for j in np.argsort(-scores, kind="stable")[:top_k]
        ]

    @staticmethod
    def record(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, "scores": {e["label"]: e["score"] for e in result}} if all_scores else fields

    def column_names(self, all_scores: bool) -> list[str]:
        """The columns `columns` fills, in a fixed order: the best label and its score, then every label's."""
        return ["label", "score"] + ([f"score_{label}" for label in self.labels] if all_scores else [])

    @staticmethod
    def columns(result: list[dict], all_scores: bool) -> dict:
        fields = {"label": result[0]["label"], "score": result[0]["score"]}
        return {**fields, **{f"score_{e['label']}": e["score"] for e in result}} if all_scores else fields
