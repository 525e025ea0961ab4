"""Text classification: one label per text (or pair of texts), every label's score, best first."""

from hfx.serving.handlers.class_scores import ClassScoresHandler
from hfx.serving.handlers.texts import TextInputsHandler


class TextClassificationHandler(TextInputsHandler, ClassScoresHandler):
    auto_model = "AutoModelForSequenceClassification"  # for the pytorch format
    options = ClassScoresHandler.options
