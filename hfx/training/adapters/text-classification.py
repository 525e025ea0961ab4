"""Text classification: one label per text (sentiment, topic, question type), or per pair of texts (paraphrase,
entailment) when `data.text_pair_column` names a second text: the pair is tokenized as one input,
`[CLS] text [SEP] pair [SEP]`, cutting the longer side first when it is too long."""

from collections import Counter

from datasets import ClassLabel, Dataset, Features, Value
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from hfx.training.adapters.common import DROPPED, clean_rows, excluded, read_label, require_columns
from hfx.training.adapters.single_label import SingleLabelAdapter
from hfx.training.adapters.text_inputs import TextFeatures, TextInputsAdapter, add_row, missing_text
from hfx.training.params import Data, ParamsError, Preprocess


class TextClassificationAdapter(TextInputsAdapter, SingleLabelAdapter):
    name = "text-classification"
    auto_model = "AutoModelForSequenceClassification"
    columns = ("text", "label")
    # The text-classification pipeline does not truncate unless told: past the max input length it would fail,
    # or label a text differently from predict and serve, which cut it there.
    pipeline_kwargs = {"truncation": True}
    truncated_unit = "rows"  # what stats.json counts as cut off by max_length

    def standardize(self, split: Dataset, data: Data, split_name: str) -> tuple[Dataset, Counter]:
        """Rows as {text, label} strings; drops (and counts) empty texts, missing and excluded labels."""
        require_columns(split, data, split_name)
        if data.text_pair_column:
            require_columns(split, data, split_name, "text_pair_column")
        feature = split.features[data.label_column]
        names = feature.names if isinstance(feature, ClassLabel) else None
        columns = ("text", "text_pair", "label") if data.text_pair_column else ("text", "label")
        features = Features({**{column: Value("string") for column in columns}, DROPPED: Value("string")})
        kept, dropped, _ = clean_rows(split, self._clean, features, data=data, names=names)
        if len(split) and dropped.get("empty_text_pair") == len(split):  # files with other columns read as nulls
            raise ParamsError(
                f"data.text_pair_column: column '{data.text_pair_column}' not in the {split_name} split"
                " (or empty in every row); each split needs its second texts"
            )
        return kept, dropped

    def _clean(self, batch: dict, indices: list[int], data: Data, names: list[str] | None) -> dict:
        rows = {"text": [], "label": [], DROPPED: []}
        pairs = batch[data.text_pair_column] if data.text_pair_column else [None] * len(indices)
        for text, pair, value in zip(batch[data.text_column], pairs, batch[data.label_column]):
            label = read_label(value, names, data)
            reason = missing_text(text, pair, data) or (
                "missing_label" if label is None else f"excluded_label:{label}" if excluded(label, data) else None
            )
            add_row(rows, reason, text, pair, label, data)
        return rows

    def tokenize(self, batch: dict, processor, settings: Preprocess, label2id: dict) -> dict:
        encoded, sources = self.encode_rows(batch, processor, settings)
        encoded["labels"] = [label2id[batch["label"][i]] for i in sources]
        return encoded

    def baseline(self, train: Dataset, test: Dataset, validation: Dataset | None = None) -> dict:
        """TF-IDF + logistic regression on the same train split: the bar a transformer must clear."""
        classifier = LogisticRegression(max_iter=2000, C=4.0)
        features = TextFeatures(train)
        classifier.fit(features.transform(train), list(train["label"]))
        predictions = classifier.predict(features.transform(test))
        truth = list(test["label"])
        _, _, f1, _ = precision_recall_fscore_support(truth, predictions, average="macro", zero_division=0)
        return {"model": "tfidf-logreg", "accuracy": float(accuracy_score(truth, predictions)), "f1_macro": float(f1)}
